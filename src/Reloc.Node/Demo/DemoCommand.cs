using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Akka.Actor;
using Reloc.Actors.Coordinator;
using Reloc.Cli;
using Reloc.Management;
using Reloc.Nbd.Client;
using Reloc.Wan;
using Spectre.Console;

namespace Reloc.Node.Demo;

/// <summary>
/// <c>reloc-node demo</c>: the whole mission in one process and one command. Two sites on loopback (SQLite in a
/// temporary directory) with the WAN link emulator between them; a sparse disk on site A (random data in
/// part of it, holes elsewhere) with a guest-like workload reading and writing anywhere on it, holes
/// included; a relocation to site B during which the workload moves as a migrating VM does (it connects
/// at B, runs on at A a little, then leaves A, which hands the disk over) and keeps working at B; then a byte
/// for byte check of B's image against the workload's own model, and a summary. Exit 0 only if it passed.
/// </summary>
internal static class DemoCommand
{
    private const string DiskName = "demo";

    private sealed record Settings(long Size, double Allocated, TimeSpan Rtt, long Rate, string Mode, double Iops, int Seed);

    public static Command Create()
    {
        var json = new Option<bool>("--json") { Description = "print the summary as one JSON document (for scripts)" };
        var size = new Option<string>("--size") { Description = "disk size, e.g. 256MiB; at most 1GiB", DefaultValueFactory = _ => "256MiB" };
        var allocated = new Option<string>("--allocated") { Description = "share of the disk holding random data (in 1-4 MiB extents; the rest are holes), 0% to 100%", DefaultValueFactory = _ => "25%" };
        var rtt = new Option<string>("--rtt") { Description = "round-trip time of the emulated WAN link, e.g. 50ms", DefaultValueFactory = _ => "50ms" };
        var rate = new Option<string>("--rate") { Description = "bandwidth of the emulated WAN link per direction, e.g. 40MB/s", DefaultValueFactory = _ => "40MB/s" };
        var mode = new Option<string>("--mode") { Description = "postcopy (the guest moves as soon as site-b serves the disk) or hybrid (it moves once half the disk is pre-copied)", DefaultValueFactory = _ => "postcopy" };
        mode.AcceptOnlyFromAmong("postcopy", "hybrid");
        var iops = new Option<int>("--iops") { Description = "the guest workload's request rate (4 KiB reads and writes)", DefaultValueFactory = _ => 200 };
        var seed = new Option<int>("--seed") { Description = "seed of the disk's data and the workload", DefaultValueFactory = _ => 1 };
        var command = new Command("demo", "Relocate a live disk between two sites over an emulated WAN, in one process, and verify it") { size, allocated, rtt, rate, mode, iops, seed, json };
        command.SetAction(async (r, _) =>
        {
            Settings settings;
            try
            {
                settings = new Settings(Args.Size("--size", r.GetValue(size)!), ParsePercent("--allocated", r.GetValue(allocated)!), Args.Duration("--rtt", r.GetValue(rtt)!),
                    Args.Rate("--rate", r.GetValue(rate)!), r.GetValue(mode)!, r.GetValue(iops), r.GetValue(seed));
                if (settings.Size % 65536 != 0 || settings.Size < 1 << 20 || settings.Size > 1L << 30)
                    throw new UsageException($"--size: {r.GetValue(size)} must be a multiple of 64 KiB from 1 MiB to 1 GiB");
                if (settings.Iops is < 1 or > 100_000) throw new UsageException($"--iops: {settings.Iops} must be from 1 to 100000");
            }
            catch (UsageException ex)
            {
                Console.Error.WriteLine($"reloc-node demo: {ex.Message}");
                return ExitCode.Usage;
            }
            // Ctrl-C stops the demo and cleans up (its sites leave, its temporary directory goes); a second one ends it at once.
            using var interrupt = new Interrupt();
            return await RunAsync(settings, Output.Create(r.GetValue(json)), interrupt.Token);
        });
        return command;
    }

    /// <summary>"25%" → 0.25; the sign is required, so that "0.25" is not read as a quarter of a percent.</summary>
    private static double ParsePercent(string option, string text)
    {
        var t = text.Trim();
        if (t.EndsWith('%') && double.TryParse(t[..^1], NumberStyles.Float, CultureInfo.InvariantCulture, out var p) && p is >= 0 and <= 100)
            return p / 100;
        throw new UsageException($"{option}: {text} must be a percentage from 0% to 100%, e.g. 25%");
    }

