using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Reloc.Management;
using Reloc.Nbd.Client;
using Xunit;

namespace Reloc.Testing;

/// <summary>
/// Three <c>reloc-node --config</c> processes made from hocon/site-{a,b,c}.conf (with free ports and a
/// temporary data directory appended, and a faster split-brain resolver), driven through their
/// management endpoints as the console would.
/// </summary>
public sealed class SiteCluster : IAsyncDisposable
{
    public const string Sites = "abc";
    private readonly Dictionary<char, NodeProcess> _nodes = [];
    private readonly Dictionary<char, (int Akka, int Nbd, int Management, int Advertised)> _ports = [];

    /// <param name="postgres">A PostgreSQL connection string every site persists to (one database,
    /// distinct persistence ids); null: each site's embedded SQLite file.</param>
    /// <param name="advertiseLinks">Each site advertises its NBD server at <see cref="AdvertisedPort"/> instead, where the
    /// caller puts a WAN link to it (<see cref="NbdPort"/>): every site-to-site NBD connection then crosses a link.</param>
    /// <param name="extra">More HOCON per site, appended last (later keys win).</param>
    public SiteCluster(string? postgres = null, bool advertiseLinks = false, Func<char, string>? extra = null)
    {
        Dir = Directory.CreateTempSubdirectory("reloc-sites-").FullName;
        var hocon = Path.Combine(RepoRoot(), "hocon");
        File.Copy(Path.Combine(hocon, "reloc.conf"), Path.Combine(Dir, "reloc.conf"));
        foreach (var s in Sites) _ports[s] = (Ports.Free(), Ports.Free(), Ports.Free(), Ports.Free());
        var seeds = $"[\"akka.tcp://reloc@127.0.0.1:{_ports['a'].Akka}\", \"akka.tcp://reloc@127.0.0.1:{_ports['b'].Akka}\"]";
        foreach (var s in Sites)
        {
            // Later keys win in HOCON: the shipped site file, then what a test machine needs.
            File.WriteAllText(ConfigPath(s), File.ReadAllText(Path.Combine(hocon, $"site-{s}.conf")) + $$"""

                reloc.site.data-dir = "{{Path.Combine(Dir, "site-" + s)}}"
                reloc.site.import-dir = "{{Dir}}"
                reloc.site.nbd.listen = "127.0.0.1:{{_ports[s].Nbd}}"
                reloc.management.listen = "127.0.0.1:{{_ports[s].Management}}"
                reloc.disk.miss-timeout = 120s
                akka.remote.dot-netty.tcp.port = {{_ports[s].Akka}}
                akka.cluster.seed-nodes = {{seeds}}
                akka.cluster.split-brain-resolver.stable-after = 3s
                {{(postgres is null ? "" : $"reloc.persistence {{ provider = postgresql, connection-string = \"{postgres}\" }}")}}
                {{(advertiseLinks ? $"reloc.site.nbd.advertise = \"127.0.0.1:{_ports[s].Advertised}\"" : "")}}
                {{extra?.Invoke(s) ?? ""}}
                """);
        }
    }

    public string Dir { get; }
    public int NbdPort(char site) => _ports[site].Nbd;
    /// <summary>Where the site says its NBD server is, with advertiseLinks (otherwise unused).</summary>
    public int AdvertisedPort(char site) => _ports[site].Advertised;
    public string DataDir(char site) => Path.Combine(Dir, "site-" + site);
    public bool IsRunning(char site) => _nodes.ContainsKey(site);
    /// <summary>The site's process id (RSS sampling), or null when it is not running.</summary>
    public int? ProcessId(char site) => _nodes.TryGetValue(site, out var n) ? n.Id : null;
    /// <summary>Site <paramref name="site"/>'s management API: http://127.0.0.1:PORT.</summary>
    public string ApiUrl(char site) => $"http://127.0.0.1:{_ports[site].Management}";
    public string ConfigPath(char site) => Path.Combine(Dir, $"site-{site}.conf");
    /// <summary>host:port of the site's management API, which also serves /metrics.</summary>
    public string ManagementEndpoint(char site) => $"127.0.0.1:{_ports[site].Management}";
    public string NbdUri(char site, string disk) => GuestCertificates is null
        ? $"nbd://127.0.0.1:{_ports[site].Nbd}/{disk}"
        : $"nbds://127.0.0.1:{_ports[site].Nbd}/{disk}?tls-certificates={GuestCertificates}";

