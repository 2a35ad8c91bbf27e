using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Reloc.Actors.Tests.Model;
using Xunit;
using Xunit.Abstractions;

namespace Reloc.Actors.Tests;

/// <summary>
/// Randomized test of the ownership protocol of issue 4 (see Model/): pure state machines mirroring
/// SiteActor, OwnedDisk, VirtualDiskActor and MigrationCoordinator over the real SiteState, SiteEvents,
/// DiskState/BlockMap, DiskEvents and Reconciler, run as a seeded discrete-event simulation with message
/// reordering, loss, duplication, long delays, site crashes, coordinator fail-overs (and split brain) and
/// partitions. Invariants checked after every event: (1) one writer, per epoch too; (2) a message with an
/// older epoch changes nothing; (3) a fetch issued before an invalidation never lands after it; (4) no
/// acknowledged write is lost: reads see it, the handover keeps it, and once the faults stop the relocation
/// completes or aborts cleanly with every acknowledged (flushed, if its site crashed) version at the owner.
/// A failing seed prints its options, the violation and the event trace; replay it with <see cref="Replay"/>.
/// What the model found in the design as implemented is kept as skipped tests (F1..F11 below, each a directed
/// scenario of Model/Scenarios.cs or a seed); the randomized run reports seeds that hit one of those
/// (<see cref="KnownFinding"/>) and fails on any other violation.
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

    /// <summary>Design findings reproduced by the skipped tests below; the randomized run reports them
    /// instead of failing on them, and fails on anything else.</summary>
    internal static string? KnownFinding(ModelViolation v, Sim sim)
    {
        bool Noted(string what) => sim.Notes.Any(n => n.Contains(what));
        return v.Invariant switch
        {
            "4 settles: leaked write reservation" => F2,
            "4 settles: orphaned disk" when Noted("drops a copy it owns") => F10,
            "4 settles: orphaned disk" when Noted("drops the incoming copy of a live relocation") || Noted("reconciles from a stale view") => F3,
            "4 handover keeps every write: copy taken while the source did not track" =>
                Noted("acted on a stale OutgoingStarted") ? F6 : Noted("prepares an incoming copy") ? F4 : null,
            "4 settles: orphaned incoming copy" => F5,
            "2 stale epoch" when v.Message.StartsWith("[2 stale epoch] coordinator") => F6,
            "4 settles: complete copy never reported" => F7,
            "4 settles: flow with other endpoints" when sim.O.Zombies => F8,
            "1 one writer" or "1 one writer per epoch" when Noted("from a TakeOwnershipAt of an older relocation") => F9,
            "4 settles: owner refuses writes" => F11,
            _ => null,
        };
    }

    // The findings (see the skipped tests below, one each, and the report in the commit that added this file).
    internal const string F1 = "F1 a disk that arrived by relocation cannot be relocated again until its site restarts (SiteActor._images is filled only by Export)";
    internal const string F2 = "F2 a guest write held for the handover whose ask timed out is granted after the handover: its block stays reserved, never local; the relocation never completes and reads of the block fail";
    internal const string F3 = "F3 the coordinator reconciles from answers of different ages: it drops a destination the source is already fenced for (or resumes a flow the sites left): the disk is orphaned, no site accepts its writes again";
    internal const string F4 = "F4 a cancel keeps the epoch: a stale PrepareIncoming makes a copy the source does not track, and a later relocation at the same epoch takes it as a retry: flushed writes lost at the handover";
    internal const string F5 = "F5 an incoming copy its source no longer relocates there (a lost DropIncoming, a stale PrepareIncoming) is never removed once the disk moved on: the Reconciler reports an anomaly and sends no step";
    internal const string F6 = "F6 the coordinator's steps act on replies of an older relocation (OutgoingStarted, Released, IncomingDropped): Step() checks the phase, not the epoch";
    internal const string F7 = "F7 a crash between RelocationCompleted (disk journal) and DiskAdded (site journal) is never repaired: the recovered disk actor does not publish RelocationFinished again";
    internal const string F8 = "F8 with two coordinators, a flow whose endpoints differ from the relocation the sites show is resumed with its own destination: TakeOwnershipAt goes to the wrong site forever";
    internal const string F9 = "F9 a stale TakeOwnershipAt of an earlier relocation makes a destination the owner: before ownership its DiskState.Epoch is 0 and SiteActor does not compare with its incoming epoch: two sites accept writes";
    internal const string F10 = "F10 a stale DropIncoming (same epoch) reaching a destination that owns the disk while its disk actor recovers (IsOwner still false) deletes it: writes acknowledged there are lost, the source is fenced for nobody";
    internal const string F11 = "F11 a StopOutgoing arriving while the fence flushes ends the relocation but leaves OwnedDisk fenced (FenceDone is then ignored): the owner refuses every write until it restarts";

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
    // ---------------- the findings: each fails today; un-skip when the design is fixed ----------------

    private void AssertHolds(SimOptions options, int seed = 1)
    {
        var (violation, sim) = RunSeed(seed, options);
        if (violation is not null) output.WriteLine(Report(seed, options));
        Assert.Null(violation);
        Assert.True(sim.Stats.RefusedArrived == 0, $"{sim.Stats.RefusedArrived} relocations refused by a site that owns the disk it received");
    }

    private void AssertSeedHolds(int seed)
    {
        var (violation, _) = RunSeed(seed);
        if (violation is not null) output.WriteLine(Report(seed));
        Assert.Null(violation);
    }

    [Fact(Skip = "found: F1 a disk that arrived by relocation cannot be relocated again until its site restarts (SiteActor._images is filled only by Export)")]
    public void F1_a_disk_can_be_relocated_on_once_it_arrived() => AssertHolds(Scenarios.ArrivedDiskCannotLeave());

    [Fact(Skip = "found: F2 a held guest write whose ask timed out is granted after the handover; its block stays reserved and the relocation never completes")]
    public void F2_a_write_held_longer_than_its_ask_leaves_no_reservation() => AssertHolds(Scenarios.HeldWriteOutlivesItsAsk());

    [Fact(Skip = "found: F3 a reconcile round of mixed-age answers drops the destination the source is fenced for: the disk is orphaned")]
    public void F3_a_slow_answer_does_not_orphan_the_disk() => AssertHolds(Scenarios.MixedAgeRoundDropsTheDestination());

    [Fact(Skip = "found: F3 (Akka-like FIFO network, split brain): a zombie coordinator's stale round drops the live destination")]
    public void F3_seed_38009() => AssertSeedHolds(38009);

    [Fact(Skip = "found: F4 a stale PrepareIncoming after a cancel (same epoch) makes an untracked copy a later relocation reuses: flushed writes lost")]
    public void F4_a_cancelled_relocation_leaves_no_copy_a_new_one_reuses() => AssertHolds(Scenarios.StalePrepareAfterCancel());

    [Fact(Skip = "found: F5 a leftover incoming copy is never removed once its source released the disk (Reconciler: anomaly, no step)")]
    public void F5_seed_36216() => AssertSeedHolds(36216);

    [Fact(Skip = "found: F6 the coordinator acts on an OutgoingStarted of an older relocation: the destination copies before the source tracks, writes lost")]
    public void F6_replies_of_an_older_relocation_change_nothing() => AssertHolds(Scenarios.StaleOutgoingStarted());

    [Fact(Skip = "found: F7 a crash between RelocationCompleted and DiskAdded leaves the disk incoming forever; the source is never released")]
    public void F7_seed_31166() => AssertSeedHolds(31166);

    [Fact(Skip = "found: F8 split brain: a flow whose endpoints differ from the sites' relocation sends TakeOwnershipAt to the wrong site forever")]
    public void F8_seed_42899() => AssertSeedHolds(42899);

    [Fact(Skip = "found: F9 a stale TakeOwnershipAt makes a destination owner at an older epoch while the source still accepts writes: two writers")]
    public void F9_a_stale_TakeOwnershipAt_is_refused() => AssertHolds(Scenarios.StaleTakeOwnership());

    [Fact(Skip = "found: F10 a stale DropIncoming during a destination's recovery deletes the disk it owns: acknowledged writes lost")]
    public void F10_a_recovering_owner_is_never_dropped() => AssertHolds(Scenarios.DropDuringRecovery());

    [Fact(Skip = "found: F11 a StopOutgoing during the fence's flush leaves the owner fenced: it refuses every write until restarted")]
    public void F11_a_cancel_during_the_fence_leaves_a_writable_owner() => AssertHolds(Scenarios.StopDuringFence());
}