    private static async Task<int> RunAsync(Settings o, Output output, CancellationToken stopping)
    {
        EnsurePoolHeadroom();
        var clock = Stopwatch.StartNew();
        var view = RelocationWatch.ViewFor(output);
        var liveNotes = new List<string>();
        bool live = false;
        void Note(string text)
        {
            var line = $"[{Fmt.Duration(clock.Elapsed),6}] {text}";
            if (output.Json) return;
            if (live) lock (liveNotes) liveNotes.Add(line);
            else output.Line(line);
        }

        var link = new WanLinkSettings { Rtt = o.Rtt, RateBytesPerSecond = o.Rate };
        double limit = o.Rate > 0 ? (double)o.Size / o.Rate : double.NaN;
        if (!output.Json)
            output.Line($"reloc-node demo: a {Fmt.Bytes(o.Size)} {(o.Allocated < 1 ? $"sparse disk ({Pct(o.Allocated)} random data in 1-4 MiB extents, the rest holes)" : "disk of random data")} moves from site-a to site-b ({o.Mode}) over an emulated WAN " +
                        $"(RTT {Units.FormatDuration(o.Rtt)}, {Fmt.Cap(o.Rate)}; the link's limit for the disk: {(double.IsNaN(limit) ? "none" : Fmt.Duration(TimeSpan.FromSeconds(limit)))}) " +
                        "while a guest keeps reading and writing it");

        var dir = Directory.CreateTempSubdirectory("reloc-demo-").FullName;
        DemoCluster? cluster = null;
        NbdClient? atA = null, atB = null;
        GuestWorkload? guest = null;
        Task? guestTask = null;
        using var guestStop = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        try
        {
            cluster = await DemoCluster.StartAsync(dir, link, stopping);
            Note($"site-a and site-b are up (data in {dir}); site-b reaches site-a's disks through the WAN link {cluster.Link.LocalEndPoint}");
            await using var session = new Session(cluster.ManagementAddress, output, stopping);
            await session.CallAsync((c, ct) => c.RelocationsAsync(ct)); // the coordinator singleton is up

            // The disk: random data in extents, holes elsewhere, known to the guest as its model.
            var disk = SparseDisk.Generate(o.Size, o.Allocated, o.Seed);
            var seedFile = Path.Combine(dir, "seed.img");
            disk.WriteImage(seedFile);
            var created = await session.CallAsync((c, ct) => c.CreateDiskAsync(new CreateDiskRequest(DiskName, "site-a", From: seedFile), ct));
            File.Delete(seedFile);

            // The guest at A: talks to A's NBD server directly (it is local there).
            atA = await NbdClient.ConnectAsync(new NbdClientOptions { Host = "127.0.0.1", Port = cluster.A.NbdEndPoint.Port, Export = DiskName }, stopping);
            long? sourceData = await SparseDisk.DataBytesAsync(atA, stopping);
            Note($"disk {DiskName} created on site-a: {Fmt.Bytes(created.Size)}, {Fmt.Bytes(disk.AllocatedBytes)} of random data in {Extents(disk.Extents.Count)}, " +
                 $"the rest holes (site-a's BLOCK_STATUS: {(sourceData is { } d ? Fmt.Bytes(d) + " data" : "not answered")}), epoch {created.Epoch}");
            guest = new GuestWorkload(disk, atA, "site-a", o.Iops, o.Seed + 1) { SourceSite = "site-a" };
            guestTask = guest.RunAsync(guestStop.Token);
            Note($"guest running at site-a: random 4 KiB reads and writes anywhere (holes included) at {o.Iops} requests/s, FLUSH after every 4 writes, each read checked");
            await WaitUntilAsync(() => guest.Ops >= Math.Min(50, o.Iops) || guestTask.IsCompleted, stopping);
            ThrowIfFailed(guest, guestTask);

            // Relocate, move the guest, follow it to the end.
            var accepted = await session.CallAsync((c, ct) => c.RelocateAsync(new RelocateRequest(DiskName, "site-b",
                o.Mode == "hybrid" ? RelocationMode.Hybrid : RelocationMode.Postcopy), ct));
            var relocateAt = clock.Elapsed;
            Note($"relocating {DiskName} from {accepted.FromSite} to {accepted.ToSite} ({o.Mode}, epoch {accepted.Epoch} → {accepted.Epoch + 1})");

            using var watchStop = CancellationTokenSource.CreateLinkedTokenSource(stopping);
            var deadline = TimeSpan.FromSeconds(Math.Max(60, double.IsNaN(limit) ? 60 : limit * 10 + 30));
            watchStop.CancelAfter(deadline);
            await using var watcher = new Session(cluster.ManagementAddress, output, watchStop.Token);
            Task? move = null;
            TimeSpan? movedAt = null, allLocalAt = null;
            var destination = cluster.B.NbdEndPoint.Port;
            int preSwitchWrites = (int)Math.Clamp(o.Iops / 5, 1, 40); // 0.4 s at 200 requests/s
            async Task MoveGuestAsync()
            {
                // As a migrating VM: the destination connects first (QEMU -incoming reads 512 bytes at 0) ...
                atB = await NbdClient.ConnectAsync(new NbdClientOptions { Host = "127.0.0.1", Port = destination, Export = DiskName }, stopping);
                await atB.ReadAsync(0, new byte[512], stopping);
                // ... its memory migrates while it runs on at A, whose writes (into holes too) site-b must learn of ...
                long writes = guest.Writes;
                await WaitUntilAsync(() => guest.Writes - writes >= preSwitchWrites || guestTask.IsCompleted, stopping);
                ThrowIfFailed(guest, guestTask);
                // ... then at the switch-over the source flushes and disconnects; the guest goes on at B.
                var switched = guest.BetweenRequestsAsync(async () =>
                {
                    await atA!.FlushAsync(stopping);
                    var old = guest.SwitchTo(atB, "site-b");
                    await old.DisposeAsync();
                    movedAt = clock.Elapsed;
                });
                if (await Task.WhenAny(switched, guestTask) != switched) ThrowIfFailed(guest, guestTask);
                await switched;
                Note($"guest moved: connected at site-b, wrote {preSwitchWrites} more blocks at site-a (its memory migrating), then flushed and disconnected at site-a " +
                     "(that hands the disk over); it goes on at site-b");
            }

            live = view == WatchView.Live;
            WatchResult result;
            try
            {
                result = await RelocationWatch.RunAsync(watcher, DiskName, view, TimeSpan.FromMilliseconds(200), clock: clock,
                    extra: () =>
                    {
                        var text = guest.StatusLine();
                        if (!live) return text;
                        lock (liveNotes) return string.Join('\n', liveNotes.TakeLast(3).Append(text));
                    },
                    observe: sample =>
                    {
                        bool ready = o.Mode == "postcopy"
                            ? sample.Phase is "serving" or "fencing" or "transferring" or "postcopy"
                            : sample.Phase != "starting" && sample.Phase != "preparing" && sample.HasProgress && sample.Local * 2 >= sample.Total;
                        if (move is null && ready)
                        {
                            move = MoveGuestAsync();
                            move.ContinueWith(_ => watchStop.Cancel(), TaskContinuationOptions.OnlyOnFaulted);
                        }
                        if (allLocalAt is null && movedAt is not null && sample.HasProgress && sample.Total > 0 && sample.Local >= sample.Total)
                            allLocalAt = clock.Elapsed;
                    });
            }
            catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
            {
                if (move is { IsFaulted: true }) await move; // its reason
                throw new ManagementException($"the relocation did not finish within {Fmt.Duration(deadline)}");
            }
            finally { live = false; }
            var doneAt = clock.Elapsed;
            if (move is null) throw new ManagementException("the relocation ended before the guest could move (was it cancelled?)");
            await move;
            guest.RelocationCompleted();
            var final = result.Disk;
            // The destination's final counters, from its site (the last look may precede the end of a short relocation).
            var counters = await cluster.B.Site.Ask<object>(new RelocationProtocol.GetProgress(DiskName), TimeSpan.FromSeconds(10)) as RelocationProtocol.DiskProgress;
            allLocalAt ??= doneAt;
            Note($"relocation over: {final?.Owner} owns {DiskName} at epoch {final?.Epoch}; copies left: " +
                 string.Join(", ", (final?.Copies ?? []).Select(c => $"{c.Site} ({c.Phase})")));

            // A little more work on the fully relocated disk, then the guest stops and flushes.
            long opsBefore = guest.Ops;
            await WaitUntilAsync(() => guest.Ops - opsBefore >= Math.Min(40, o.Iops) || guestTask.IsCompleted, stopping);
            guestStop.Cancel();
            await guestTask;
            ThrowIfFailed(guest, guestTask);
            await atB!.FlushAsync(stopping);
            await atB.DisposeAsync();
            Note($"guest stopped after {guest.Ops} requests; reading site-b's image back to compare with the guest's model");

            // Verification: B's image, byte for byte, against the initial data plus every acknowledged write.
            var mismatch = await VerifyAsync(destination, disk, stopping);
            var ownerOk = final is { Owner: "site-b", Copies.Count: 1 } && final.Epoch == accepted.Epoch + 1;
            bool passed = mismatch.Blocks == 0 && guest.Mismatches == 0 && ownerOk;

            var summary = Summarize(o, disk, sourceData, limit, relocateAt, movedAt, allLocalAt, doneAt, counters, guest, mismatch, final, passed, ownerOk);
            if (output.Json) output.PrintJson(summary);
            else PrintSummary(output, summary);
            if (!output.Json)
                output.Line(passed
                    ? $"demo: verification passed ({o.Size} bytes at site-b equal the guest's model; {guest.Writes} acknowledged writes, {guest.HoleWritesAt.Values.Sum()} of them into holes, 0 read mismatches)"
                    : $"demo: verification FAILED ({mismatch.Blocks} mismatched 4 KiB blocks ({mismatch.InHoles} of them holes at the start, {mismatch.Bytes} bytes differ)" +
                      $"{(mismatch.First is { } b ? $", first at offset {b}" : "")}, " +
                      $"{guest.Mismatches} read mismatches, owner check {(ownerOk ? "ok" : "failed")})");
            return passed ? ExitCode.Ok : ExitCode.Failed;
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            Console.Error.WriteLine("reloc-node demo: interrupted; cleaning up");
            return ExitCode.Interrupted;
        }
        catch (Exception ex) when (ex is ManagementException or Reloc.Cli.UnreachableException or IOException or InvalidOperationException or ArgumentException)
        {
            Console.Error.WriteLine($"reloc-node demo: {Args.OneLine(ex.Message)}");
            return ExitCode.Failed;
        }
        finally
        {
            // Closing the guest's connections first ends a request still in flight (after Ctrl-C), then the guest stops.
            guestStop.Cancel();
            if (atA is not null) await atA.DisposeAsync();
            if (atB is not null) await atB.DisposeAsync();
            if (guestTask is not null) try { await guestTask; } catch (Exception) { /* reported above, or interrupted */ }
            if (cluster is not null) await cluster.DisposeAsync();
            try { Directory.Delete(dir, recursive: true); }
            catch (IOException ex) { Console.Error.WriteLine($"reloc-node demo: could not remove {dir}: {ex.Message}"); }
        }
    }

