using Akka.Actor;
using Reloc.Actors.Site;
using Xunit;
using static Reloc.Actors.Coordinator.RelocationProtocol;
using static Reloc.Actors.Site.SiteProtocol;

namespace Reloc.Actors.Tests;

/// <summary>Budgets set at run time outlive the coordinator that set them: three sites (reloc.links gives every pair
/// 1 MB/s), two budgets set, one site restarted (its journal replays them), then the coordinator's node leaves. The
/// coordinator that takes over shows both as set at run time, one of them a 0 that overrides reloc.links, and one
/// remembered only by the site left of its pair.</summary>
public sealed class LinkBudgetFailoverTests : IAsyncLifetime
{
    private const long Configured = 1_000_000, Set = 12_345_678;
    private readonly InProcessSites _sites = new(3, "reloc-link-failover-", _ => """
        reloc.links = [ { sites = [site-a, site-b], bandwidth = 1MB/s }, { sites = [site-a, site-c], bandwidth = 1MB/s }, { sites = [site-b, site-c], bandwidth = 1MB/s } ]
        reloc.coordinator.reconcile-interval = 500ms
        """);

    public Task InitializeAsync() => _sites.InitializeAsync();

    public Task DisposeAsync() => _sites.DisposeAsync();

    [Fact]
    public async Task A_coordinator_that_takes_over_adopts_the_budgets_set_at_run_time()
    {
        int coordinator = _sites.CoordinatorIndex();
        // The one restarted: the youngest other (not a seed when the coordinator runs on the first, as it does).
        int restarted = Enumerable.Range(0, 3).Last(i => i != coordinator), other = Enumerable.Range(0, 3).Single(i => i != coordinator && i != restarted);
        string C = Name(coordinator), R = Name(restarted), O = Name(other);

        // A 0 on the coordinator's own pair (the site left of it must carry it alone), a budget on the other two.
        var none = Assert.IsType<LinkInfo>(await _sites.Nodes[other].Coordinator.Ask<object>(new SetLinkBudget(C, R, 0), TimeSpan.FromSeconds(20)));
        Assert.Equal((0L, true), (none.BandwidthBytesPerSecond, none.SetAtRunTime));
        Assert.IsType<LinkInfo>(await _sites.Nodes[other].Coordinator.Ask<object>(new SetLinkBudget(O, R, Set), TimeSpan.FromSeconds(20)));
        // Acknowledged: at least one site of each pair holds it; both do shortly (the other answer, or a round's repair).
        await InProcessSites.AwaitAsync(async () => (await LinksAt(restarted)).Count == 2 && (await LinksAt(other)).Count == 1 && (await LinksAt(coordinator)).Count == 1);

        // A site restart replays them from its journal.
        await _sites.Nodes[restarted].DisposeAsync();
        _sites.Nodes[restarted] = SiteNode.Start(_sites.SiteConfig(restarted));
        var replayed = await LinksAt(restarted);
        Assert.Equal([(Pair(C, R), 0L), (Pair(O, R), Set)], replayed.Select(l => ((l.Pair.A, l.Pair.B), l.BandwidthBytesPerSecond)).OrderBy(p => p.Item1.A).ThenBy(p => p.Item1.B));

        // The coordinator's node leaves: the next oldest runs it, and adopts what the sites remember.
        var leaving = _sites.Nodes[coordinator];
        await leaving.DisposeAsync(); // leaves gracefully
        _sites.Nodes.Remove(leaving);
        await InProcessSites.AwaitAsync(async () =>
        {
            LinkList links;
            try { links = Assert.IsType<LinkList>(await _sites.Nodes[0].Coordinator.Ask<object>(new GetLinks(), TimeSpan.FromSeconds(3))); }
            catch (AskTimeoutException) { return false; } // the singleton is moving
            var shown = links.Links.ToDictionary(l => (l.SiteA, l.SiteB), l => (l.BandwidthBytesPerSecond, l.SetAtRunTime));
            return shown.GetValueOrDefault(Pair(C, R)) == (0, true) && shown.GetValueOrDefault(Pair(O, R)) == (Set, true)
                && shown.GetValueOrDefault(Pair(C, O)) == (Configured, false);
        });
    }

    private static string Name(int i) => $"site-{(char)('a' + i)}";

    private static (string, string) Pair(string x, string y) => string.CompareOrdinal(x, y) < 0 ? (x, y) : (y, x);

    private async Task<IReadOnlyList<Coordinator.RememberedBudget>> LinksAt(int i) =>
        Assert.IsType<DiskList>(await _sites.Nodes[i].Site.Ask<object>(new ListDisks(), TimeSpan.FromSeconds(20))).Links ?? [];
}