    /// <summary>When set, guests (and the checks that read disks back) connect over TLS with this folder's
    /// ca-cert.pem and client certificate.</summary>
    public string? GuestCertificates { get; init; }
    public string ImagePath(char site, string disk) => Path.Combine(Dir, "site-" + site, disk + ".img");

    public static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "hocon", "reloc.conf"))) return d.FullName;
        throw new InvalidOperationException("cannot find the repository's hocon/ folder above " + AppContext.BaseDirectory);
    }

    /// <summary>How long a site may take to print its ready line (a campaign on a crowded machine needs more).</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>The running process of <paramref name="site"/> (its log lines, its pid).</summary>
    public NodeProcess Node(char site) => _nodes[site];

    /// <param name="waitReady">false: return once the process runs (a node that may never get ready, or may exit).</param>
    public async Task StartAsync(char site, bool waitReady = true)
    {
        var node = NodeProcess.Start("--config", ConfigPath(site));
        _nodes[site] = node;
        if (waitReady) await node.WaitForLineAsync(l => l.StartsWith("reloc-node: site", StringComparison.Ordinal), StartTimeout);
    }

    /// <summary>Starts every site (a first: the oldest node hosts the coordinator) and waits until all see three Up members.</summary>
    public async Task StartAllAsync()
    {
        foreach (var s in Sites)
        {
            await StartAsync(s);
            await WaitUpAsync(s, Sites.IndexOf(s) + 1);
        }
        foreach (var s in Sites) await WaitUpAsync(s, 3);
        await WaitAsync(async () => await TryAsync('a', c => c.RelocationsAsync()) is not null, TimeSpan.FromSeconds(60));
    }

    public async Task WaitUpAsync(char via, int count)
    {
        ClusterView? show = null;
        try
        {
            await WaitAsync(async () =>
            {
                show = await TryAsync(via, c => c.ClusterAsync());
                return show?.Members.Count(m => m is { Status: "Up", Reachable: true }) == count && show.Members.Count == count;
            }, TimeSpan.FromSeconds(90));
        }
        catch (TimeoutException e)
        {
            var logs = string.Concat(_nodes.Select(n => $"\nsite-{n.Key}'s last lines:\n  " + string.Join("\n  ", n.Value.Lines.TakeLast(5))));
            throw new TimeoutException($"{e.Message}: {count} members Up and reachable as site-{via} sees them; last seen: {(show is null ? "no answer" : string.Join(", ", show.Members))}{logs}");
        }
    }

    /// <summary>Sites whose process ended by itself (a node the cluster removed exits with status 3): forgotten, so they can be started again.</summary>
    public async Task<IReadOnlyList<char>> ReapExitedAsync()
    {
        var gone = _nodes.Where(n => n.Value.HasExited).Select(n => n.Key).ToList();
        foreach (var s in gone)
        {
            await _nodes[s].DisposeAsync();
            _nodes.Remove(s);
        }
        return gone;
    }

    /// <summary>kill -9: no goodbye to the cluster, no flush, no journal write.</summary>
    public async Task KillAsync(char site)
    {
        var node = _nodes[site];
        await node.SignalAsync("KILL");
        await node.WaitForExitAsync(TimeSpan.FromSeconds(30));
        await node.DisposeAsync();
        _nodes.Remove(site);
    }

    /// <summary>SIGTERM (a graceful stop: drain, leave the cluster); returns what the node logged on stderr.</summary>
    public async Task<string> StopAsync(char site)
    {
        var node = _nodes[site];
        await node.SignalAsync("TERM");
        Assert.Equal(0, await node.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        var log = await node.StdErr;
        await node.DisposeAsync();
        _nodes.Remove(site);
        return log;
    }

    /// <summary>Calls site <paramref name="via"/>'s management API.</summary>
    public async Task<T> CallAsync<T>(char via, Func<ManagementClient, Task<T>> call)
    {
        using var client = new ManagementClient($"127.0.0.1:{_ports[via].Management}", TimeSpan.FromSeconds(10));
        return await call(client);
    }

    /// <summary>As <see cref="CallAsync{T}"/>; null when the node refused or did not answer (it may be down on purpose).</summary>
    public async Task<T?> TryAsync<T>(char via, Func<ManagementClient, Task<T>> call) where T : class
    {
        try { return await CallAsync(via, call); }
        catch (ManagementException) { return null; }
        catch (HttpRequestException) { return null; }
        catch (IOException) { return null; }
    }

    /// <summary>The relocation of <paramref name="disk"/> as the coordinator sees it, or null when there is none.</summary>
    public async Task<string?> PhaseAsync(char via, string disk)
    {
        var list = await TryAsync(via, c => c.RelocationsAsync());
        return list?.FirstOrDefault(r => r.Disk == disk)?.Phase;
    }

    public Task RelocateAsync(char via, string to, string mode, long rate) =>
        CallAsync(via, c => c.RelocateAsync(new RelocateRequest("vm", "site-" + to, mode == "hybrid" ? RelocationMode.Hybrid : RelocationMode.Postcopy, rate)));

    public Task WaitPhaseAsync(char via, string phase) =>
        WaitAsync(async () => await PhaseAsync(via, "vm") == phase, TimeSpan.FromSeconds(120), $"relocation phase {phase}");

    /// <summary>Waits until no relocation is left and <paramref name="owner"/> owns the disk; then checks content and the release.</summary>
    public async Task FinishAndVerifyAsync(char via, char owner, char source, Guest guest, long epoch)
    {
        // Full speed from here (it may be over already: a restarted destination resumes without the cap).
        await TryAsync(via, c => c.SetRateAsync("vm", 0));
        DiskView? show = null;
        await WaitAsync(async () =>
        {
            show = await TryAsync(via, c => c.DiskAsync("vm"));
            return show is not null && show.Owner == "site-" + owner && show.Phase == "owned"
                   && show.Copies.Count == 1 && await PhaseAsync(via, "vm") is null;
        }, TimeSpan.FromSeconds(120), "relocation complete and source released");
        Assert.Equal(epoch, show!.Epoch);
        Assert.False(File.Exists(ImagePath(source, "vm")), "the source's copy is released");
        var image = await Guest.ReadAllAsync(NbdUri(owner, "vm"), guest.Expected.Length);
        var mismatch = guest.Mismatch(image);
        Assert.True(mismatch is null, mismatch);
        Assert.Equal(guest.ExpectedChecksum, Tool.Sha256Of(image));
        await guest.ReadAndCheckAsync(20);
        await guest.DisconnectAsync();
    }

    public static async Task WaitAsync(Func<Task<bool>> condition, TimeSpan timeout, string? what = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"condition not met within {timeout}{(what is null ? "" : ": " + what)}");
            await Task.Delay(200);
        }
    }

    /// <summary>Ends every site process (before unmounting a file system under a data directory).</summary>
    public async Task DisposeNodesAsync()
    {
        foreach (var n in _nodes.Values) await n.DisposeAsync();
        _nodes.Clear();
    }

    public async ValueTask DisposeAsync()
    {
        await DisposeNodesAsync();
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }
}