    private static void ThrowIfFailed(GuestWorkload guest, Task guestTask)
    {
        if (guest.Failure is { } failure) throw new InvalidOperationException(failure);
        if (guestTask.IsFaulted) throw new InvalidOperationException($"the guest workload failed: {guestTask.Exception!.GetBaseException().Message}");
    }

    private static async Task WaitUntilAsync(Func<bool> condition, CancellationToken ct)
    {
        while (!condition()) await Task.Delay(20, ct);
    }

    /// <summary>4 KiB blocks that differ from the model (how many were holes at the start), bytes that differ, the first such block.</summary>
    private sealed record Mismatch(long Blocks, long InHoles, long Bytes, long? First);

    private static async Task<Mismatch> VerifyAsync(int port, SparseDisk disk, CancellationToken ct)
    {
        var model = disk.Model;
        await using var client = await NbdClient.ConnectAsync(new NbdClientOptions { Host = "127.0.0.1", Port = port, Export = DiskName }, ct);
        if (client.Size != model.Length) throw new InvalidOperationException($"site-b's disk is {client.Size} bytes, not {model.Length}");
        const int chunk = 4 << 20;
        var buffer = new byte[chunk];
        long mismatched = 0, inHoles = 0, bytes = 0;
        long? first = null;
        for (long at = 0; at < model.Length; at += chunk)
        {
            int n = (int)Math.Min(chunk, model.Length - at);
            await client.ReadAsync(at, buffer.AsMemory(0, n), ct);
            if (buffer.AsSpan(0, n).SequenceEqual(model.AsSpan((int)at, n))) continue;
            for (int b = 0; b < n; b += GuestWorkload.BlockSize)
            {
                int len = Math.Min(GuestWorkload.BlockSize, n - b);
                if (buffer.AsSpan(b, len).SequenceEqual(model.AsSpan((int)at + b, len))) continue;
                mismatched++;
                if (disk.WasHole(at + b)) inHoles++;
                for (int i = 0; i < len; i++) if (buffer[b + i] != model[(int)at + b + i]) bytes++;
                first ??= at + b;
            }
        }
        return new Mismatch(mismatched, inHoles, bytes, first);
    }

