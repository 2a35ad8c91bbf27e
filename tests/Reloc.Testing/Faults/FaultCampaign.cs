using System.Diagnostics;
using System.Net;
using Reloc.Management;
using Reloc.Nbd.Client;
using Reloc.Nbd.Protocol;
using Reloc.Wan;

namespace Reloc.Testing.Faults;

/// <summary>How a run ended: the disk at its destination, or still (back) at its source after a cancel.</summary>
public enum RunOutcome { Relocated, Cancelled, Stuck, Broken }

/// <param name="Seen">What the fault did, for the faults that say (ClusterBlackHole: the cut site, when the others saw it
/// unreachable, whether it was downed and rejoined): printed in <see cref="Line"/>.</param>
public sealed record FaultRunResult(FaultPlan Plan, string PhaseAtFault, RunOutcome Outcome, long BytesCompared, TimeSpan Elapsed,
    long Writes, int Reconnects, IReadOnlyList<string> Failures, string Seen = "")
{
    public bool Ok => Failures.Count == 0;

    public string Line() =>
        $"seed={Plan.Seed} fault={Plan.Kind} point={Plan.Point}+{Plan.Delay.TotalMilliseconds:0}ms(phase {PhaseAtFault}) dur={Plan.Duration.TotalSeconds:0.#}s " +
        $"{Plan.Source}->{Plan.Destination} outcome={Outcome} compared={BytesCompared} writes={Writes} reconnects={Reconnects} " +
        $"time={Elapsed.TotalSeconds:0.0}s {(Seen.Length > 0 ? Seen + " " : "")}{(Ok ? "OK" : "FAIL: " + string.Join("; ", Failures))}";
}

/// <summary>
/// One run of the fault campaign: three site processes, each behind its own WAN link emulator (the sites advertise
/// the link as their NBD address, so every site-to-site NBD connection crosses a link; Akka.Remote does not), a
/// sparse disk at the source with a guest writing and flushing, a hybrid relocation to the destination, one fault
/// from <see cref="FaultPlan"/> (ClusterBlackHole: every site runs with reloc.site.fault-injection.remoting-black-hole,
/// and SIGUSR1/SIGUSR2 cut one site's cluster traffic too), the guest following its disk; then the checks: (a) one writer, (b) the owner's
/// image equals what the guest flushed, (c) one copy left, the other released.
/// </summary>
public static class FaultCampaign
{
    public const int Size = 32 << 20;
    private const long Rate = 3_000_000; // bytes/s of pre-copy: the relocation lasts long enough to be hit
    private static readonly TimeSpan EndDeadline = TimeSpan.FromMinutes(4);

