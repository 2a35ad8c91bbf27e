using Reloc.Management;
using Reloc.Testing;
using Xunit;
using Xunit.Abstractions;

namespace Reloc.Node.Tests;

/// <summary>
/// Issue 11: a real Prometheus scrapes every site's /metrics while a disk relocates between site processes;
/// its query API must then return the relocation's bytes, the link's bytes, NBD requests and histograms,
/// and every metric the Grafana dashboard queries must be one the nodes export.
/// </summary>
public sealed class PrometheusTests(ITestOutputHelper output)
{
    private const int Size = 32 << 20;
    private const long Rate = 4_000_000; // about eight seconds for the whole disk: several scrapes see it under way
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Prometheus_scraping_the_sites_during_a_relocation_returns_its_bytes()
    {
        await using var c = new SiteCluster();
        await c.StartAllAsync();
        await using var prometheus = await PrometheusServer.StartAsync(
            SiteCluster.Sites.ToDictionary(s => "site-" + s, c.ManagementEndpoint));
        await SiteCluster.WaitAsync(async () => (await prometheus.QueryAsync("up == 1")).Count == SiteCluster.Sites.Length,
            Patience, "every site's /metrics scraped");

        var initial = Tool.RandomBytes(Size, 11);
        var file = Path.Combine(c.Dir, "vm.raw");
        await File.WriteAllBytesAsync(file, initial);
        await c.CallAsync('a', m => m.CreateDiskAsync(new CreateDiskRequest("vm", "site-b", From: file)));
        await using var guest = new Guest(initial, 11);

        await c.RelocateAsync('a', "c", "postcopy", Rate);
        // No guest at the source: the handover comes at once and the destination fetches the rest in the
        // background, at the capped rate.
        await c.WaitPhaseAsync('a', "postcopy");
        // Reads at the destination before their blocks arrive: misses, and NBD requests on the guest's export.
        await guest.ConnectAsync(c.NbdUri('c', "vm"));
        await guest.ReadAndCheckAsync(20);
        DiskView? show = null;
        await SiteCluster.WaitAsync(async () =>
        {
            show = await c.TryAsync('a', m => m.DiskAsync("vm"));
            return show is { Owner: "site-c", Phase: "owned" } && await c.PhaseAsync('a', "vm") is null;
        }, TimeSpan.FromSeconds(120), "relocation complete");
        await guest.ReadAndCheckAsync(20);

        // Over the whole test: the gauges may be gone from the latest scrape by the time it is queried.
        const string disk = "disk=\"vm\",from=\"site-b\",to=\"site-c\"";
        await EventuallyAsync(prometheus, $"max_over_time(reloc_relocation_bytes_local_bytes{{{disk}}}[10m])", v => v == Size);
        await EventuallyAsync(prometheus, $"max_over_time(reloc_relocation_bytes_total_bytes{{{disk}}}[10m])", v => v == Size);
        // Random data: nothing is a hole, so every byte came over the link (on demand or prefetched).
        await EventuallyAsync(prometheus,
            $"max_over_time(reloc_relocation_bytes_fetched_bytes{{{disk}}}[10m]) + max_over_time(reloc_relocation_bytes_skipped_bytes{{{disk}}}[10m])",
            v => v == Size);
        await EventuallyAsync(prometheus, "sum(reloc_link_bytes_total{from=\"site-b\",to=\"site-c\"})", v => v >= Size);
        await EventuallyAsync(prometheus, "sum(reloc_nbd_requests_total{site=\"site-c\",export=\"vm\",op=\"read\",outcome=\"ok\"})", v => v >= 40);
        await EventuallyAsync(prometheus, $"sum(reloc_relocation_misses_total{{{disk}}})", v => v >= 1);
        await EventuallyAsync(prometheus, $"sum(reloc_relocation_miss_duration_seconds_count{{{disk}}})", v => v >= 1);
        await EventuallyAsync(prometheus, $"count(reloc_relocation_miss_duration_seconds_bucket{{{disk}}})", v => v > 1);
        await EventuallyAsync(prometheus, "count(reloc_nbd_request_duration_seconds_bucket{export=\"vm\",op=\"read\"})", v => v > 1);
        await EventuallyAsync(prometheus, $"sum(reloc_relocation_handover_duration_seconds_count{{{disk}}})", v => v == 1);
        await EventuallyAsync(prometheus, $"max(max_over_time(reloc_relocation_phase{{{disk}}}[10m]))", v => v == 1);

        // The dashboard's queries against what Prometheus actually stored from the nodes.
        var exported = await prometheus.MetricNamesAsync();
        output.WriteLine("exported: " + string.Join(' ', exported.Order()));
        var unknown = GrafanaDashboardTests.MetricNames().Where(n => !exported.Contains(n)).Order().ToList();
        Assert.True(unknown.Count == 0, $"the dashboard queries metrics no node exported: {string.Join(", ", unknown)}");
        // And Prometheus parses and evaluates each panel's query, with Grafana's variables as it would fill them in.
        foreach (var expr in GrafanaDashboardTests.PanelExpressions())
            await prometheus.QueryAsync(expr.Replace("$__rate_interval", "1m").Replace("$site", ".*"));
    }

    /// <summary>Polls the query until it returns a single sample that satisfies <paramref name="ok"/>.</summary>
    private async Task EventuallyAsync(PrometheusServer prometheus, string promql, Func<double, bool> ok)
    {
        IReadOnlyList<(System.Text.Json.Nodes.JsonObject Labels, double Value)> last = [];
        try
        {
            await SiteCluster.WaitAsync(async () =>
            {
                last = await prometheus.QueryAsync(promql);
                return last.Count == 1 && ok(last[0].Value);
            }, Patience, promql);
            output.WriteLine($"{promql} = {last[0].Value}");
        }
        catch (TimeoutException e)
        {
            var names = (await prometheus.MetricNamesAsync()).Where(n => n.StartsWith("reloc_", StringComparison.Ordinal)).Order();
            throw new TimeoutException(
                $"{e.Message}; last result: [{string.Join(", ", last.Select(r => $"{r.Labels.ToJsonString()} {r.Value}"))}]; " +
                $"reloc metrics stored: {string.Join(' ', names)}");
        }
    }
}
