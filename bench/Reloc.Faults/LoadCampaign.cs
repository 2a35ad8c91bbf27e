using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Reloc.Management;
using Reloc.Nbd.Client;
using Reloc.Testing;

/// <summary>
/// One site node under load, phase by phase (each <c>seconds</c> long): quiet, 200 NBD clients doing 4 KiB I/O,
/// 1000 TCP connections opened and closed per second, slow handshakes (clients that connect and then send one
/// byte per second), a flood of management GETs, then all of them at once. Meanwhile a guest reads 4 KiB at
/// random offsets, one at a time, and its latency is recorded; the node's VmRSS is sampled every 250 ms.
/// </summary>
internal static class LoadCampaign
{
    private const long DiskSize = 256 << 20;
    private const int IoClients = 200, ChurnPerSecond = 1000, SlowClients = 500, FloodLoops = 32;

    private sealed record PhaseResult(string Name, int Reads, double P50, double P99, double Max, long RssMaxKiB, long RssEndKiB, string Load);

    public static async Task<int> RunAsync(int seconds, string? output)
    {
        await using var c = new SiteCluster();
        await c.StartAsync('a');
        await c.WaitUpAsync('a', 1);
        await SiteCluster.WaitAsync(async () => await c.TryAsync('a', m => m.DisksAsync()) is not null, TimeSpan.FromSeconds(60));
        await c.CallAsync('a', m => m.CreateDiskAsync(new CreateDiskRequest("vm", "site-a", DiskSize)));
        var uri = c.NbdUri('a', "vm");
        var nbd = new IPEndPoint(IPAddress.Loopback, c.NbdPort('a'));
        var pid = c.ProcessId('a')!.Value;
        // Data everywhere the guest reads, so its reads hit the file, not holes.
        await using (var fill = await NbdClient.ConnectAsync(NbdClientOptions.FromUri(uri)))
        {
            var chunk = new byte[1 << 20];
            Random.Shared.NextBytes(chunk);
            for (long off = 0; off < DiskSize; off += chunk.Length) await fill.WriteAsync(off, chunk);
            await fill.FlushAsync();
        }

        var phases = new (string Name, Func<CancellationToken, Task<string>>[] Loads)[]
        {
            ("quiet", []),
            ($"{IoClients} NBD clients", [ct => IoClientsAsync(uri, ct)]),
            ($"{ChurnPerSecond} conn/s", [ct => ChurnAsync(nbd, ct)]),
            ($"{SlowClients} slow handshakes", [ct => SlowHandshakesAsync(nbd, seconds, ct)]),
            ("management flood", [ct => FloodAsync(c.ManagementEndpoint('a'), ct)]),
            ("all at once", [ct => IoClientsAsync(uri, ct), ct => ChurnAsync(nbd, ct), ct => SlowHandshakesAsync(nbd, seconds, ct), ct => FloodAsync(c.ManagementEndpoint('a'), ct)]),
            ("quiet again", []),
        };
        var results = new List<PhaseResult>();
        foreach (var (name, loads) in phases)
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
            var rss = SampleRssAsync(pid, cts.Token);
            var running = loads.Select(l => l(cts.Token)).ToList();
            var latencies = await GuestReadsAsync(uri, cts.Token);
            var summaries = await Task.WhenAll(running);
            var (rssMax, rssEnd) = await rss;
            latencies.Sort();
            double P(double q) => latencies.Count == 0 ? double.NaN : latencies[Math.Min(latencies.Count - 1, (int)(q * latencies.Count))];
            var r = new PhaseResult(name, latencies.Count, P(0.5), P(0.99), latencies.Count == 0 ? double.NaN : latencies[^1], rssMax, rssEnd, string.Join("; ", summaries));
            results.Add(r);
            Console.WriteLine($"{r.Name}: guest reads {r.Reads}, p50 {r.P50:0.00} ms, p99 {r.P99:0.00} ms, max {r.Max:0.0} ms, RSS max {r.RssMaxKiB / 1024} MiB, end {r.RssEndKiB / 1024} MiB; {r.Load}");
            if (!c.IsRunning('a') || Process.GetProcessById(pid).HasExited) { Console.WriteLine("the node died"); return 1; }
        }
        var table = "| phase | guest 4 KiB reads | p50 (ms) | p99 (ms) | max (ms) | RSS max (MiB) | RSS end (MiB) | load achieved |\n|---|---|---|---|---|---|---|---|\n" +
                    string.Join('\n', results.Select(r => $"| {r.Name} | {r.Reads} | {r.P50:0.00} | {r.P99:0.00} | {r.Max:0.0} | {r.RssMaxKiB / 1024} | {r.RssEndKiB / 1024} | {r.Load} |"));
        Console.WriteLine(table);
        if (output is not null) await File.WriteAllTextAsync(output, table + "\n");
        return 0;
    }

    private static async Task<List<double>> GuestReadsAsync(string uri, CancellationToken ct)
    {
        var latencies = new List<double>();
        await using var client = await NbdClient.ConnectAsync(NbdClientOptions.FromUri(uri));
        var buffer = new byte[4096];
        var rng = new Random(7);
        while (!ct.IsCancellationRequested)
        {
            long t = Stopwatch.GetTimestamp();
            await client.ReadAsync(4096L * rng.NextInt64(DiskSize / 4096), buffer);
            latencies.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
            try { await Task.Delay(5, ct); } catch (OperationCanceledException) { break; } // a guest's pace: about 200 reads/s
        }
        return latencies;
    }

    private static async Task<(long Max, long End)> SampleRssAsync(int pid, CancellationToken ct)
    {
        long max = 0, last = 0;
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(250));
        try
        {
            do
            {
                var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
                if (line is not null) last = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
                max = Math.Max(max, last);
            } while (await timer.WaitForNextTickAsync(ct));
        }
        catch (OperationCanceledException) { }
        return (max, last);
    }

    /// <summary>Each client: random 4 KiB reads and writes, one at a time, as fast as it is served.</summary>
    private static async Task<string> IoClientsAsync(string uri, CancellationToken ct)
    {
        long ops = 0, errors = 0;
        var sw = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, IoClients).Select(async i =>
        {
            var rng = new Random(i);
            var buffer = new byte[4096];
            try
            {
                await using var client = await NbdClient.ConnectAsync(NbdClientOptions.FromUri(uri));
                while (!ct.IsCancellationRequested)
                {
                    long off = 4096L * rng.NextInt64(DiskSize / 4096);
                    if (rng.Next(4) == 0) await client.WriteAsync(off, buffer);
                    else await client.ReadAsync(off, buffer);
                    Interlocked.Increment(ref ops);
                }
            }
            catch (Exception ex) when (ex is IOException or SocketException or TimeoutException) { Interlocked.Increment(ref errors); }
        }));
        return $"NBD I/O {ops / sw.Elapsed.TotalSeconds:0}/s by {IoClients} clients, {errors} failed";
    }

    /// <summary>Opens and closes TCP connections to the NBD port at a fixed rate (10 every 10 ms).</summary>
    private static async Task<string> ChurnAsync(IPEndPoint nbd, CancellationToken ct)
    {
        long opened = 0, failed = 0;
        var sw = Stopwatch.StartNew();
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(10));
        var inFlight = new List<Task>();
        try
        {
            while (await timer.WaitForNextTickAsync(ct))
            {
                inFlight.RemoveAll(t => t.IsCompleted);
                if (inFlight.Count > 2000) continue; // the server stopped accepting: do not pile up sockets here
                for (int i = 0; i < ChurnPerSecond / 100; i++)
                    inFlight.Add(OpenCloseAsync());
            }
        }
        catch (OperationCanceledException) { }
        await Task.WhenAll(inFlight);
        return $"{opened / sw.Elapsed.TotalSeconds:0} conn/s opened+closed, {failed} failed";

        async Task OpenCloseAsync()
        {
            using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await s.ConnectAsync(nbd).WaitAsync(TimeSpan.FromSeconds(5));
                Interlocked.Increment(ref opened);
            }
            catch (Exception ex) when (ex is SocketException or TimeoutException) { Interlocked.Increment(ref failed); }
        }
    }

    /// <summary>Clients that connect, read the server's greeting and then send their flags one byte per second;
    /// counts how many the server closed before the phase ended (a handshake timeout would).</summary>
    private static async Task<string> SlowHandshakesAsync(IPEndPoint nbd, int seconds, CancellationToken ct)
    {
        int closedByServer = 0, stillOpen = 0, failed = 0;
        await Task.WhenAll(Enumerable.Range(0, SlowClients).Select(async _ =>
        {
            using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await s.ConnectAsync(nbd, ct);
                var buffer = new byte[256];
                await s.ReceiveAsync(buffer, SocketFlags.None, ct); // the greeting
                using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
                for (int i = 0; i < 3 && await timer.WaitForNextTickAsync(ct); i++)
                    await s.SendAsync(new byte[] { 0 }, SocketFlags.None, ct); // 3 of the 4 flag bytes, then nothing
                while (await s.ReceiveAsync(buffer, SocketFlags.None, ct) > 0) { }
                Interlocked.Increment(ref closedByServer);
            }
            catch (OperationCanceledException) { Interlocked.Increment(ref stillOpen); }
            catch (SocketException) { Interlocked.Increment(ref closedByServer); }
        }));
        return $"{SlowClients} slow handshakes: {closedByServer} closed by the server within {seconds}s, {stillOpen} still open, {failed} failed";
    }

    private static async Task<string> FloodAsync(string management, CancellationToken ct)
    {
        long ok = 0, failed = 0;
        var sw = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, FloodLoops).Select(async i =>
        {
            using var m = new ManagementClient(management, TimeSpan.FromSeconds(10));
            while (!ct.IsCancellationRequested)
            {
                try
                {
                    _ = i % 2 == 0 ? (object)await m.DisksAsync(ct) : await m.DiskAsync("vm", ct);
                    Interlocked.Increment(ref ok);
                }
                catch (OperationCanceledException) { break; }
                catch (Exception ex) when (ex is ManagementException or HttpRequestException or IOException) { Interlocked.Increment(ref failed); }
            }
        }));
        return $"management GETs {ok / sw.Elapsed.TotalSeconds:0}/s ({FloodLoops} loops), {failed} failed";
    }
}
