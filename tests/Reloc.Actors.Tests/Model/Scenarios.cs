using static Reloc.Actors.Coordinator.RelocationProtocol;

namespace Reloc.Actors.Tests.Model;

/// <summary>
/// Directed runs of the model: a scripted operator, no random faults, and a hand on the network (one
/// message delayed or duplicated). Each reproduces one finding of the randomized search, or tests a
/// hypothesis from reading the code, independently of how the random seeds fall.
/// </summary>
internal static class Scenarios
{
    private static SimOptions Quiet(int blocks = 4) => new()
    {
        Sites = 3, Blocks = blocks, FifoPerPair = true, GuestMigrates = false, ChaosMs = 30_000, QuiesceMs = 120_000,
    };

    /// <summary>Delivers the first message matching <paramref name="match"/> as usual and a copy of it at
    /// <paramref name="copyAtMs"/> (absolute): a retry or a duplicate that took the long way.</summary>
    private static Func<Sim, string, string, object, IReadOnlyList<long>?> DuplicateFirst(Func<object, bool> match, long copyAtMs)
    {
        bool done = false;
        return (sim, _, _, body) =>
        {
            if (done || !match(body)) return null;
            done = true;
            return [5, Math.Max(5, copyAtMs - sim.Now)];
        };
    }

    private static Func<Sim, string, string, object, IReadOnlyList<long>?> All(params Func<Sim, string, string, object, IReadOnlyList<long>?>[] rules) =>
        (sim, from, to, body) => rules.Select(r => r(sim, from, to, body)).FirstOrDefault(r => r is not null);

    private static Relocate To(string site, bool hybrid = false, bool prefetch = true) => new(Sim.DiskName, site, Hybrid: hybrid, Prefetch: prefetch);

    /// <summary>F1: a→b completes, then b→c: b has no OwnedDisk for a disk that arrived by relocation (SiteActor._images
    /// is filled only by Export at recovery), so StartOutgoing is refused until b restarts.</summary>
    public static SimOptions ArrivedDiskCannotLeave() => Quiet() with
    {
        Script =
        [
            (300, s => s.Ask(To("b"))),
            (1_500, s => s.Ask(new RequestHandover(Sim.DiskName))),
            (6_000, s => s.Ask(To("c"))),
            (7_500, s => s.Ask(new RequestHandover(Sim.DiskName))),
        ],
    };

    /// <summary>F2: the guest's write at the destination is held for the handover; the handover takes longer than
    /// the guest's ask timeout (35 s: the source is unreachable for the coordinator); after it, the held write is
    /// granted to nobody and its block stays reserved.</summary>
    public static SimOptions HeldWriteOutlivesItsAsk() => Quiet(blocks: 16) with
    {
        GuestMigrates = true,
        Script = [(300, s => s.Ask(To("b", prefetch: false)))],
        ChaosMs = 60_000,
        // Every Fence is lost until 45 s (a partition between the coordinator and the source).
        Intercept = (sim, _, _, body) => body is Fence && sim.Now < 45_000 ? [] : null,
    };

    /// <summary>F3 (needs reordering within a node pair, or a second coordinator): the coordinator's first reconcile round waits 5.5 s for b's answer; meanwhile a→b starts and a is
    /// fenced (its Fenced reply lost). The round combines a's answer from t≈0 (owned, epoch 1) with b's (incoming,
    /// epoch 1): the Reconciler derives "cancelling" (the Stale() guard of OnObserved keeps the flow it has from
    /// acting on it; were it adopted, a, fenced for it, would refuse the StopOutgoing that must precede the drop).</summary>
    public static SimOptions MixedAgeRoundDropsTheDestination()
    {
        bool fencedLost = false;
        return Quiet() with
        {
            FifoPerPair = false, // one coordinator: the slow answer must not hold back the rest of b's traffic
            Script =
            [
                (300, s => s.Ask(To("b"))),
                (1_000, s => s.Ask(new RequestHandover(Sim.DiskName))),
            ],
            Intercept = (sim, from, to, body) =>
            {
                if (body is Reloc.Actors.Site.SiteProtocol.ListDisks && to == "b" && sim.Now < 100) return [5_500];
                if (body is Fenced && !fencedLost) { fencedLost = true; return []; }
                return null;
            },
        };
    }