    /// <param name="corruptExpectation">Flips one byte of what the guest flushed before the checks: to see check (b) fail (reloc-faults --corrupt-expectation).</param>
    public static async Task<FaultRunResult> RunAsync(FaultPlan plan, Action<string> log, bool corruptExpectation = false)
    {
        var clock = Stopwatch.StartNew();
        var failures = new List<string>();
        var phaseAtFault = "-";
        var outcome = RunOutcome.Broken;
        long compared = 0;
        FaultGuest? guest = null;
        string? tmpfs = null;
        var links = new List<WanLink>();
        var seen = new List<string>();
        await using var c = new SiteCluster(advertiseLinks: true, extra: s =>
            plan.Kind == FaultKind.SlowFsync && s == plan.Destination ? "reloc.disk.fault-injection.fsync-delay = 500ms"
            // Every site: the throttler adapter changes the addresses' scheme (akka.trttl.tcp://), which all members must share.
            : plan.Kind == FaultKind.ClusterBlackHole ? "reloc.site.fault-injection.remoting-black-hole = on" : "")
        {
            StartTimeout = TimeSpan.FromMinutes(3), // start-up is not what the campaign measures; a crowded machine is slow at it
        };
        try
        {
            foreach (var s in SiteCluster.Sites)
                links.Add(await WanLink.StartAsync(new IPEndPoint(IPAddress.Loopback, c.AdvertisedPort(s)), new IPEndPoint(IPAddress.Loopback, c.NbdPort(s)),
                    new WanLinkSettings(TimeSpan.FromMilliseconds(20), 20_000_000, TimeSpan.FromMilliseconds(50))));
            if (plan.Kind == FaultKind.DiskFull)
            {
                tmpfs = c.DataDir(plan.Destination);
                Directory.CreateDirectory(tmpfs);
                await Tool.CheckAsync("mount", "-t", "tmpfs", "-o", "size=128m", "tmpfs", tmpfs);
            }
            await c.StartAllAsync();
            await c.CallAsync('a', m => m.CreateDiskAsync(new CreateDiskRequest("vm", "site-" + plan.Source, Size)));
            guest = new FaultGuest(Size, plan.GuestSeed, s => c.NbdUri(s, "vm"), () => OwnerAsync(c));
            await guest.ConnectAsync(plan.Source);
            await guest.SeedDataAsync();
            await c.CallAsync('a', m => m.RelocateAsync(new RelocateRequest("vm", "site-" + plan.Destination, RelocationMode.Hybrid, Rate)));

            using var stop = new CancellationTokenSource();
            var writing = guest.RunAsync(stop.Token);
            try
            {
                await WaitPhaseAsync(c, p => p is "serving" or "fencing" or "transferring" or "postcopy" or "releasing" or null, "serving");
                if (plan.Point == FaultPoint.Serving) phaseAtFault = await InjectAsync(c, plan, links, log, seen, failures);
                // The VM migrates a while after the pre-copy began (if the relocation is still there to follow).
                await Task.Delay(TimeSpan.FromMilliseconds(500 + plan.GuestSeed % 1500));
                if (await PhaseAsync(c) is "preparing" or "serving")
                {
                    var moving = guest.MoveAsync(plan.Destination);
                    if (plan.Point == FaultPoint.Handover) phaseAtFault = await InjectAsync(c, plan, links, log, seen, failures);
                    await moving.WaitAsync(EndDeadline);
                }
                else if (plan.Point == FaultPoint.Handover) phaseAtFault = await InjectAsync(c, plan, links, log, seen, failures);
                if (plan.Point == FaultPoint.Postcopy)
                {
                    await WaitPhaseAsync(c, p => p is "postcopy" or "releasing" or null, "postcopy");
                    phaseAtFault = await InjectAsync(c, plan, links, log, seen, failures);
                }
                if (plan.Point == FaultPoint.Start) phaseAtFault = "all";
                outcome = await WaitEndAsync(c, plan, log);
            }
            finally
            {
                stop.Cancel();
                await writing.WaitAsync(EndDeadline);
            }
            failures.AddRange(guest.Violations);
            if (corruptExpectation) guest.Flushed[Size / 3] ^= 0x5a;
            compared = await CheckAsync(c, plan, guest, outcome, failures);
        }
        catch (Exception ex)
        {
            // The first line and the last lines the nodes printed (a start that timed out says why there).
            var lines = ex.Message.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            failures.Add($"{ex.GetType().Name}: {string.Join(" | ", lines.Take(1).Concat(lines.Skip(1).TakeLast(3)))}");
            if (outcome == RunOutcome.Broken) outcome = RunOutcome.Stuck;
        }
        finally
        {
            if (guest is not null) await guest.DisposeAsync();
            foreach (var l in links) await l.DisposeAsync();
            if (tmpfs is not null)
            {
                await c.DisposeNodesAsync();
                await Tool.RunAsync("umount", "-l", tmpfs);
            }
        }
        return new FaultRunResult(plan, phaseAtFault, outcome, compared, clock.Elapsed, guest?.Writes ?? 0, guest?.Reconnects ?? 0, failures, string.Join(" ", seen));
    }