/// <summary>A guest-like NBD client that keeps the content it expects: random or placed writes, each batch
/// followed by FLUSH; only flushed writes count as promised.</summary>
public sealed class Guest(byte[] initial, int seed) : IAsyncDisposable
{
    private readonly Random _rng = new(seed);
    private NbdClient? _client;

    public byte[] Expected { get; } = (byte[])initial.Clone();
    public int Writes { get; private set; }

    public async Task ConnectAsync(string uri)
    {
        await DisconnectAsync();
        _client = await NbdClient.ConnectAsync(NbdClientOptions.FromUri(uri));
    }

    /// <summary>As a live-migrated VM does: the destination connects first, then the source goes away.</summary>
    public async Task MigrateAsync(string uri)
    {
        var next = await NbdClient.ConnectAsync(NbdClientOptions.FromUri(uri));
        await DisconnectAsync();
        _client = next;
    }

    public async Task DisconnectAsync()
    {
        if (_client is not null) await _client.DisposeAsync();
        _client = null;
    }

    public Task WriteAndFlushAsync(int count) => WriteAtAndFlushAsync(RandomPlaces(count));

    private IEnumerable<(long Offset, int Length)> RandomPlaces(int count)
    {
        for (int i = 0; i < count; i++)
        {
            int length = 4096 * _rng.Next(1, 9);
            yield return (4096L * _rng.Next(0, (Expected.Length - length) / 4096), length);
        }
    }

