using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Reloc.Actors.Tests.Model;
using Xunit;
using Xunit.Abstractions;

namespace Reloc.Actors.Tests;

/// <summary>
/// Randomized test of the ownership protocol of issue 4 (see Model/): state machines mirroring SiteActor,
/// OwnedDisk and RelocatingDisk, and shells of the production CoordinatorCore and DiskCore (as MigrationCoordinator
/// and VirtualDiskActor are), over the real SiteState, SiteEvents, DiskState/BlockMap, DiskEvents and Reconciler, run as a seeded discrete-event simulation with
/// message reordering, loss, duplication, long delays, site crashes, coordinator fail-overs (and split brain)
/// and partitions. Invariants checked after every event: (1) one writer, per epoch too; (2) a message with an
/// older epoch, or of another relocation than the receiver's, changes nothing; (3) a fetch issued before an
/// invalidation never lands after it; (4) no acknowledged write is lost: reads see it, the handover keeps it,
/// and once the faults stop the relocation completes or aborts cleanly with every acknowledged (flushed, if its
/// site crashed) version at the owner; (5) once the faults stop, every relocation ends within a bound. A failing seed prints its options, the violation and the event trace;
/// replay it with <see cref="Replay"/>.
/// Every finding so far (F1..F13) is a regression test now, each a directed scenario of Model/Scenarios.cs (or a
/// seed) that checks it exercises the protection added for it. A finding still open would be kept as a skipped
/// test, and the randomized run would report the seeds that hit it (<see cref="KnownFinding"/>) and fail on any
/// other violation; none is open.
/// </summary>
public sealed class OwnershipProtocolModelTests(ITestOutputHelper output)
{
    internal static (ModelViolation? Violation, Sim Sim) RunSeed(int seed, SimOptions? options = null, bool trace = false)
    {
        var sim = new Sim(seed, options ?? SimOptions.Draw(seed), trace);
        try
        {
            sim.Run();
            return (null, sim);
        }
        catch (ModelViolation v)
        {
            return (v, sim);
        }
    }

    private string Report(int seed, SimOptions? options = null, int lastLines = 400)
    {
        var (violation, sim) = RunSeed(seed, options, trace: true);
        var sb = new StringBuilder();
        sb.AppendLine($"seed {seed}: {sim.O}");
        sb.AppendLine(violation?.Message ?? "no violation");
        var lines = sim.TraceLines;
        if (lines.Count > lastLines) sb.AppendLine($"... ({lines.Count - lastLines} earlier trace lines)");
        foreach (var l in lines.Skip(Math.Max(0, lines.Count - lastLines))) sb.AppendLine(l);
        return sb.ToString();
    }

    /// <summary>5000 seeds (about 15 s on two cores); RELOC_MODEL_SEEDS and RELOC_MODEL_FROM run others.</summary>
    [Fact]
    public void Thousands_of_seeds_keep_the_invariants()
    {
        int seeds = int.TryParse(Environment.GetEnvironmentVariable("RELOC_MODEL_SEEDS"), out var n) ? n : 5000;
        int from = int.TryParse(Environment.GetEnvironmentVariable("RELOC_MODEL_FROM"), out var f0) ? f0 : 0;
        var watch = Stopwatch.StartNew();
        var failures = new ConcurrentBag<(int Seed, ModelViolation Violation, string? Known)>();
        long events = 0, handovers = 0, completions = 0, cancels = 0, writes = 0, reads = 0, crashes = 0, failovers = 0;
        Parallel.For(from, from + seeds, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, seed =>
        {
            var (violation, sim) = RunSeed(seed);
            if (violation is not null) failures.Add((seed, violation, KnownFinding(violation, sim)));
            Interlocked.Add(ref events, sim.Events);
            Interlocked.Add(ref handovers, sim.Stats.Handovers);
            Interlocked.Add(ref completions, sim.Stats.Completions);
            Interlocked.Add(ref cancels, sim.Stats.Cancels);
            Interlocked.Add(ref writes, sim.Stats.Writes);
            Interlocked.Add(ref reads, sim.Stats.Reads);
            Interlocked.Add(ref crashes, sim.Stats.Crashes);
            Interlocked.Add(ref failovers, sim.Stats.Failovers);
        });
        output.WriteLine($"{seeds} seeds in {watch.Elapsed.TotalSeconds:0.0} s: {events} events, {handovers} handovers, {completions} completed relocations, " +
                         $"{cancels} cancels, {writes} acknowledged writes, {reads} reads, {crashes} site crashes, {failovers} coordinator starts");
        var known = failures.Where(f => f.Known is not null).ToList();
        foreach (var g in known.GroupBy(f => f.Known))
            output.WriteLine($"known finding ({g.Count()} seeds, e.g. {string.Join(", ", g.Select(f => f.Seed).Order().Take(5))}): {g.Key}");
        // The search must reach what it is meant to check.
        Assert.True(handovers > seeds / 2 && completions > seeds / 2 && cancels > seeds / 5 && crashes > seeds && failovers > seeds,
            "the random runs no longer reach handovers, cancels, crashes and fail-overs often enough");
        var fresh = failures.Except(known).OrderBy(f => f.Seed).ToList();
        foreach (var g in fresh.GroupBy(f => f.Violation.Invariant))
            output.WriteLine($"{g.Count()} seeds violate [{g.Key}], e.g. {string.Join(", ", g.Select(f => f.Seed).Take(10))}");
        if (fresh.Count > 0)
        {
            output.WriteLine(Report(fresh[0].Seed));
            Assert.Fail($"{fresh.Count} of {seeds} seeds violate an invariant; first: seed {fresh[0].Seed}: {fresh[0].Violation.Message}");
        }
    }