    /// <summary>F4: a→b is cancelled (same epoch kept); a copy of its PrepareIncoming arrives at b after the cancel, so b
    /// copies from a, which does not track writes; a new a→b at the same epoch (its ask to a slow, so b's answer
    /// predates the stale copy) takes b's copy as a retry: writes made at a in between are never invalidated.</summary>
    public static SimOptions StalePrepareAfterCancel() => Quiet(blocks: 16) with
    {
        Script =
        [
            (300, s => s.Ask(To("b", hybrid: true))),
            (1_000, s => s.Failover()), // the copy of k1's PrepareIncoming is still in flight
            (2_000, s => s.Ask(new CancelRelocation(Sim.DiskName))),
            (2_800, s => s.Ask(To("b", hybrid: true))),
            (5_100, s => s.Ask(new RequestHandover(Sim.DiskName))),
        ],
        Intercept = All(
            DuplicateFirst(m => m is PrepareIncoming, copyAtMs: 3_000),
            (sim, _, to, body) => body is Reloc.Actors.Site.SiteProtocol.ListDisks && to == "a" && sim.Now is >= 2_800 and < 2_900 ? [2_000] : null),
    };

    /// <summary>Hypothesis (a): a TakeOwnershipAt of the first of three relocations (a→b, b→a, a→b) arrives late at b,
    /// which now holds an incoming copy of the third; before ownership a relocating disk's DiskState.Epoch is 0 and
    /// the SiteActor does not compare the epoch with its incoming disk's, so b takes ownership at epoch 2 while a
    /// still accepts writes at epoch 3.</summary>
    public static SimOptions StaleTakeOwnership() => Quiet() with
    {
        Script =
        [
            (300, s => s.Ask(To("b"))),
            (1_500, s => s.Ask(new RequestHandover(Sim.DiskName))),
            (1_600, s => s.Failover()), // the copy of k1's TakeOwnershipAt is still in flight
            (4_000, s => s.Bounce("b")), // F1's workaround: b can only be a source after a restart
            (5_000, s => s.Ask(To("a"))),
            (6_500, s => s.Ask(new RequestHandover(Sim.DiskName))),
            (12_000, s => s.Bounce("a")),
            (13_000, s => s.Ask(To("b", prefetch: false))),
        ],
        Intercept = DuplicateFirst(m => m is TakeOwnershipAt { NewEpoch: 2 }, copyAtMs: 16_000),
    };

    /// <summary>Hypothesis (b): a copy of a cancelled relocation's DropIncoming (same epoch) reaches b just after b
    /// restarted, while its disk actor still recovers: DiskState.IsOwner reads false until the journal is replayed,
    /// so b drops a disk it owns (with writes acknowledged there), and a is fenced for it.</summary>
    public static SimOptions DropDuringRecovery() => Quiet(blocks: 64) with
    {
        Script =
        [
            (300, s => s.Ask(To("b", prefetch: false))),
            (1_500, s => s.Ask(new CancelRelocation(Sim.DiskName))),
            (1_700, s => s.Failover()), // the copy of k1's DropIncoming is still in flight
            (3_000, s => s.Ask(To("b", prefetch: false))),
            (4_000, s => s.Ask(new RequestHandover(Sim.DiskName))),
            (7_999, s => s.Bounce("b")),
        ],
        Intercept = DuplicateFirst(m => m is DropIncoming, copyAtMs: 8_000),
    };

    /// <summary>Hypothesis (c): a StopOutgoing (a copy from an earlier cancel at the same epoch) reaches the source
    /// while its fence's flush is under way: the relocation ends (owned again) but OwnedDisk stays fenced, and
    /// FenceDone is ignored: the owner refuses the guest's writes until it restarts.</summary>
    public static SimOptions StopDuringFence() => Quiet() with
    {
        Script =
        [
            (300, s => s.Ask(To("b"))),
            (1_500, s => s.Ask(new CancelRelocation(Sim.DiskName))),
            (1_700, s => s.Failover()), // the copy of k1's StopOutgoing is still in flight
            (3_000, s => s.Ask(To("b"))),
            (5_000, s => s.Ask(new RequestHandover(Sim.DiskName))),
        ],
        Intercept = All(
            DuplicateFirst(m => m is StopOutgoing, copyAtMs: 5_000 + 41), // just after the Fence (5 040), during its flush
            (sim, _, _, body) => body is Fence && sim.Now >= 5_000 ? [40] : null),
    };

