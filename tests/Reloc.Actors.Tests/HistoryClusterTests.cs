using RelocationMode = Reloc.Management.RelocationMode;
using Akka.Actor;
using Akka.Cluster;
using Akka.Configuration;
using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Reloc.Actors.Coordinator;
using Reloc.Actors.History;
using Reloc.Actors.Site;
using Reloc.Testing;
using Xunit;
using static Reloc.Actors.Coordinator.RelocationProtocol;
using static Reloc.Actors.History.HistoryProtocol;

namespace Reloc.Actors.Tests;

/// <summary>Two site nodes in one process, a real relocation between them: every node's history holds its lifecycle,
/// with the destination's figures when it completed, and a feed follows it live.</summary>
public sealed class HistoryClusterTests : IAsyncLifetime
{
    private readonly InProcessSites _sites = new(2, "reloc-history-cluster-", _ => "reloc.coordinator.reconcile-interval = 500ms");
    private List<SiteNode> _nodes => _sites.Nodes;
    private string _dir => _sites.Dir;

    public Task InitializeAsync() => _sites.InitializeAsync();

    public Task DisposeAsync() => _sites.DisposeAsync();

    private static IActorRef HistoryOf(SiteNode node) => ActorRegistry.For(node.System).Get<RelocationHistory>();

    private async Task SeedAsync(string name, byte[] content)
    {
        var file = Path.Combine(_dir, name + "-seed.img");
        File.WriteAllBytes(file, content);
        Assert.IsType<SiteProtocol.DiskInfo>(await _nodes[0].Site.Ask<object>(new SiteProtocol.CreateDisk(name, 0, file), TimeSpan.FromSeconds(20)));
    }

    private static async Task<IReadOnlyList<RelocationSummary>> RowsAsync(SiteNode node, string disk) =>
        (await HistoryOf(node).Ask<DiskHistory>(new GetDiskHistory(disk), TimeSpan.FromSeconds(10))).Relocations;

    [Fact]
    public async Task A_completed_relocation_is_in_every_nodes_history_with_its_trigger_and_figures()
    {
        var content = Tool.RandomBytes(4 << 20, 41);
        Array.Clear(content, 1 << 20, 1 << 20); // a hole: skipped
        await SeedAsync("vm1", content);
        // Followed live from the destination's node, from before the start.
        await using var feed = await RelocationEventFeed.OpenAsync(_nodes[1].System, HistoryOf(_nodes[1]));

        Assert.IsType<RelocationAccepted>(await _nodes[1].Coordinator.Ask<object>(new Relocate("vm1", "site-b", Hybrid: true), TimeSpan.FromSeconds(20)));

        var kinds = new List<RelocationEventKind>();
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(90)))
            await foreach (var entry in feed.ReadAllAsync(cts.Token))
            {
                kinds.Add(entry.Event.Kind);
                if (entry.Event.Kind == RelocationEventKind.Completed) break;
            }
        Assert.Equal(RelocationEventKind.Started, kinds[0]);
        Assert.Contains(RelocationEventKind.Handover, kinds);

        foreach (var node in _nodes)
            await AwaitAsync(async () => (await RowsAsync(node, "vm1")) is [{ Outcome: RelocationOutcome.Completed }]);
        var row = Assert.Single(await RowsAsync(_nodes[0], "vm1"));
        Assert.Equal(("site-a", "site-b", RelocationMode.Hybrid, HandoverTrigger.SourceIdle), (row.FromSite, row.ToSite, row.Mode, row.Trigger));
        Assert.NotNull(row.Duration);
        var totals = Assert.IsType<RelocationTotals>(row.Totals);
        Assert.Equal(content.Length, totals.TotalBytes);
        Assert.True(totals.FetchedBytes > 0, $"fetched {totals.FetchedBytes}");
        Assert.True(totals.FetchedBytes + totals.SkippedBytes >= 3 << 20, $"fetched {totals.FetchedBytes}, skipped {totals.SkippedBytes}");

        var events = (await HistoryOf(_nodes[0]).Ask<HistoryEvents>(new GetEvents(), TimeSpan.FromSeconds(10))).Events.Select(e => e.Event).ToList();
        Assert.Equal([RelocationEventKind.Started, RelocationEventKind.Handover, RelocationEventKind.Completed],
            events.Select(e => e.Kind).Where(k => k is RelocationEventKind.Started or RelocationEventKind.Handover or RelocationEventKind.Completed));
        Assert.All(events, e => Assert.Equal(events[0].Relocation, e.Relocation));
    }

    [Fact]
    public async Task A_cancelled_relocation_is_in_the_history_as_cancelled()
    {
        await SeedAsync("vm2", Tool.RandomBytes(2 << 20, 42));
        // A guest at the source: not idle, so no handover comes before the cancel.
        var uri = $"nbd://127.0.0.1:{_nodes[0].NbdEndPoint.Port}/vm2";
        await using var guest = await Nbd.Client.NbdClient.ConnectAsync(Nbd.Client.NbdClientOptions.FromUri(uri));
        await guest.ReadAsync(0, new byte[512]);
        var coordinator = _nodes[0].Coordinator;
        Assert.IsType<RelocationAccepted>(await coordinator.Ask<object>(new Relocate("vm2", "site-b", RateBytesPerSecond: 100_000), TimeSpan.FromSeconds(20)));
        await AwaitAsync(async () => (await RowsAsync(_nodes[0], "vm2")) is [{ Phase: RelocationPhase.Serving }]);
        Assert.Equal(new RelocationCancelled("vm2"), await coordinator.Ask<object>(new CancelRelocation("vm2"), TimeSpan.FromSeconds(30)));

        foreach (var node in _nodes)
            await AwaitAsync(async () => (await RowsAsync(node, "vm2")) is [{ Outcome: RelocationOutcome.Cancelled }]);
        var row = Assert.Single(await RowsAsync(_nodes[1], "vm2"));
        Assert.Equal((RelocationMode.Postcopy, (HandoverTrigger?)null, (RelocationTotals?)null), (row.Mode, row.Trigger, row.Totals));
    }

    private static Task AwaitAsync(Func<Task<bool>> condition) => InProcessSites.AwaitAsync(condition);
}