    private static string Extents(long n) => n == 1 ? "1 extent" : $"{n} extents";

    private static string Pct(double share) => (share * 100).ToString("0.#", CultureInfo.InvariantCulture) + "%";

    private static JsonObject Summarize(Settings o, SparseDisk disk, long? sourceData, double limit, TimeSpan relocateAt, TimeSpan? movedAt, TimeSpan? allLocalAt,
        TimeSpan doneAt, RelocationProtocol.DiskProgress? last, GuestWorkload guest, Mismatch mismatch, DiskView? final, bool passed, bool ownerOk)
    {
        var holeWrites = guest.HoleWritesAt;
        double relocation = (doneAt - relocateAt).TotalSeconds;
        double? copy = movedAt is { } m && allLocalAt is { } l ? (l - m).TotalSeconds : null;
        var (during, after, atSource) = guest.ReadLatencies();
        double threshold = Math.Max(o.Rtt.TotalMilliseconds / 2, 1);
        var waited = during.Where(ms => ms >= threshold).ToList();
        var quick = during.Where(ms => ms < threshold).ToList();
        static double R(double v) => double.IsNaN(v) ? -1 : Math.Round(v, 3);
        return new JsonObject
        {
            ["disk"] = DiskName, ["sizeBytes"] = o.Size, ["mode"] = o.Mode,
            ["allocatedBytes"] = disk.AllocatedBytes, ["dataExtents"] = disk.Extents.Count, ["sourceDataBytes"] = sourceData,
            ["link"] = new JsonObject { ["rttMs"] = o.Rtt.TotalMilliseconds, ["rateBytesPerSecond"] = o.Rate, ["limitSeconds"] = R(limit) },
            ["relocationSeconds"] = R(relocation), ["relocationVsLimit"] = R(relocation / limit),
            ["copyAfterHandoverSeconds"] = copy is { } c ? R(c) : null, ["copyVsLimit"] = copy is { } c2 ? R(c2 / limit) : null,
            ["onDemandFetches"] = last?.OnDemandFetches ?? 0, ["fetchedBytes"] = last?.FetchedBytes ?? 0, ["skippedBytes"] = last?.SkippedBytes ?? 0,
            ["writtenAtDestinationBytes"] = last?.WrittenBytes ?? 0,
            ["guest"] = new JsonObject
            {
                ["requests"] = guest.Ops, ["atSource"] = guest.OpsAt.GetValueOrDefault("site-a"), ["atDestination"] = guest.OpsAt.GetValueOrDefault("site-b"),
                ["writes"] = guest.Writes, ["flushes"] = guest.Flushes, ["readMismatches"] = guest.Mismatches,
                ["holeWritesAtSource"] = holeWrites.GetValueOrDefault("site-a"), ["holeWritesAtDestination"] = holeWrites.GetValueOrDefault("site-b"),
                ["readsAtSourceMedianMs"] = R(GuestWorkload.Percentile(atSource, 50)),
                ["readsWhileRelocating"] = during.Count, ["missThresholdMs"] = threshold,
                ["readsThatWaited"] = waited.Count, ["waitedMedianMs"] = R(GuestWorkload.Percentile(waited, 50)),
                ["waitedP95Ms"] = R(GuestWorkload.Percentile(waited, 95)), ["waitedMaxMs"] = R(waited.Count == 0 ? double.NaN : waited.Max()),
                ["localReadsMedianMs"] = R(GuestWorkload.Percentile(quick, 50)),
                ["readsAfterMedianMs"] = R(GuestWorkload.Percentile(after, 50)), ["readsAfter"] = after.Count,
            },
            ["owner"] = final?.Owner, ["epoch"] = final?.Epoch, ["ownerCheck"] = ownerOk,
            ["mismatchedBlocks"] = mismatch.Blocks, ["mismatchedBlocksInHoles"] = mismatch.InHoles, ["mismatchedBytes"] = mismatch.Bytes,
            ["firstMismatchOffset"] = mismatch.First,
            ["verificationPassed"] = passed,
        };
    }