    /// <summary>F6 with a consequence (needs reordering within a node pair): a late copy of a→b's OutgoingStarted (epoch 1) reaches the coordinator while
    /// b→c (epoch 2) waits in "starting" (its StartOutgoing slow): the flow goes on to "preparing", c copies from b
    /// before b tracks writes, and the handover loses them.</summary>
    public static SimOptions StaleOutgoingStarted() => Quiet(blocks: 16) with
    {
        FifoPerPair = false,
        Script =
        [
            (300, s => s.Ask(To("b"))),
            (1_500, s => s.Ask(new RequestHandover(Sim.DiskName))),
            (4_000, s => s.Bounce("b")),
            (5_000, s => s.Ask(To("c", hybrid: true))),
            (14_300, s => s.Ask(new RequestHandover(Sim.DiskName))),
        ],
        Intercept = All(
            DuplicateFirst(m => m is OutgoingStarted { Epoch: 1 }, copyAtMs: 12_000),
            (sim, _, _, body) => body is StartOutgoing { Epoch: 2 } ? [Math.Max(5, 14_000 - sim.Now)] : null),
    };

    /// <summary>F5: a→b is cancelled but every DropIncoming is lost for a while (and the coordinator that cancelled
    /// fails over), so b keeps an incoming copy its source no longer sends; the disk moves on a→c and a lets it go.
    /// The Reconciler must remove b's copy (its source shows no such relocation), or it stays forever.</summary>
    public static SimOptions LeftoverCopyIsDropped() => Quiet() with
    {
        Script =
        [
            (300, s => s.Ask(To("b"))),
            (1_500, s => s.Ask(new CancelRelocation(Sim.DiskName))),
            (2_500, s => s.Failover()),
            (4_000, s => s.Ask(To("c", hybrid: true))),
            (5_500, s => s.Ask(new RequestHandover(Sim.DiskName))),
        ],
        Intercept = (sim, _, _, body) => body is DropIncoming && sim.Now < 12_000 ? [] : null,
    };

    /// <summary>F7: b's disk actor journals RelocationCompleted and b crashes before its site journals DiskAdded.
    /// After the restart the disk actor recovers complete: it must tell its site again, or b calls the disk
    /// incoming forever and a is never released.</summary>
    public static SimOptions CrashBetweenCompletionAndRegistration()
    {
        bool crashed = false;
        return Quiet() with
        {
            Script =
            [
                (300, s => s.Ask(To("b", hybrid: true))),
                (1_500, s => s.Ask(new RequestHandover(Sim.DiskName))),
            ],
            AfterDiskComplete = (sim, site) =>
            {
                if (crashed || site.Name != "b") return;
                crashed = true;
                site.Crash();
                sim.After(500, site.Restart);
            },
        };
    }

    /// <summary>F8: split brain: k1 keeps its flow a→b (serving) while k2, the new singleton, cancels that relocation
    /// and starts a→c. k1 must follow the relocation the sites show (a→c, by its id), not resume its own a→b.</summary>
    public static SimOptions ZombieFlowFollowsTheSites() => Quiet() with
    {
        Script =
        [
            (300, s => s.Ask(To("b"))),
            (1_000, s => s.SplitBrain()), // k1 keeps running with its flow a→b
            (2_500, s => s.Ask(new CancelRelocation(Sim.DiskName))),
            (2_700, s => s.Ask(To("c"))),
            (9_000, s => s.Ask(new RequestHandover(Sim.DiskName))),
        ],
    };

