using System.Diagnostics;
using Reloc.Management;
using Reloc.Testing;
using Xunit;
using Xunit.Abstractions;

namespace Reloc.Node.Tests;

/// <summary>A link budget set over the API outlives the coordinator's process: three site processes, a budget set on the
/// coordinator's own pair, then kill -9 of that node (the oldest). The coordinator that takes over shows the budget
/// again, set at run time, from the one site of the pair left; reloc.links' budget for the other pairs stays.</summary>
public sealed class LinkBudgetProcessTests(ITestOutputHelper output)
{
    private const long Set = 7_000_000;

    [Fact]
    public async Task A_budget_set_at_run_time_survives_a_kill_of_the_coordinators_node()
    {
        await using var c = new SiteCluster(extra: _ => "reloc.links = [ { sites = [site-b, site-c], bandwidth = 1MB/s } ]");
        await c.StartAllAsync();
        var took = Stopwatch.StartNew();
        await c.CallAsync('b', m => m.SetLinkAsync("site-a", "site-b", 3_000_000));
        output.WriteLine($"first link set answered in {took.Elapsed.TotalMilliseconds:0} ms (cold)");
        took.Restart();
        var set = await c.CallAsync('b', m => m.SetLinkAsync("site-b", "site-a", Set)); // the later set wins everywhere
        output.WriteLine($"link set answered in {took.Elapsed.TotalMilliseconds:0} ms (stored at a site of the pair first)");
        Assert.Equal(("site-a", "site-b", Set, true), (set.SiteA, set.SiteB, set.Bandwidth, set.SetAtRunTime));

        took.Restart();
        await c.KillAsync('a'); // the oldest node: the coordinator singleton lives there, and it is one end of the pair
        // The survivors down a; the singleton starts at b and adopts what b remembers in its first round.
        await SiteCluster.WaitAsync(async () =>
        {
            var links = await c.TryAsync('c', m => m.LinksAsync());
            if (links is null) return false; // the singleton is moving
            var shown = links.Links.ToDictionary(l => (l.SiteA, l.SiteB));
            return shown.TryGetValue(("site-a", "site-b"), out var ab) && ab is { Bandwidth: Set, SetAtRunTime: true }
                && shown.TryGetValue(("site-b", "site-c"), out var bc) && bc is { Bandwidth: 1_000_000, SetAtRunTime: false };
        }, TimeSpan.FromSeconds(90), "the new coordinator shows the budget set at run time");
        output.WriteLine($"shown again by the next coordinator {took.Elapsed.TotalSeconds:0.0} s after the kill (the cluster downs the node first)");
    }
}
