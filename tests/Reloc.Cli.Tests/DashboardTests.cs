using System.Globalization;
using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using OpenQA.Selenium.Support.UI;
using Reloc.Management;
using Reloc.Testing;
using Xunit;
using Xunit.Abstractions;

namespace Reloc.Cli.Tests;

/// <summary>The node's dashboard in a real (headless) browser, following a live relocation of the test cluster.</summary>
[Collection(ClusterCollection.Name)]
public sealed class DashboardTests(SiteCluster cluster, ITestOutputHelper output)
{
    private const string Disk = "dash1";

    [BrowserFact]
    public async Task The_dashboard_follows_a_relocation_live_until_the_destination_owns_the_disk()
    {
        // 64 MiB of random data copied at 8 MB/s: several seconds of progress to watch.
        const int size = 64 << 20;
        var image = Path.Combine(cluster.Dir, Disk + "-seed.img");
        await File.WriteAllBytesAsync(image, Tool.RandomBytes(size, 71));
        await SiteCluster.CallAsync(cluster.A, c => c.CreateDiskAsync(new CreateDiskRequest(Disk, "site-a", From: image)));
        File.Delete(image);

        using var browser = Browser.Start();
        var page = new Page(browser, output);
        browser.Navigate().GoToUrl($"http://{cluster.A.Node}/");

        // The cluster: three sites, each with its Up member, one of them the coordinator.
        page.Until(() => page.Count("#sites article[data-site]") == 3 && page.Count("#sites li[data-status='Up'][data-reachable='true']") == 3, "three sites Up");
        Assert.Equal(1, page.Count("#sites li[data-coordinator='true']"));
        page.Until(() => page.Attr($"#disks tr[data-disk='{Disk}'][data-site='site-a']", "data-epoch") == "1", "the new disk at site-a, epoch 1");
        page.Until(() => page.Text("#live") == "live", "the event stream connected");

        await SiteCluster.CallAsync(cluster.B, c => c.RelocateAsync(new RelocateRequest(Disk, "site-b", RelocationMode.Postcopy, Rate: 8_000_000)));

        var row = $"#relocations tr[data-disk='{Disk}']";
        var bar = row + " [role='progressbar']";
        double first = 0;
        page.Until(() => page.Percent(bar) is { } p && (first = p) > 0 && p < 100, "the relocation's bar between 0 and 100 %");
        Assert.Equal("site-b", page.Attr(row, "data-to"));
        Assert.Equal(page.Attr(bar, "data-percent"), page.Attr(bar, "aria-valuenow"));
        page.Until(() => page.Text(row + " [data-field='rate']").EndsWith("B/s", StringComparison.Ordinal), "a rate");
        page.Screenshot("dashboard.png");

        page.Until(() => page.Percent(bar) > first, $"the bar to rise above {first} %");
        page.Until(() => page.Attr(row, "data-state") == "done", "the relocation's row to report done", TimeSpan.FromSeconds(90));
        Assert.Equal(100, page.Percent(bar));
        Assert.Equal("done: site-b owns it at epoch 2", page.Text(row + " .phase"));

        page.Until(() => page.Attr($"#disks tr[data-disk='{Disk}'][data-site='site-b']", "data-epoch") == "2"
            && page.Count($"#disks tr[data-disk='{Disk}']") == 1, "the disk at site-b only, epoch 2");
        Assert.Equal("owned", page.Attr($"#disks tr[data-disk='{Disk}']", "data-phase"));
        page.Until(() => page.Count($"#events li[data-kind='completed'][data-disk='{Disk}']") == 1, "a completed event");
        Assert.Equal(1, page.Count($"#events li[data-kind='started'][data-disk='{Disk}']"));

        await SiteCluster.CallAsync(cluster.A, c => c.DeleteDiskAsync(Disk));
    }