    /// <summary>F12: one coordinator, Akka-like FIFO delivery, no fail-over. Site c restarts just as the reconcile
    /// round of 2 s asks it: that round waits for c's answer until the ask times out (12 s) and combines a's answer
    /// (outgoing by r1) and b's (nothing yet) from 2 s. Meanwhile r1 (a→b) and r2 (b→a) both finish. The coordinator
    /// has no flow any more, so it adopts r1 as "preparing" and sends PrepareIncoming(r1) to b. Before the fix b's new
    /// incoming copy got the journal key r1 (IncomingAdded.Journal was the relocation id): its disk actor replayed r1's
    /// old journal (OwnershipTaken(2), RelocationCompleted) over a freshly created, empty image: b owned the disk at
    /// epoch 2 and served zeros, while a owned it at epoch 3. Now the journal is fresh for every arrival
    /// (SiteActor.OnPrepareIncoming; IncomingAdded.Relocation carries the id): the copy starts empty, is never
    /// owned, and the reconciler drops it once a confirms it does not send it.</summary>
    public static SimOptions LostAnswerRevivesAFinishedRelocation()
    {
        bool startedHeld = false;
        return Quiet() with
        {
            Script =
            [
                (1_500, s => s.Ask(To("b", hybrid: true))),
                (1_995, s => s.Bounce("c", downMs: 1_000)),
                (3_000, s => s.Ask(new RequestHandover(Sim.DiskName))),
                (6_000, s => s.Ask(To("a", hybrid: true))),
                (7_500, s => s.Ask(new RequestHandover(Sim.DiskName))),
            ],
            // a tracks by r1 before the round of 2 s asks it; the coordinator hears so (and prepares b) only after.
            Intercept = (sim, _, _, body) =>
            {
                if (body is not OutgoingStarted || startedHeld) return null;
                startedHeld = true;
                return [Math.Max(5, 2_100 - sim.Now)];
            },
        };
    }

    /// <summary>F3, what remains: split brain with Akka-like FIFO delivery. k1 (no flow of its own) asks a and b
    /// at 2 s; its question to b is delayed until 8 s. k2, the singleton, runs a→b (r1) meanwhile and fences a at
    /// about 4 s; its TakeOwnershipAt is slow. k1's round combines a's answer from 2 s (owned) with b's from 8 s
    /// (incoming by r1): the Reconciler derives "cancelling", and k1 adopts that flow (the Stale() guard only covers
    /// flows it already had). Before the fix it sent DropIncoming at once: b dropped its copy; a was fenced for nobody.
    /// Now the derived step is StopOutgoing(r1) to a (Reconciler.Derive, DropAt b), and the drop waits for a's
    /// OutgoingStopped (MigrationCoordinator._dropsAfterStop): a, fenced for r1, refuses, and b's copy stays.</summary>
    public static SimOptions ZombieAdoptsAMixedAgeRound() => Quiet() with
    {
        Script =
        [
            (300, s => s.SplitBrain()),
            (2_500, s => s.Ask(To("b"))),
            (4_000, s => s.Ask(new RequestHandover(Sim.DiskName))),
        ],
        Intercept = (sim, from, to, body) =>
        {
            if (body is Reloc.Actors.Site.SiteProtocol.ListDisks && from == "k1" && to == "b" && sim.Now is >= 2_000 and < 2_100) return [6_000];
            if (body is TakeOwnershipAt && sim.Now < 8_500) return [Math.Max(5, 9_000 - sim.Now)];
            return null;
        },
    };

