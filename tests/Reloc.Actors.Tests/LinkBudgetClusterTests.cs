using System.Diagnostics;
using Akka.Actor;
using Reloc.Actors.Site;
using Reloc.Testing;
using Xunit;
using static Reloc.Actors.Coordinator.RelocationProtocol;
using static Reloc.Actors.Site.SiteProtocol;

namespace Reloc.Actors.Tests;

/// <summary>A link budget in a real two-site cluster: reloc.links holds two relocations to their shares, a budget set
/// at run time frees them, and each image arrives byte for byte.</summary>
public sealed class LinkBudgetClusterTests : IAsyncLifetime
{
    private const long Budget = 1_000_000;
    private readonly InProcessSites _sites = new(2, "reloc-link-test-", _ => $"reloc.links = [ {{ sites = [site-a, site-b], bandwidth = {Budget / 1000}kB/s }} ]");
    private SiteNode A => _sites.Nodes[0];
    private SiteNode B => _sites.Nodes[1];

    public Task InitializeAsync() => _sites.InitializeAsync();

    public Task DisposeAsync() => _sites.DisposeAsync();

    [Fact]
    public async Task Two_relocations_share_the_budget_and_a_budget_set_at_run_time_applies_at_once()
    {
        var contents = new[] { Tool.RandomBytes(4 << 20, 31), Tool.RandomBytes(4 << 20, 32) };
        for (int i = 0; i < 2; i++)
        {
            var file = Path.Combine(_sites.Dir, $"l{i}-seed.img");
            await File.WriteAllBytesAsync(file, contents[i]);
            Assert.IsType<DiskInfo>(await A.Site.Ask<object>(new CreateDisk($"l{i}", 0, file), TimeSpan.FromSeconds(20)));
        }
        for (int i = 0; i < 2; i++)
            Assert.IsType<RelocationAccepted>(await A.Coordinator.Ask<object>(new Relocate($"l{i}", "site-b"), TimeSpan.FromSeconds(20)));

        // Idle disks hand over at once and copy: each gets half the budget.
        await InProcessSites.AwaitAsync(async () => (await LinksAsync()).Shares.Count(s => s.RateBytesPerSecond == Budget / 2) == 2);
        var since = Stopwatch.StartNew();
        var before = await LocalBytesAsync();
        await Task.Delay(3000);
        var copied = await LocalBytesAsync() - before;
        var seconds = since.Elapsed.TotalSeconds;
        // Unlimited, loopback copies 8 MiB in well under a second; held to 1 MB/s, plus each limiter's first bucket (128 KiB)
        // and the reads each disk had in flight when the window began: the coordinator shows the shares as soon as it sends
        // them, and until a destination applies its share it copies unlimited, with startup's first window of 8 x 128 KiB.
        Assert.True(copied <= Budget * seconds + 2 * 128 * 1024 + 2 * 8 * 128 * 1024, $"{copied} bytes in {seconds:0.0} s on a {Budget} B/s budget");
        Assert.True(copied > 0, "nothing copied in the window"); // a floor on the rate would be a timing test: bench/link-budget.sh measures it

        // A budget set at run time reaches the destinations at once.
        var set = Assert.IsType<LinkInfo>(await B.Coordinator.Ask<object>(new SetLinkBudget("site-b", "site-a", 200_000_000), TimeSpan.FromSeconds(20)));
        Assert.True(set.SetAtRunTime);
        Assert.All(set.Shares, s => Assert.Equal(100_000_000, s.RateBytesPerSecond));
        await InProcessSites.AwaitAsync(async () => (await ListAsync(B)).Disks.Count(d => d.Phase == "owned" && d.Epoch == 2) == 2);
        Assert.True(since.Elapsed < TimeSpan.FromSeconds(30), $"the rest took {since.Elapsed.TotalSeconds:0.0} s after the budget was raised");

        // What the guest would read at its new owner is what it wrote at the old one.
        await InProcessSites.AwaitAsync(async () => (await ListAsync(A)).Disks.Count == 0);
        foreach (var moved in (await ListAsync(B)).Disks)
        {
            var copy = Path.Combine(_sites.Dir, moved.Name + "-moved.img");
            await Tool.CheckAsync("nbdcopy", moved.NbdUri, copy);
            Assert.Equal(Tool.Sha256Of(contents[moved.Name == "l0" ? 0 : 1]), Tool.Sha256(copy));
        }
        Assert.Empty((await LinksAsync()).Shares);
    }

    private async Task<LinkInfo> LinksAsync() =>
        Assert.IsType<LinkList>(await A.Coordinator.Ask<object>(new GetLinks(), TimeSpan.FromSeconds(20))).Links.Single(l => l.SiteA == "site-a" && l.SiteB == "site-b");

    private async Task<long> LocalBytesAsync() => (await ListAsync(B)).Disks.Sum(d => d.LocalBytes);

    private static async Task<DiskList> ListAsync(SiteNode node) =>
        Assert.IsType<DiskList>(await node.Site.Ask<object>(new ListDisks(), TimeSpan.FromSeconds(20)));
}