    /// <summary>Open findings reproduced by skipped tests (none now: F3, F12 and F13 were the last, fixed in
    /// 5e27111); the randomized run would report them instead of failing on them, and fail on anything else.
    /// A new one: a case here (<c>Invariant switch { ... when sim.Notes.Any(...) =&gt; "Fn ..." }</c>) and a
    /// skipped test.</summary>
    internal static string? KnownFinding(ModelViolation v, Sim sim) => null;

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(42)]
    [InlineData(1234)]
    [InlineData(4999)]
    public void Replay(int seed)
    {
        var (violation, sim) = RunSeed(seed);
        string? known = violation is null ? null : KnownFinding(violation, sim);
        if (violation is not null && known is null) output.WriteLine(Report(seed));
        Assert.True(violation is null || known is not null, violation?.Message);
        Assert.True(sim.Events > 100, $"seed {seed} ran only {sim.Events} events");
    }

    [Fact]
    public void A_quiet_run_completes_relocations()
    {
        var options = new SimOptions { Sites = 3, Blocks = 4, ChaosMs = 30_000 };
        var (violation, sim) = RunSeed(3, options);
        Assert.Null(violation);
        output.WriteLine($"{sim.Stats.Relocations} relocations asked, {sim.Stats.Handovers} handovers, {sim.Stats.Completions} completed, {sim.Stats.Writes} writes");
        Assert.True(sim.Stats.Completions >= 2, $"only {sim.Stats.Completions} relocations completed without faults");
    }
    // ---------------- the findings of the first version, fixed: regression tests ----------------

    private Sim AssertHolds(SimOptions options, int seed = 1)
    {
        var (violation, sim) = RunSeed(seed, options);
        if (violation is not null) output.WriteLine(Report(seed, options));
        Assert.Null(violation);
        Assert.True(sim.Stats.RefusedArrived == 0, $"{sim.Stats.RefusedArrived} relocations refused by a site that owns the disk it received");
        foreach (var (path, n) in sim.Stats.Paths.OrderBy(p => p.Key)) output.WriteLine($"{n,6} x {path}");
        return sim;
    }

    /// <summary>The scenario reached the protection it is about (else it tests nothing any more).</summary>
    private static void Exercised(Sim sim, string path) =>
        Assert.True(sim.Stats[path] > 0, $"the scenario no longer exercises: {path}");

    [Fact]
    public void F1_a_disk_can_be_relocated_on_once_it_arrived()
    {
        var sim = AssertHolds(Scenarios.ArrivedDiskCannotLeave());
        Exercised(sim, Paths.ArrivedJoinsOwned);
        Assert.True(sim.Stats.Completions >= 2, $"only {sim.Stats.Completions} relocations completed: a→b→c did not happen");
    }

    [Fact]
    public void F2_a_write_held_longer_than_its_ask_leaves_no_reservation() =>
        Exercised(AssertHolds(Scenarios.HeldWriteOutlivesItsAsk()), Paths.HeldWriteExpired);

    [Fact]
    public void F3_a_slow_answer_does_not_orphan_the_disk() =>
        Exercised(AssertHolds(Scenarios.MixedAgeRoundDropsTheDestination()), Paths.StaleRoundNotJudged);

    [Fact]
    public void F4_a_cancelled_relocation_leaves_no_copy_a_new_one_reuses() =>
        Exercised(AssertHolds(Scenarios.StalePrepareAfterCancel()), Paths.PrepareRefusedOtherCopy);

    [Fact]
    public void F5_a_leftover_incoming_copy_is_dropped() => AssertHolds(Scenarios.LeftoverCopyIsDropped());

    [Fact]
    public void F6_replies_of_an_older_relocation_change_nothing() =>
        Exercised(AssertHolds(Scenarios.StaleOutgoingStarted()), Paths.ForeignAnswerIgnored);

    [Fact]
    public void F7_a_completion_survives_a_crash_before_its_site_registers_it() =>
        Exercised(AssertHolds(Scenarios.CrashBetweenCompletionAndRegistration()), Paths.Republished);

    [Fact]
    public void F8_a_zombie_flow_follows_the_relocation_the_sites_show() =>
        Exercised(AssertHolds(Scenarios.ZombieFlowFollowsTheSites()), Paths.SitesWin);

    [Fact]
    public void F9_a_stale_TakeOwnershipAt_is_refused() =>
        Exercised(AssertHolds(Scenarios.StaleTakeOwnership()), Paths.TakeOwnershipRefused);

    [Fact]
    public void F10_a_recovering_owner_is_never_dropped() => AssertHolds(Scenarios.DropDuringRecovery());

    [Fact]
    public void F10_a_recovering_owner_is_never_dropped_by_its_own_relocation() =>
        Exercised(AssertHolds(Scenarios.SameRelocationDropDuringRecovery()), Paths.DropRefusedRecovering);

    [Fact]
    public void F11_a_cancel_during_the_fence_leaves_a_writable_owner() => AssertHolds(Scenarios.StopDuringFence());

    [Fact]
    public void F11_a_cancel_of_the_same_relocation_during_its_fence_is_refused() =>
        Exercised(AssertHolds(Scenarios.SameRelocationStopDuringFence()), Paths.StopRefusedFencing);

    /// <summary>F3 (what remained): k1 adopts "cancelling" from a round of mixed ages; its drop now goes through a's
    /// StopOutgoing first, which a, fenced for r1, refuses: b's copy, about to own the disk, stays.</summary>
    [Fact]
    public void F3_a_zombie_coordinator_does_not_act_on_a_mixed_age_round()
    {
        var sim = AssertHolds(Scenarios.ZombieAdoptsAMixedAgeRound());
        Exercised(sim, Paths.StopRefusedFenced);
        Assert.True(sim.Stats.Completions >= 1, "the relocation a→b did not complete");
    }

    /// <summary>F3 as a random run (a seed found to reach the path; seeds change when the model draws differently).</summary>
    [Fact]
    public void F3_seed_38() => Exercised(AssertSeedHolds(38), Paths.DropAfterStop);

    /// <summary>F12: the revived copy of r1 at b gets a fresh journal (empty, like its image); nothing replays r1's.</summary>
    [Fact]
    public void F12_a_revived_relocation_does_not_replay_an_old_journal() =>
        Exercised(AssertHolds(Scenarios.LostAnswerRevivesAFinishedRelocation()), Paths.FreshJournal);

    /// <summary>F12 as a random run, on a sparse disk (a seed found to reach the path).</summary>
    [Fact]
    public void F12_seed_4490() => Exercised(AssertSeedHolds(4490), Paths.FreshJournal);

    /// <summary>F14 (issue 9): the guest writes at the source into blocks that were holes when the destination
    /// scanned them; the copy must fetch them, not punch them. Seeds found failing with the fix reverted
    /// ("complete copy", "handover keeps every write").</summary>
    [Theory]
    [InlineData(39)]
    [InlineData(43)]
    public void F14_writes_into_holes_after_the_scan_are_copied(int seed) => Exercised(AssertSeedHolds(seed), Paths.HoleWritten);

    /// <summary>F16: a zombie coordinator's round mixed the destination's answer from before the disk left it and came
    /// back with the source's from after the handover, and released the source: the disk's only complete copy.</summary>
    [Fact]
    public void F16_seed_25995() => AssertSeedHolds(25995);

    /// <summary>F13: b→a is refused while c still holds its fenced copy; the reconciler releases it (b owns the disk);
    /// the operator's next try moves the disk on, and it can come back to c.</summary>
    [Fact]
    public void F13_a_fenced_copy_is_released_after_the_disk_moved_on()
    {
        var sim = AssertHolds(Scenarios.FencedCopyOutlivesTheMoveOn());
        Exercised(sim, Paths.RefusedLeftoverCopy);
        Assert.True(sim.Stats.Completions >= 4, $"only {sim.Stats.Completions} relocations completed: a→c→b→a→c did not happen");
    }

    /// <summary>Liveness (issue 10): an idle disk whose idle signal was lost moves by the reconciler alone.</summary>
    [Fact]
    public void L1_an_idle_disk_whose_idle_signal_was_lost_is_handed_over()
    {
        var sim = AssertHolds(Scenarios.IdleSignalLost());
        Exercised(sim, Paths.IdleHandover);
        Assert.True(sim.Stats.Completions >= 1, "the relocation a→b did not complete");
    }

    private Sim AssertSeedHolds(int seed)
    {
        var (violation, sim) = RunSeed(seed);
        if (violation is not null) output.WriteLine(Report(seed));
        Assert.Null(violation);
        foreach (var (path, n) in sim.Stats.Paths.OrderBy(p => p.Key)) output.WriteLine($"{n,6} x {path}");
        return sim;
    }
}