    /// <summary>F13: c is fenced for b by r2 and goes down before its Release arrives; the
    /// coordinator fails over meanwhile (the new one cannot see c). c comes back just before the operator moves the
    /// disk on b→a (possible at once since F1's fix). Before the fix the coordinator accepted it (it only refused a
    /// leftover copy at the target), the Reconciler followed b's outgoing copy, and once b let the disk go c was
    /// "fenced for b, which does not have it": an anomaly nothing repaired, and the disk could never come back to c.
    /// Now b→a is refused while c holds a copy (MigrationCoordinator.OnFound), the reconciler releases c's copy, the
    /// operator's next try moves the disk to a, and then back to c.</summary>
    public static SimOptions FencedCopyOutlivesTheMoveOn() => Quiet() with
    {
        FlushMs = 5,
        Script =
        [
            (300, s => s.Ask(To("c", hybrid: true))),
            (1_500, s => s.Ask(new RequestHandover(Sim.DiskName))),
            (4_000, s => s.Ask(To("b", hybrid: true))),
            (5_500, s => s.Ask(new RequestHandover(Sim.DiskName))),
            (7_000, s => s.Bounce("c", downMs: 6_000)),
            (8_000, s => s.Failover()),
            (13_050, s => s.Ask(To("a", hybrid: true))),
            (14_500, s => s.Ask(new RequestHandover(Sim.DiskName))),
            // "try again shortly": the rounds that asked c while it was down wait for their asks to time out (10 s).
            (23_000, s => s.Ask(To("a", hybrid: true))),
            (24_500, s => s.Ask(new RequestHandover(Sim.DiskName))),
            (27_000, s => s.Ask(To("c", hybrid: true))),
            (28_500, s => s.Ask(new RequestHandover(Sim.DiskName))),
        ],
        Intercept = (sim, _, _, body) => body is Release { Epoch: 3 } && sim.Now < 12_000 ? [] : null, // r2's
    };

    /// <summary>F11 with the same relocation: k1 (which lost the singleton role) cancels r1 while k2 hands it over; k1's
    /// StopOutgoing(r1) reaches a while the fence's flush is under way. It must be refused (the fence goes on), not
    /// end the relocation with the owner still fenced.</summary>
    public static SimOptions SameRelocationStopDuringFence() => Quiet() with
    {
        FlushMs = 500,
        Script =
        [
            (300, s => s.Ask(To("b"))),
            (1_000, s => s.SplitBrain()), // k2 adopts r1 from the sites
            (3_000, s => s.AskCoordinator(1, new CancelRelocation(Sim.DiskName))),
            (3_000, s => s.Ask(new RequestHandover(Sim.DiskName))),
        ],
        // k1's StopOutgoing arrives 200 ms after k2's Fence: during its 500 ms flush.
        Intercept = (sim, from, _, body) => body is StopOutgoing && from == "k1" ? [200] : null,
    };

    /// <summary>F10 with the same relocation: as in <see cref="ZombieAdoptsAMixedAgeRound"/>, k1 adopts "cancelling"
    /// from a round of mixed ages (a's answer from 2 s: owned; b's from 3 s: incoming by r1), but its DropIncoming(r1)
    /// is slow: b owns the disk by then and has just restarted, so it arrives while b's disk actor replays its journal
    /// (IsOwner still false). It must be refused. (Since F3's fix the drop follows a's OutgoingStopped, which a gives
    /// only if it is still outgoing by r1, i.e. before the handover; the drop is delayed past b's restart anyway.)</summary>
    public static SimOptions SameRelocationDropDuringRecovery() => Quiet(blocks: 64) with
    {
        Script =
        [
            (300, s => s.SplitBrain()),
            (2_500, s => s.Ask(To("b", prefetch: false))),
            (4_000, s => s.Ask(new RequestHandover(Sim.DiskName))),
            (8_999, s => s.Bounce("b")),
        ],
        Intercept = (sim, from, to, body) =>
        {
            if (body is Reloc.Actors.Site.SiteProtocol.ListDisks && from == "k1" && to == "b" && sim.Now is >= 2_000 and < 2_100) return [1_000];
            if (body is DropIncoming && sim.Now < 9_000) return [9_000 - sim.Now];
            return null;
        },
    };

    /// <summary>Issue 10 (liveness): an idle disk (no VM) whose idle signal, OutgoingStarted with no clients, is lost
    /// every time: the relocation serves with no trigger, and nobody asks for the handover. The reconciler's idle
    /// rule (the source without guests on judged rounds for <see cref="Reloc.Actors.Coordinator.CoordinatorCore.IdleRounds"/>
    /// intervals) hands it over; without it, it serves until the bound of invariant 5.</summary>
    public static SimOptions IdleSignalLost() => Quiet() with
    {
        GuestRuns = false,
        GuestMigrates = true, // the operator leaves a migrating VM's relocation to its triggers
        QuiesceMs = Sim.EndsWithinMs + 30_000,
        Script = [(300, s => s.Ask(To("b")))],
        Intercept = (_, _, _, body) => body is OutgoingStarted ? [] : null,
    };
}
