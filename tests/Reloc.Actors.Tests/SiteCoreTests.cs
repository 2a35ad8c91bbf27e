using Reloc.Actors.Site;
using Reloc.Actors.Site.Core;
using Xunit;
using static Reloc.Actors.Coordinator.RelocationProtocol;
using D = Reloc.Actors.Site.Core.SiteDecision;
using P = Reloc.Actors.Disk.VirtualDiskProtocol;

namespace Reloc.Actors.Tests;

/// <summary>The site's decisions as tables: a site recovered from a journal, a sequence of inputs, and the
/// decisions it took, written short ("persist OutgoingBegun", "reply OutgoingStarted", "track 65536 all", ...).</summary>
public sealed class SiteCoreTests
{
    private static readonly DateTime T0 = new(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
    private const long Size = 1 << 20;
    private static readonly SiteEvents.DiskAdded Owned = new("vm", Size, "/d/vm.img", 1);
    private static readonly SiteEvents.OutgoingBegun Outgoing = new("vm", 1, "b", "r1");
    private static readonly SiteEvents.RelocationQueued Queued = new("vm", new QueuedRelocation("b", 7, false, 0, true, "r1"));
    private static SiteInput.ClientsChanged Clients(int n) => new("vm", n);
    private static readonly SiteEvents.IncomingAdded Incoming = new("vm", Size, "/d/vm.img", "nbd://a:10809/vm@peer", 1, "a", "j1", "r1", new(Hybrid: false, Rate: 0, Prefetch: true));

    private sealed class Site
    {
        private int _ids;
        public SiteCore Core { get; }
        public List<string> Said { get; } = [];
        public List<SiteDecision> Decided { get; } = [];

        public Site(params object[] journal)
        {
            Core = new SiteCore("a", "/d", "nbd://a:10809", 4096, () => "id" + ++_ids);
            foreach (var e in journal.Where(e => e is not SiteInput)) Core.Recover(e);
            Do(new SiteInput.Started());
            foreach (var input in journal.OfType<SiteInput>()) Do(input); // what happened since the start
        }

        public void Do(SiteInput input)
        {
            Said.Clear();
            Decided.Clear();
            foreach (var d in Core.Handle(input))
            {
                Decided.Add(d);
                Said.Add(Short(d));
            }
        }

        public void Tell(object message, ArrivalFacts? arrival = null, int seconds = 0) => Do(new SiteInput.Message(message, "op", T0.AddSeconds(seconds), arrival));

        private static string Short(SiteDecision d) => d switch
        {
            D.Persist p => "persist " + p.Event.GetType().Name,
            D.Reply r => "reply " + r.Message switch
            {
                SiteProtocol.Refused f => "refused: " + f.Reason,
                SiteProtocol.Deleted { ClientsCut: > 0 } gone => $"Deleted {gone.ClientsCut} cut",
                var m => m.GetType().Name,
            },
            D.SendToSite s => $"to {s.Site} {s.Message.GetType().Name}",
            D.TellCoordinator t => "coordinator " + t.Message.GetType().Name,
            D.CreateImage c => "create " + c.Path,
            D.ServeOwned s => "serve owned" + (s.Fenced ? " fenced" : ""),
            D.ServeArrival s => $"serve arrival {s.PersistenceId}{(s.Options.Hybrid ? " hybrid" : " postcopy")}",
            D.ArrivalJoinsOwned => "joins owned",
            D.StopServing s => "stop serving" + (s.ArrivalJournal is { } j ? " and delete " + j : ""),
            D.DeleteArrivalJournal j => "delete " + j.PersistenceId,
            D.Track t => $"track {t.BlockSize}{(t.Everything ? " all" : "")}",
            D.Untrack => "untrack",
            D.Fence => "fence",
            D.Unfence => "unfence",
            D.StartStream => "stream",
            D.StopStream => "stop stream",
            D.AskArrival a => "ask arrival " + a.Request.GetType().Name,
            D.TellArrival t => "tell arrival " + t.Message.GetType().Name,
            D.Log l => "log " + l.Event,
            _ => d.ToString(),
        };
    }

    [Fact]
    public void A_restart_serves_every_disk_as_its_phase_says()
    {
        Assert.Equal(["serve owned", "track 65536 all", "stream"], new Site(Owned, Outgoing).Said);
        Assert.Equal(["serve owned fenced"], new Site(Owned, Outgoing, new SiteEvents.DiskFenced("vm", 2, "b", [], "r1")).Said);
        // Post-copy or not: whether the handover happened lives in the disk actor's journal; a copy is safe either way.
        Assert.Equal(["serve arrival disk-vm-a-j1 hybrid"], new Site(Incoming).Said);
    }

    [Fact]
    public void An_arrival_out_of_space_is_the_coordinators_to_judge()
    {
        var site = new Site(Incoming);
        site.Do(new SiteInput.ArrivalStalled("vm", "no space"));
        Assert.Equal(["coordinator RelocationStalled"], site.Said);
        Assert.Equal(new RelocationStalled("vm", "r1", "a", "no space"), ((D.TellCoordinator)site.Decided[0]).Message);
        // An import has no coordinator and no other copy: it waits for room, and the log says why.
        var import = new Site(Incoming with { FromSite = "" });
        import.Do(new SiteInput.ArrivalStalled("vm", "no space"));
        Assert.Equal(["log None"], import.Said);
        // Not arriving (any more): nothing to say.
        var owned = new Site(Owned);
        owned.Do(new SiteInput.ArrivalStalled("vm", "no space"));
        Assert.Empty(owned.Said);
    }

    [Fact]
    public void An_arrival_keeps_the_operators_rate_cap_across_a_restart()
    {
        var site = new Site(Incoming, new SiteEvents.ArrivalRateSet("vm", 5_000_000));
        Assert.Equal(5_000_000, ((D.ServeArrival)site.Decided[0]).Options.Rate);
        site.Tell(new SetRate("vm", 5_000_000));
        Assert.Equal(["tell arrival SetRate"], site.Said); // unchanged: nothing to persist
    }

    private static Coordinator.RememberedBudget Link(string a, string b, long bandwidth, long stamp) => new(new Coordinator.LinkPair(a, b), bandwidth, stamp);

    [Fact]
    public void A_site_answers_with_the_link_budget_it_holds_and_keeps_the_newest_per_pair_across_a_restart()
    {
        var site = new Site(new SiteEvents.LinkBudgetRemembered(Link("a", "b", 40, 5)), new SiteEvents.LinkBudgetRemembered(Link("a", "c", 0, 7)));
        site.Tell(new RememberLinkBudget(Link("a", "b", 90, 4)));
        Assert.Equal(new LinkBudgetHeld("a", Link("a", "b", 40, 5)), ((D.Reply)site.Decided.Single()).Message);
        site.Tell(new RememberLinkBudget(Link("b", "a", 20, 8)));
        Assert.Equal(new SiteEvents.LinkBudgetRemembered(Link("a", "b", 20, 8)), ((D.Persist)site.Decided[0]).Event);
        Assert.Equal(new LinkBudgetHeld("a", Link("a", "b", 20, 8)), ((D.Reply)site.Decided[^1]).Message);
        Assert.Equal([Link("a", "b", 20, 8), Link("a", "c", 0, 7)], site.Core.State.Links);
        // Not a disk: nothing is served for it at a restart.
        Assert.Empty(new Site(new SiteEvents.LinkBudgetRemembered(Link("a", "b", 40, 5))).Said);
    }

    public static TheoryData<string, object[], object, string[]> Steps => new()
    {
        { "start", [Owned], new StartOutgoing("vm", "b", 1, 65536, "r1"), ["persist OutgoingBegun", "track 65536", "stream", "reply OutgoingStarted"] },
        { "start again (a retry)", [Owned, Outgoing], new StartOutgoing("vm", "b", 1, 65536, "r1"), ["reply OutgoingStarted"] },
        { "start another attempt", [Owned, Outgoing], new StartOutgoing("vm", "c", 1, 65536, "r2"), ["reply refused: disk 'vm' is outgoing on site a, not owned"] },
        { "start at an old epoch", [Owned], new StartOutgoing("vm", "b", 0, 65536, "r1"), ["reply refused: disk 'vm' is at epoch 1, not 0"] },
        { "start to itself", [Owned], new StartOutgoing("vm", "a", 1, 65536, "r1"), ["reply refused: disk 'vm' is already at a"] },
        { "start a stopped attempt (late)", [Owned, new SiteEvents.OutgoingEnded("vm", "r1")], new StartOutgoing("vm", "b", 1, 65536, "r1"),
            ["log EndedAttemptRefused", "reply refused: relocation r1 of 'vm' was stopped on site a; it is not started again"] },
        // The admission queue: kept at the owner, nothing else changes (no tracking, no stream: the disk is served as before).
        { "queue", [Owned], new QueueRelocation("vm", 1, "b", 7, false, 0, true, "r1"), ["persist RelocationQueued", "reply QueuedAt"] },
        { "queue again (a retry)", [Owned, Queued], new QueueRelocation("vm", 1, "b", 7, false, 0, true, "r1"), ["reply QueuedAt"] },
        { "queue a second relocation", [Owned, Queued], new QueueRelocation("vm", 1, "c", 8, false, 0, true, "r2"), ["reply QueueRefused"] },
        { "queue an outgoing disk", [Owned, Outgoing], new QueueRelocation("vm", 1, "c", 8, false, 0, true, "r2"), ["reply QueueRefused"] },
        { "queue at an old epoch", [Owned], new QueueRelocation("vm", 0, "b", 7, false, 0, true, "r1"), ["reply QueueRefused"] },
        { "queue an unknown disk", [], new QueueRelocation("vm", 1, "b", 7, false, 0, true, "r1"), ["reply QueueRefused"] },
        { "start a queued one", [Owned, Queued], new StartOutgoing("vm", "b", 1, 65536, "r1"), ["persist OutgoingBegun", "track 65536", "stream", "reply OutgoingStarted"] },
        { "unqueue", [Owned, Queued], new Unqueue("vm", "r1"), ["persist QueueLeft", "reply Unqueued"] },
        { "unqueue again", [Owned, Queued, new SiteEvents.QueueLeft("vm", "r1")], new Unqueue("vm", "r1"), ["reply Unqueued"] },
        { "start an unqueued one (late)", [Owned, Queued, new SiteEvents.QueueLeft("vm", "r1")], new StartOutgoing("vm", "b", 1, 65536, "r1"),
            ["log EndedAttemptRefused", "reply refused: relocation r1 of 'vm' was stopped on site a; it is not started again"] },
        { "delete a queued disk", [Owned, Queued], new SiteProtocol.DeleteDisk("vm"),
            ["reply refused: disk 'vm' waits in the admission queue for a relocation to b: cancel it first (reloc relocation cancel vm)"] },
        // Link budgets set at run time, remembered for a coordinator that takes over (the answer goes out once durable).
        { "remember a link budget", [], new RememberLinkBudget(Link("a", "b", 40, 5)), ["persist LinkBudgetRemembered", "log None", "reply LinkBudgetHeld"] },
        { "remember it again (a repair, a retry)", [new SiteEvents.LinkBudgetRemembered(Link("a", "b", 40, 5))], new RememberLinkBudget(Link("a", "b", 40, 5)), ["reply LinkBudgetHeld"] },
        { "an older one: the newer stays", [new SiteEvents.LinkBudgetRemembered(Link("a", "b", 40, 5))], new RememberLinkBudget(Link("a", "b", 90, 4)), ["reply LinkBudgetHeld"] },
        { "a newer one", [new SiteEvents.LinkBudgetRemembered(Link("a", "b", 40, 5))], new RememberLinkBudget(Link("a", "b", 0, 6)), ["persist LinkBudgetRemembered", "log None", "reply LinkBudgetHeld"] },
        { "a pair this site is not on", [], new RememberLinkBudget(Link("b", "c", 40, 5)), ["reply refused: site a is not on link b<->c: only its two sites keep its budget"] },
        { "a negative budget", [], new RememberLinkBudget(Link("a", "b", -1, 5)), ["reply refused: a link's bandwidth must not be negative, not -1"] },
        { "stop", [Owned, Outgoing], new StopOutgoing("vm", 1, "r1"), ["persist OutgoingEnded", "stop stream", "untrack", "reply OutgoingStopped"] },
        { "stop before the start arrived", [Owned], new StopOutgoing("vm", 1, "r1"), ["persist OutgoingEnded", "reply OutgoingStopped"] },
        { "stop again", [Owned, new SiteEvents.OutgoingEnded("vm", "r1")], new StopOutgoing("vm", 1, "r1"), ["reply OutgoingStopped"] },
        { "stop another attempt", [Owned, Outgoing], new StopOutgoing("vm", 1, "r2"), ["reply OutgoingStopped"] },
        { "stop past the handover", [Owned, Outgoing, new SiteEvents.DiskFenced("vm", 2, "b", [], "r1")], new StopOutgoing("vm", 1, "r1"),
            ["log StopRefusedFenced", "reply refused: disk 'vm' is fenced on site a: past the handover a relocation cannot be cancelled"] },
        { "fence", [Owned, Outgoing], new Fence("vm", 2, "r1"), ["fence"] },
        { "fence another attempt", [Owned, Outgoing], new Fence("vm", 2, "r2"), ["reply refused: cannot fence 'vm' at epoch 2 for relocation r2: it is outgoing at epoch 1 on site a"] },
        { "fence again once fenced", [Owned, Outgoing, new SiteEvents.DiskFenced("vm", 2, "b", [(3, 1)], "r1")], new Fence("vm", 2, "r1"), ["reply Fenced"] },
        { "release", [Owned, Outgoing, new SiteEvents.DiskFenced("vm", 2, "b", [], "r1")], new Release("vm", 2, "r1"), ["persist DiskRemoved", "stop serving", "reply Released"] },
        { "release again", [], new Release("vm", 2, "r1"), ["reply Released"] },
        { "prepare", [], new PrepareIncoming("vm", Size, "a", "nbd://a:10809/vm@peer", 1, false, 0, true, "r1"), ["create /d/vm.img"] },
        { "prepare again (a retry)", [Incoming], new PrepareIncoming("vm", Size, "a", "nbd://a:10809/vm@peer", 1, false, 0, true, "r1"), ["reply IncomingPrepared"] },
        { "prepare another attempt", [Incoming], new PrepareIncoming("vm", Size, "a", "nbd://a:10809/vm@peer", 1, false, 0, true, "r2"),
            ["log PrepareRefusedOtherCopy", "reply refused: disk 'vm' already exists on site a"] },
        { "invalidate", [Incoming], new InvalidateAt("vm", 1, 1, [(1, 2)], "r1"), ["ask arrival Invalidate"] },
        { "invalidate by another attempt", [Incoming], new InvalidateAt("vm", 1, 1, [(1, 2)], "r2"), ["reply refused: no disk 'vm' arriving at site a by relocation r2"] },
        { "take ownership", [Incoming], new TakeOwnershipAt("vm", 2, [], "r1"), ["ask arrival TakeOwnership", "tell arrival ResumePrefetch"] },
        { "take ownership at a later epoch", [Incoming], new TakeOwnershipAt("vm", 3, [], "r1"),
            ["log TakeOwnershipRefused", "reply refused: disk 'vm' arrives at epoch 1: ownership at 3 refused"] },
        { "a rate cap", [Incoming], new SetRate("vm", 1000), ["persist ArrivalRateSet", "tell arrival SetRate"] },
        { "create", [], new SiteProtocol.CreateDisk("new", Size), ["create /d/new.img"] },
        { "create a bad name", [], new SiteProtocol.CreateDisk("../x", Size), ["reply refused: disk name '../x' must start with a letter or a digit"] },
        { "create a peer export's name", [], new SiteProtocol.CreateDisk("vm@peer", Size), ["reply refused: disk name 'vm@peer' must not contain '@' (the site's internal export names use it)"] },
        { "create a ragged size", [], new SiteProtocol.CreateDisk("new", Size + 1), ["reply refused: disk size 1048577 bytes is not a whole number of 512-byte sectors (the nearest: 1048576 or 1049088)"] },
        { "delete while relocating", [Owned, Outgoing], new SiteProtocol.DeleteDisk("vm"), ["reply refused: disk 'vm' is outgoing on site a: cancel or finish its relocation first"] },
        { "delete", [Owned], new SiteProtocol.DeleteDisk("vm"), ["persist DiskRemoved", "stop serving", "reply Deleted"] },
        { "delete with guests connected", [Owned, Clients(2)], new SiteProtocol.DeleteDisk("vm"),
            ["reply refused: disk 'vm' has 2 guest clients connected on site a: disconnect them first, or force the delete (their connections then fail every request)"] },
        { "delete with guests connected, forced", [Owned, Clients(1)], new SiteProtocol.DeleteDisk("vm", Force: true),
            ["persist DiskRemoved", "log None", "stop serving", "reply Deleted 1 cut"] },
        { "delete after the guests left", [Owned, Clients(1), Clients(0)], new SiteProtocol.DeleteDisk("vm"), ["persist DiskRemoved", "stop serving", "reply Deleted"] },
    };

    [Theory]
    [MemberData(nameof(Steps))]
    public void A_step(string name, object[] journal, object step, string[] decisions)
    {
        var site = new Site(journal);
        site.Tell(step);
        Assert.True(decisions.SequenceEqual(site.Said), $"{name}: {string.Join(" | ", site.Said)}");
    }

    [Fact]
    public void A_drop_waits_for_the_disk_actor_to_say_it_does_not_own_the_disk()
    {
        var site = new Site(Incoming);
        var drop = new DropIncoming("vm", 1, "r1");
        site.Tell(drop, new ArrivalFacts(Recovered: false, IsOwner: false, 0));
        Assert.Equal(["log DropRefusedRecovering", "reply refused: disk 'vm' on site a is still recovering: not dropped"], site.Said);
        site.Tell(drop, new ArrivalFacts(Recovered: true, IsOwner: true, 0));
        Assert.Equal(["log DropRefusedOwner", "reply refused: disk 'vm' on site a is owned here: not dropped"], site.Said);
        site.Tell(drop, new ArrivalFacts(Recovered: true, IsOwner: false, 0));
        Assert.Equal(["persist DiskRemoved", "stop serving and delete disk-vm-a-j1", "reply IncomingDropped"], site.Said);
        site.Tell(drop);
        Assert.Equal(["reply IncomingDropped"], site.Said);
    }

    [Fact]
    public void The_final_dirty_set_holds_what_the_fence_drained_and_every_unacknowledged_invalidation()
    {
        var site = new Site(Owned, Outgoing);
        site.Do(new SiteInput.StreamTick("vm", [(5, 1)], T0));
        Assert.Equal(["to b InvalidateAt"], site.Said);
        site.Do(new SiteInput.StreamTick("vm", [(7, 2)], T0.AddMilliseconds(200)));
        site.Tell(new InvalidatedAt("vm", 1, 2, "r1")); // the second was acknowledged, the first not
        site.Do(new SiteInput.StreamTick("vm", [], T0.AddSeconds(1)));
        Assert.Equal(["to b InvalidateAt"], site.Said); // the first, sent again
        Assert.Equal([(5L, 1L)], ((InvalidateAt)((D.SendToSite)site.Decided[0]).Message).Blocks);
        site.Tell(new Fence("vm", 2, "r1"));
        site.Tell(new Fence("vm", 2, "r1"));
        Assert.Empty(site.Said); // under way: its answer will come
        site.Tell(new StopOutgoing("vm", 1, "r1"));
        Assert.Equal(["log StopRefusedFencing", "reply refused: disk 'vm' is being fenced on site a: past the handover a relocation cannot be cancelled"], site.Said);
        site.Do(new SiteInput.FenceDone("vm", null, [(1, 1)]));
        Assert.Equal(["persist DiskFenced", "stop stream", "untrack", "reply Fenced"], site.Said);
        Assert.Equal([(1L, 1L), (5L, 1L)], ((Fenced)((D.Reply)site.Decided[^1]).Message).FinalDirty);
    }

    [Fact]
    public void A_fence_that_failed_to_flush_is_lifted_and_one_of_an_earlier_incarnation_is_ignored()
    {
        var site = new Site(Owned, Outgoing);
        site.Tell(new Fence("vm", 2, "r1"));
        site.Do(new SiteInput.FenceDone("vm", "EIO", []));
        Assert.Equal(["unfence", "reply refused: fencing vm failed: EIO"], site.Said);
        site.Do(new SiteInput.FenceDone("vm", null, [])); // no fence under way (a restart, or answered already)
        Assert.Empty(site.Said);
    }

    [Fact]
    public void An_arrival_is_registered_once_its_image_exists_and_a_retry_meanwhile_waits_for_its_answer()
    {
        var site = new Site();
        var prepare = new PrepareIncoming("vm", Size, "a", "nbd://a:10809/vm@peer", 1, false, 7, true, "r1");
        site.Tell(prepare);
        site.Tell(prepare);
        Assert.Empty(site.Said);
        site.Do(new SiteInput.ImageCreated("vm", Size));
        Assert.Equal(["persist IncomingAdded", "serve arrival disk-vm-a-id1 postcopy", "reply IncomingPrepared"], site.Said);
        Assert.Equal(new ArrivalOptions(false, 7, true), ((SiteEvents.IncomingAdded)((D.Persist)site.Decided[0]).Event).Options);
        var failing = new Site();
        failing.Tell(prepare);
        failing.Do(new SiteInput.ImageFailed("vm", "No space left on device"));
        Assert.Equal(["log None", "reply refused: site a cannot create disk 'vm': No space left on device"], failing.Said);
        Assert.Empty(failing.Core.State.Disks);
    }

    [Fact]
    public void An_arrival_that_finished_is_owned_at_the_new_epoch_and_its_journal_goes()
    {
        var site = new Site(Incoming);
        site.Do(new SiteInput.ArrivalFinished("vm"));
        Assert.Equal(["persist DiskAdded", "joins owned", "delete disk-vm-a-j1", "coordinator RelocationDone", "log ArrivedJoinsOwned"], site.Said);
        Assert.True(site.Core.State.TryGet("vm", out var d) && d is { Phase: DiskPhase.Owned, Epoch: 2 });
        site.Tell(new StartOutgoing("vm", "c", 2, 65536, "r2")); // movable on at once
        Assert.Equal("reply OutgoingStarted", site.Said[^1]);
    }

    [Fact]
    public void Guest_counts_reach_the_coordinator_only_for_a_disk_in_a_relocation()
    {
        var idle = new Site(Owned);
        idle.Do(new SiteInput.ClientsChanged("vm", 1));
        Assert.Empty(idle.Said);
        var outgoing = new Site(Owned, Outgoing);
        outgoing.Do(new SiteInput.ClientsChanged("vm", 1));
        Assert.Equal(["coordinator GuestClients"], outgoing.Said);
    }

    [Fact]
    public void Ranges_reported_in_tracking_units_cover_every_local_block_they_touch()
    {
        Assert.Equal([(16L, 32L)], SiteContext.ToLocalBlocks([(1, 2)], 4096));
        Assert.Equal([(0L, 32L)], SiteContext.ToLocalBlocks([(0, 1), (1, 1)], 4096)); // merged
        Assert.Equal([(3L, 1L)], SiteContext.ToLocalBlocks([(3, 1)], 65536));
    }
}