    private static void PrintSummary(Output output, JsonObject s)
    {
        var link = s["link"]!;
        var g = s["guest"]!;
        static double D(JsonNode? n, string k) => J.Double(n, k);
        string Sec(double v) => v < 0 || double.IsNaN(v) ? "-" : Fmt.Duration(TimeSpan.FromSeconds(v));
        string X(double v) => v < 0 || double.IsNaN(v) ? "" : $" = {Fmt.Ratio(v)} × the link's limit";
        string Ms(double v) => v < 0 || double.IsNaN(v) ? "-" : Fmt.Ms(v);
        long size = J.Long(s, "sizeBytes"), allocated = J.Long(s, "allocatedBytes");
        var rows = new List<(string, string)>
        {
            ("disk", $"{Fmt.Bytes(size)}: {Fmt.Bytes(allocated)} of random data ({Fmt.Percent(allocated, size)}) in {Extents(J.Long(s, "dataExtents"))}, " +
                     $"{Fmt.Bytes(size - allocated)} of holes; site-a reported {(s["sourceDataBytes"] is null ? "no block status" : Fmt.Bytes(J.Long(s, "sourceDataBytes")) + " of data")}"),
            ("link", $"RTT {D(link, "rttMs")} ms, {Fmt.Cap(J.Long(link, "rateBytesPerSecond"))} per direction: {Fmt.Bytes(size)} need at least {Sec(D(link, "limitSeconds"))}"),
            ("relocation", $"{Sec(D(s, "relocationSeconds"))} from `relocate` to the source released{X(D(s, "relocationVsLimit"))}"),
            ("copy", $"{Sec(D(s, "copyAfterHandoverSeconds"))} from the handover (guest moved) to every block at site-b{X(D(s, "copyVsLimit"))}"),
            ("on-demand misses", $"{J.Long(s, "onDemandFetches")} fetches by site-b for guest requests; guest reads at site-b while relocating: {J.Long(g, "readsWhileRelocating")}, " +
                                 $"{J.Long(g, "readsThatWaited")} waited for the WAN (≥ {Ms(D(g, "missThresholdMs"))}): median {Ms(D(g, "waitedMedianMs"))}, " +
                                 $"p95 {Ms(D(g, "waitedP95Ms"))}, max {Ms(D(g, "waitedMaxMs"))}; the others (local blocks) median {Ms(D(g, "localReadsMedianMs"))}"),
            ("after", $"reads at site-b once relocated: median {Ms(D(g, "readsAfterMedianMs"))} ({J.Long(g, "readsAfter")}); at site-a before the move: median {Ms(D(g, "readsAtSourceMedianMs"))}"),
            ("bytes", $"fetched {Fmt.Bytes(J.Long(s, "fetchedBytes"))}, skipped {Fmt.Bytes(J.Long(s, "skippedBytes"))} (hole elision: holes and zero blocks are not sent), " +
                      $"made local by whole-block guest writes at site-b {Fmt.Bytes(J.Long(s, "writtenAtDestinationBytes"))}"),
            ("guest", $"{J.Long(g, "requests")} requests ({J.Long(g, "atSource")} at site-a, {J.Long(g, "atDestination")} at site-b), {J.Long(g, "writes")} writes " +
                      $"(into holes: {J.Long(g, "holeWritesAtSource")} at site-a, {J.Long(g, "holeWritesAtDestination")} at site-b), " +
                      $"{J.Long(g, "flushes")} flushes, {J.Long(g, "readMismatches")} read mismatches"),
            ("ownership", $"{J.Str(s, "owner")} at epoch {J.Long(s, "epoch")}, the source's copy released: {(J.Bool(s, "ownerCheck") ? "yes" : "NO")}"),
            ("content", J.Long(s, "mismatchedBlocks") == 0 ? "site-b's image equals the guest's model byte for byte"
                : $"{J.Long(s, "mismatchedBlocks")} 4 KiB blocks differ ({J.Long(s, "mismatchedBlocksInHoles")} of them holes at the start, " +
                  $"{J.Long(s, "mismatchedBytes")} bytes), the first at offset {s["firstMismatchOffset"]}"),
        };
        output.Line();
        if (output.Interactive) output.Console.Write(new Rule("[bold]summary[/]").LeftJustified());
        else output.Line("summary");
        output.WriteFields(rows);
    }

    /// <summary>Two sites, a link and a guest share this process: give the thread pool what the machine has
    /// from the start instead of waiting for its starvation detector.</summary>
    private static void EnsurePoolHeadroom()
    {
        ThreadPool.GetMinThreads(out var workers, out var io);
        int wanted = Environment.ProcessorCount * 4 + 4;
        if (workers < wanted) ThreadPool.SetMinThreads(wanted, Math.Max(io, wanted));
    }
}