    /// <summary>The fault itself, at its point (after its delay); returns the relocation's phase when it struck.</summary>
    private static async Task<string> InjectAsync(SiteCluster c, FaultPlan plan, List<WanLink> links, Action<string> log, List<string> seen, List<string> failures)
    {
        await Task.Delay(plan.Delay);
        var phase = await PhaseAsync(c) ?? "done";
        log($"  seed {plan.Seed}: {plan.Kind} on site-{plan.Target} in phase {phase}");
        switch (plan.Kind)
        {
            case FaultKind.KillSource or FaultKind.KillDestination or FaultKind.KillCoordinator:
                await c.KillAsync(plan.Target);
                await Task.Delay(plan.Duration);
                await c.StartAsync(plan.Target);
                await c.WaitUpAsync(plan.Target, 3);
                break;
            case FaultKind.BlackHole:
                // Both ends of the relocation: the destination's fetches from the source and the source's link both drop everything.
                var ends = new[] { links[SiteCluster.Sites.IndexOf(plan.Source)], links[SiteCluster.Sites.IndexOf(plan.Destination)] };
                foreach (var l in ends) l.StartBlackHole();
                try { await Task.Delay(plan.Duration); }
                finally { foreach (var l in ends) l.EndBlackHole(); }
                break;
            case FaultKind.ClusterBlackHole:
                await ClusterBlackHoleAsync(c, plan, links, log, seen, failures);
                break;
            case FaultKind.DiskFull:
                // Written until the file system says it is full (ENOSPC): what the node then writes fails the same way.
                var filler = Path.Combine(c.DataDir(plan.Destination), "filler");
                await using (var fill = new FileStream(filler, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
                {
                    var zeros = new byte[1 << 16];
                    try { while (true) await fill.WriteAsync(zeros); }
                    catch (IOException) { } // full
                }
                await Task.Delay(plan.Duration);
                File.Delete(filler);
                break;
        }
        return phase;
    }

    /// <summary>
    /// One end of the relocation (<see cref="FaultPlan.Target"/>) loses the WAN: its cluster traffic (Akka.Remote, through
    /// the throttler: SIGUSR1) and the NBD links of both ends (as <see cref="FaultKind.BlackHole"/>: nothing between the
    /// two ends' disks crosses), both directions, nothing closed. The split-brain resolver may down it (a minority of
    /// one: it downs itself and its process exits 3); after the hole it is lifted (SIGUSR2) or, downed, started again on
    /// the same ports and data, as a killed site is. Notes when the others saw it unreachable and removed it, when it
    /// exited and when it was Up again.
    /// </summary>
    private static async Task ClusterBlackHoleAsync(SiteCluster c, FaultPlan plan, List<WanLink> links, Action<string> log, List<string> seen, List<string> failures)
    {
        var cut = plan.Target;
        const char observer = 'a'; // the cut site is b or c: a is on the majority side and hosts the coordinator
        var ends = new[] { links[SiteCluster.Sites.IndexOf(plan.Source)], links[SiteCluster.Sites.IndexOf(plan.Destination)] };
        var hole = Stopwatch.StartNew();
        double? unreachable = null, removed = null, exited = null;
        foreach (var l in ends) l.StartBlackHole();
        await c.Node(cut).SignalAsync("USR1");
        try
        {
            while (hole.Elapsed < plan.Duration)
            {
                if (exited is null && c.Node(cut).HasExited) exited = hole.Elapsed.TotalSeconds;
                if (await c.TryAsync(observer, m => m.ClusterAsync()) is { } view)
                {
                    var member = view.Members.FirstOrDefault(m => m.Site == "site-" + cut);
                    if (unreachable is null && member is { Reachable: false }) unreachable = hole.Elapsed.TotalSeconds;
                    if (removed is null && (member is null || member.Status is "Down" or "Removed")) removed = hole.Elapsed.TotalSeconds;
                }
                await Task.Delay(TimeSpan.FromMilliseconds(250));
            }
        }
        finally
        {
            foreach (var l in ends) l.EndBlackHole();
            // Not exited: lifted (it may still exit if it was downed; it is then started again below or by WaitEndAsync).
            try { if (!c.Node(cut).HasExited) await c.Node(cut).SignalAsync("USR2"); }
            catch (Exception) when (c.Node(cut).HasExited) { } // exited in between: kill(1) found no such process
        }
        log($"  seed {plan.Seed}: cluster black hole on site-{cut} over after {hole.Elapsed.TotalSeconds:0.0}s: unreachable {At(unreachable)}, " +
            $"down {At(removed)}, process exited {At(exited)}");
        // A downed node exits (status 3) a while after the others removed it: at once, or once its NBD server has drained
        // (in-flight guest requests can wait up to miss-timeout + 5 s, 125 s here); a supervisor would wait as long.
        var lifted = Stopwatch.StartNew();
        if (removed is not null)
            while (!c.Node(cut).HasExited && lifted.Elapsed < DownedExitWait) await Task.Delay(200);
        if (exited is null && c.Node(cut).HasExited) exited = hole.Elapsed.TotalSeconds;
        var restarted = false;
        var hung = removed is not null && !c.Node(cut).HasExited;
        if (hung)
        {
            // Downed but still running long after the hole: it will not rejoin by itself (a supervisor restarts a process
            // that exits). Reported as a failure of the run; killed and started again so the checks still run.
            failures.Add($"(liveness) site-{cut} was downed at {At(removed)} but had not exited {lifted.Elapsed.TotalSeconds:0}s after the hole: killed");
            log($"  seed {plan.Seed}: site-{cut} downed but still running {lifted.Elapsed.TotalSeconds:0}s after the hole; its last lines:");
        }
        // What the downed node said last (why it exited, or what it waits for), before its process is forgotten.
        if (hung || c.Node(cut).HasExited)
            foreach (var line in c.Node(cut).LogLines.TakeLast(25)) log($"    site-{cut}| {line}");
        if (hung) await c.KillAsync(cut);
        foreach (var s in await c.ReapExitedAsync())
        {
            log($"  seed {plan.Seed}: site-{s} exited (downed); restarting it on the same ports and data");
            await c.StartAsync(s);
            restarted |= s == cut;
        }
        if (hung)
        {
            await c.StartAsync(cut);
            restarted = true;
        }
        await c.WaitUpAsync(observer, 3);
        seen.Add($"cut=site-{cut}({(cut == plan.Source ? "source" : "destination")}) unreachable={At(unreachable)} downed={At(removed)} " +
                 $"exited={(hung ? "hung,killed" : At(exited))} {(restarted ? "restarted" : "stayed")}+up={At(hole.Elapsed.TotalSeconds)}");
    }

    private static readonly TimeSpan DownedExitWait = TimeSpan.FromSeconds(150);

    /// <summary>+12.3s after the start of the hole, or "no".</summary>
    private static string At(double? seconds) => seconds is { } s ? "+" + s.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture) + "s" : "no";

    private static async Task<RunOutcome> WaitEndAsync(SiteCluster c, FaultPlan plan, Action<string> log)
    {
        var deadline = DateTime.UtcNow + EndDeadline;
        bool cancelled = false;
        while (true)
        {
            foreach (var s in await c.ReapExitedAsync())
            {
                log($"  seed {plan.Seed}: site-{s} exited by itself; restarting it");
                await c.StartAsync(s);
            }
            var view = await DiskViewAsync(c);
            if (view is not null && view.Relocation is null && view.Phase == "owned" && view.Copies.Count == 1)
                return view.Owner == "site-" + plan.Destination ? RunOutcome.Relocated : RunOutcome.Cancelled;
            if (DateTime.UtcNow > deadline)
            {
                var phase = view?.Relocation?.Phase;
                if (!cancelled && phase is "preparing" or "serving")
                {
                    // Failing safe: a relocation that cannot finish before the handover is cancelled.
                    log($"  seed {plan.Seed}: still {phase} after {EndDeadline.TotalMinutes} min: cancelling");
                    await TryAsync(c, m => m.CancelAsync("vm"));
                    cancelled = true;
                    deadline = DateTime.UtcNow + TimeSpan.FromMinutes(1);
                    continue;
                }
                throw new TimeoutException($"the relocation did not end: phase {phase ?? "-"}, owner {view?.Owner ?? "?"}, copies {view?.Copies.Count.ToString() ?? "?"}");
            }
            await Task.Delay(300);
        }
    }

    /// <summary>(a) one writer, (b) the owner's image is what the guest flushed, (c) one copy; returns the bytes compared.</summary>
    private static async Task<long> CheckAsync(SiteCluster c, FaultPlan plan, FaultGuest guest, RunOutcome outcome, List<string> failures)
    {
        var view = await DiskViewAsync(c) ?? throw new InvalidOperationException("no site answers for the disk");
        var owner = view.Owner[^1];
        if (view.Copies.Count != 1) failures.Add($"(c) {view.Copies.Count} copies left: {string.Join(", ", view.Copies.Select(d => d.Site + " " + d.Phase))}");
        long epoch = outcome == RunOutcome.Relocated ? 2 : 1;
        if (view.Epoch != epoch) failures.Add($"(c) epoch {view.Epoch}, expected {epoch}");
        var other = owner == plan.Source ? plan.Destination : plan.Source;
        if (File.Exists(c.ImagePath(other, "vm"))) failures.Add($"(c) site-{other} still has an image of the disk");

        var image = await Guest.ReadAllAsync(c.NbdUri(owner, "vm"), Size);
        var g = new Guest(guest.Flushed, 0);
        if (g.Mismatch(image) is { } mismatch) failures.Add("(b) " + mismatch);

        foreach (var s in SiteCluster.Sites)
        {
            var refused = await WriteRefusedAsync(c.NbdUri(s, "vm"), image);
            if (s == owner && refused is not null) failures.Add($"(a) the owner site-{s} refused a write: {refused}");
            if (s != owner && refused is null) failures.Add($"(a) site-{s} accepted a write but site-{owner} owns the disk");
        }
        return image.LongLength;
    }

    /// <summary>Writes back the bytes already there (content unchanged) and flushes; null if accepted, otherwise why not.</summary>
    private static async Task<string?> WriteRefusedAsync(string uri, byte[] image)
    {
        try
        {
            await using var client = await NbdClient.ConnectAsync(NbdClientOptions.FromUri(uri) with { ConnectTimeout = TimeSpan.FromSeconds(5) });
            await client.WriteAsync(65536 - 2048, image.AsMemory(65536 - 2048, 4096)).WaitAsync(TimeSpan.FromSeconds(30));
            await client.FlushAsync().WaitAsync(TimeSpan.FromSeconds(30));
            return null;
        }
        catch (NbdClientException ex) when (ex.Error == NbdError.Perm) { return "EPERM"; }
        catch (NbdHandshakeException) { return "not served"; }
        catch (Exception ex) when (ex is IOException or TimeoutException) { return ex.GetType().Name + ": " + ex.Message; }
    }

    private static async Task<char?> OwnerAsync(SiteCluster c)
    {
        var view = await DiskViewAsync(c);
        if (view is null) return null;
        // Past the handover the destination owns the disk even while the source's registry still says otherwise.
        if (view.Relocation is { Phase: "transferring" or "postcopy" or "releasing" } r) return r.ToSite[^1];
        return view.Owner.Length > 0 ? view.Owner[^1] : null;
    }

    private static async Task<DiskView?> DiskViewAsync(SiteCluster c)
    {
        foreach (var s in SiteCluster.Sites)
            if (c.IsRunning(s) && await c.TryAsync(s, m => m.DiskAsync("vm")) is { } v) return v;
        return null;
    }

    private static async Task<string?> PhaseAsync(SiteCluster c) => (await DiskViewAsync(c))?.Relocation?.Phase;

    private static async Task<T?> TryAsync<T>(SiteCluster c, Func<ManagementClient, Task<T>> call) where T : class
    {
        foreach (var s in SiteCluster.Sites)
            if (c.IsRunning(s) && await c.TryAsync(s, call) is { } v) return v;
        return null;
    }

    private static Task WaitPhaseAsync(SiteCluster c, Func<string?, bool> reached, string what) =>
        SiteCluster.WaitAsync(async () => reached(await PhaseAsync(c)), EndDeadline, "relocation phase " + what);
}