    /// <summary>Writes random data at each (offset, length) in turn, then FLUSH.</summary>
    public async Task WriteAtAndFlushAsync(IEnumerable<(long Offset, int Length)> writes)
    {
        var client = _client ?? throw new InvalidOperationException("not connected");
        foreach (var (offset, length) in writes)
        {
            var data = new byte[length];
            _rng.NextBytes(data);
            await client.WriteAsync(offset, data);
            data.CopyTo(Expected, (int)offset);
            Writes++;
        }
        await client.FlushAsync();
    }

    /// <summary>Reads some random ranges and checks them against what was written.</summary>
    public async Task ReadAndCheckAsync(int count)
    {
        var client = _client ?? throw new InvalidOperationException("not connected");
        for (int i = 0; i < count; i++)
        {
            int length = 4096 * _rng.Next(1, 33);
            long offset = 4096L * _rng.Next(0, (Expected.Length - length) / 4096);
            var data = new byte[length];
            await client.ReadAsync(offset, data);
            if (!data.AsSpan().SequenceEqual(Expected.AsSpan((int)offset, length)))
                throw new InvalidDataException($"guest read at {offset}+{length} returned data other than what it wrote last");
        }
    }

    /// <summary>The whole disk as an NBD client at <paramref name="uri"/> reads it.</summary>
    public static async Task<byte[]> ReadAllAsync(string uri, int size)
    {
        await using var client = await NbdClient.ConnectAsync(NbdClientOptions.FromUri(uri));
        var image = new byte[size];
        for (int off = 0; off < size; off += 1 << 20)
            await client.ReadAsync(off, image.AsMemory(off, Math.Min(1 << 20, size - off)));
        return image;
    }

    /// <summary>Null when <paramref name="image"/> holds what the guest expects; otherwise which 64 KiB
    /// blocks differ, and how many of them read as zeros.</summary>
    public string? Mismatch(byte[] image)
    {
        const int block = 64 << 10;
        var differ = new List<int>();
        int zeros = 0, blocks = (Expected.Length + block - 1) / block;
        for (int b = 0; b < blocks; b++)
        {
            int off = b * block, n = Math.Min(block, Expected.Length - off);
            var got = image.AsSpan(off, n);
            if (got.SequenceEqual(Expected.AsSpan(off, n))) continue;
            differ.Add(b);
            if (got.IndexOfAnyExcept((byte)0) < 0) zeros++;
        }
        if (differ.Count == 0) return null;
        var runs = new List<string>();
        for (int i = 0; i < differ.Count;)
        {
            int j = i;
            while (j + 1 < differ.Count && differ[j + 1] == differ[j] + 1) j++;
            runs.Add(i == j ? $"{differ[i]}" : $"{differ[i]}-{differ[j]}");
            i = j + 1;
        }
        return $"{differ.Count} of {blocks} 64 KiB blocks differ from what the guest wrote and flushed, {zeros} of them read as zeros: blocks {string.Join(", ", runs)}";
    }

    public string ExpectedChecksum => Convert.ToHexString(SHA256.HashData(Expected));

    public ValueTask DisposeAsync() => new(DisconnectAsync());
}