    [Fact]
    public async Task The_dashboard_is_served_at_the_root_from_the_node_itself()
    {
        using var http = new HttpClient { BaseAddress = new Uri($"http://{cluster.B.Node}/") };
        using var index = await http.GetAsync("");
        Assert.Equal(System.Net.HttpStatusCode.OK, index.StatusCode);
        Assert.Equal("text/html", index.Content.Headers.ContentType?.MediaType);
        Assert.Equal("default-src 'self'", Assert.Single(index.Headers.GetValues("Content-Security-Policy")));
        var html = await index.Content.ReadAsStringAsync();
        Assert.Contains("<script type=\"module\" src=\"dashboard.js\"></script>", html);
        Assert.DoesNotContain("http", html); // nothing from elsewhere

        using var script = await http.GetAsync("dashboard.js");
        Assert.Equal("text/javascript", script.Content.Headers.ContentType?.MediaType);
        // Data goes in as text only.
        var js = await script.Content.ReadAsStringAsync();
        Assert.DoesNotContain("innerHTML", js);
        Assert.DoesNotContain("insertAdjacentHTML", js);
        using var css = await http.GetAsync("dashboard.css");
        Assert.Equal("text/css", css.Content.Headers.ContentType?.MediaType);

        // The API beside it is unchanged.
        Assert.Equal(3, (await SiteCluster.CallAsync(cluster.B, c => c.ClusterAsync())).Members.Count);
        Assert.Equal(System.Net.HttpStatusCode.NotFound, (await http.GetAsync("nothing.js")).StatusCode);
    }

    /// <summary>Reads the page through scripts: its rows are rebuilt twice a second, so elements found earlier go stale.</summary>
    private sealed class Page(ChromeDriver driver, ITestOutputHelper output)
    {
        public string? Attr(string selector, string name) =>
            driver.ExecuteScript("return document.querySelector(arguments[0])?.getAttribute(arguments[1]) ?? null;", selector, name) as string;

        public string Text(string selector) =>
            driver.ExecuteScript("return document.querySelector(arguments[0])?.textContent ?? '';", selector) as string ?? "";

        public long Count(string selector) =>
            (long)driver.ExecuteScript("return document.querySelectorAll(arguments[0]).length;", selector)!;

        public double? Percent(string selector) =>
            Attr(selector, "data-percent") is { } p ? double.Parse(p, CultureInfo.InvariantCulture) : null;

        public void Until(Func<bool> condition, string what, TimeSpan? timeout = null)
        {
            var wait = new WebDriverWait(driver, timeout ?? TimeSpan.FromSeconds(60)) { PollingInterval = TimeSpan.FromMilliseconds(100) };
            try { wait.Until(_ => condition()); }
            catch (WebDriverTimeoutException)
            {
                var shown = driver.ExecuteScript("return document.querySelector('main')?.innerText ?? '';") as string;
                throw new TimeoutException($"the dashboard did not show {what}; it shows:\n{shown}");
            }
        }

        /// <summary>Into the test's output directory (docs/img/dashboard.png is a copy of one).</summary>
        public void Screenshot(string name)
        {
            var path = Path.Combine(AppContext.BaseDirectory, name);
            driver.GetScreenshot().SaveAsFile(path);
            output.WriteLine($"screenshot: {path}");
        }
    }
}

/// <summary>Headless Debian chromium through its chromedriver (packages chromium, chromium-driver).</summary>
internal static class Browser
{
    public const string Chromium = "/usr/bin/chromium", ChromeDriver = "/usr/bin/chromedriver";
    public static bool Installed => File.Exists(Chromium) && File.Exists(ChromeDriver);

    public static ChromeDriver Start()
    {
        if (!Installed)
            throw new InvalidOperationException($"{Chromium} or {ChromeDriver} is missing: apt-get install chromium chromium-driver (build.cake's Test target installs them)");
        var options = new ChromeOptions { BinaryLocation = Chromium };
        options.AddArguments("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,800");
        var service = ChromeDriverService.CreateDefaultService(Path.GetDirectoryName(ChromeDriver)!, Path.GetFileName(ChromeDriver));
        service.SuppressInitialDiagnosticInformation = true;
        return new ChromeDriver(service, options, TimeSpan.FromSeconds(60));
    }
}

/// <summary>A browser test: skipped where chromium is missing and cannot be installed (not root); as root (CI) it
/// runs, and fails with what to install when chromium is missing.</summary>
public sealed class BrowserFactAttribute : FactAttribute
{
    public BrowserFactAttribute()
    {
        if (!Browser.Installed && !Environment.IsPrivilegedProcess)
            Skip = $"no {Browser.Chromium} / {Browser.ChromeDriver} (apt-get install chromium chromium-driver as root)";
    }
}
