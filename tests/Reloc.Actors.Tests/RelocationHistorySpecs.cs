using RelocationMode = Reloc.Management.RelocationMode;
using Akka.Actor;
using Akka.Configuration;
using Akka.Event;
using Reloc.Actors.Coordinator;
using Reloc.Actors.History;
using Xunit;
using static Reloc.Actors.Coordinator.RelocationProtocol;
using static Reloc.Actors.History.HistoryProtocol;

namespace Reloc.Actors.Tests;

/// <summary>The history actor alone (events told to it directly): persisted once each, bounded, recovered after a
/// restart (through a snapshot too), and followed by a feed whose slow reader loses the oldest, not the actor's time.</summary>
public sealed class RelocationHistorySpecs() : Akka.TestKit.Xunit2.TestKit(ConfigurationFactory.ParseString("akka.actor.provider = cluster\nakka.loglevel = INFO")
    .WithFallback(RelocConfig.Node(RelocConfig.Sqlite(Path.Combine(Directory.CreateTempSubdirectory("reloc-history-db-").FullName, "reloc.db")))))
{
    private static RelocationEvent E(int i, string disk = "vm") =>
        new(Guid.CreateVersion7(), DateTime.UtcNow, "r" + i, disk, "a", "b", RelocationMode.Postcopy, 1, RelocationEventKind.Started, RelocationPhase.Starting);

    private async Task<IReadOnlyList<HistoryEntry>> EventsAsync(IActorRef history, long? after = null, int limit = 100) =>
        (await history.Ask<HistoryEvents>(new GetEvents(after, limit), TimeSpan.FromSeconds(10))).Events;

    [Fact]
    public async Task Each_event_is_kept_once_within_the_bound_and_survives_a_restart()
    {
        var settings = new HistorySettings(MaxEvents: 20); // a snapshot every 2 events
        var history = Sys.ActorOf(RelocationHistory.Props("t1", settings));
        var events = Enumerable.Range(0, 25).Select(i => E(i)).ToList();
        foreach (var e in events) history.Tell(e);
        history.Tell(events[24]); // published twice (a fail-over): kept once
        await AwaitAssertAsync(async () => Assert.Equal(25, (await EventsAsync(history, limit: 1000)).LastOrDefault()?.Seq), TimeSpan.FromSeconds(10));
        var kept = await EventsAsync(history, limit: 1000);
        Assert.Equal(events.Skip(5).Select(e => e.Id), kept.Select(k => k.Event.Id));
        Assert.Equal(Enumerable.Range(6, 20).Select(i => (long)i), kept.Select(k => k.Seq));

        await history.GracefulStop(TimeSpan.FromSeconds(10));
        var again = Sys.ActorOf(RelocationHistory.Props("t1", settings));
        var recovered = await EventsAsync(again, limit: 1000);
        Assert.Equal(kept, recovered);
        again.Tell(E(99));
        await AwaitAssertAsync(async () => Assert.Equal(26, (await EventsAsync(again, after: 25)).Single().Seq), TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task The_history_of_a_disk_has_one_row_per_relocation()
    {
        var history = Sys.ActorOf(RelocationHistory.Props("t2", new HistorySettings()));
        history.Tell(E(1, "vm1"));
        history.Tell(E(2, "vm2"));
        history.Tell(E(3, "vm1"));
        await AwaitAssertAsync(async () =>
        {
            var rows = (await history.Ask<DiskHistory>(new GetDiskHistory("vm1"), TimeSpan.FromSeconds(10))).Relocations;
            Assert.Equal(["r1", "r3"], rows.Select(r => r.Relocation));
            Assert.All(rows, r => Assert.Equal(RelocationOutcome.InProgress, r.Outcome));
        }, TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task A_feed_gets_its_backlog_then_new_events_and_a_slow_reader_loses_the_oldest()
    {
        var history = Sys.ActorOf(RelocationHistory.Props("t3", new HistorySettings()));
        history.Tell(E(1));
        history.Tell(E(2));
        await AwaitAssertAsync(async () => Assert.Equal(2, (await EventsAsync(history)).Count), TimeSpan.FromSeconds(10));

        await using (var feed = await RelocationEventFeed.OpenAsync(Sys, history, afterSequence: 1, capacity: 3))
        {
            for (int i = 3; i <= 6; i++) history.Tell(E(i));
            // Nobody reads: the channel holds the newest three of 2..6, the actor was never held up.
            await AwaitAssertAsync(() => Assert.Equal(2, feed.Dropped), TimeSpan.FromSeconds(10));
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            var seen = new List<long>();
            await foreach (var e in feed.ReadAllAsync(cts.Token))
            {
                seen.Add(e.Seq);
                if (seen.Count == 3) break;
            }
            Assert.Equal([4L, 5, 6], seen);
        }
        // Disposed: its actor stopped and unsubscribed; the history goes on.
        history.Tell(E(7));
        await AwaitAssertAsync(async () => Assert.Equal(7, (await EventsAsync(history)).Count), TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task A_disposed_feed_ends_its_stream()
    {
        var history = Sys.ActorOf(RelocationHistory.Props("t4", new HistorySettings()));
        var feed = await RelocationEventFeed.OpenAsync(Sys, history);
        await feed.DisposeAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await foreach (var _ in feed.ReadAllAsync(cts.Token)) Assert.Fail("no event after disposal");
    }

    /// <summary>The coordinator's part, in an actor of its own: a lifecycle decision is one Information line and reaches
    /// the histories subscribed to the topic (this node's, here).</summary>
    private sealed class Publishing : ReceiveActor
    {
        public Publishing()
        {
            var publisher = new RelocationEventPublisher(Context, Context.GetLogger(), TimeSpan.FromSeconds(5));
            Receive<CoordinatorDecision.Lifecycle>(publisher.Handle);
        }
    }

    [Fact]
    public async Task The_coordinators_lifecycle_decisions_are_logged_at_information_and_reach_the_history()
    {
        var history = Sys.ActorOf(RelocationHistory.Props("t5", new HistorySettings()));
        var publishing = Sys.ActorOf(Props.Create(() => new Publishing()));
        await AwaitAssertAsync(async () =>
        {
            // The history's subscription reaches the mediator in its own time: publish until it hears.
            await EventFilter.Info(start: "relocation r1 of vm1 site-a→site-b started (hybrid, epoch 3)").ExpectOneAsync(() =>
            {
                publishing.Tell(new CoordinatorDecision.Lifecycle(RelocationEventKind.Started, "r1", "vm1", "site-a", "site-b", RelocationMode.Hybrid, 3,
                    RelocationPhase.Starting, DateTime.UtcNow));
                return Task.CompletedTask;
            });
            var row = Assert.Single((await history.Ask<DiskHistory>(new GetDiskHistory("vm1"), TimeSpan.FromSeconds(10))).Relocations);
            Assert.Equal(("site-a", RelocationMode.Hybrid, RelocationOutcome.InProgress), (row.FromSite, row.Mode, row.Outcome));
        }, TimeSpan.FromSeconds(10));
    }

    [Fact]
    public void Settings_are_validated()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new HistorySettings(0).Validate());
        Assert.Equal(10_000, HistorySettings.From(RelocConfig.Reference).MaxEvents);
        Assert.Equal(1000, new HistorySettings().SnapshotEvery);
    }
}
