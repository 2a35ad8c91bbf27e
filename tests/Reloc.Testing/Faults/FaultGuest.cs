using Reloc.Nbd.Client;
using Reloc.Nbd.Protocol;

namespace Reloc.Testing.Faults;

/// <summary>
/// The campaign's guest: a loop that writes (into holes and data, across block boundaries) and flushes, as a VM
/// does, following its disk: it moves to the destination when told (connect there, then leave the source, as a
/// live-migrated QEMU does) and, when its site dies or refuses, reconnects to wherever the disk is owned.
/// The model: <see cref="Flushed"/> holds what a FLUSH made durable; writes since the last successful FLUSH are
/// <i>uncertain</i> while the site may have died: each of their bytes may read as the flushed value or as any of
/// them. After a reconnect the guest reads them back, checks that, and adopts what it finds.
/// </summary>
public sealed class FaultGuest(int size, int seed, Func<char, string> uriOf, Func<Task<char?>> ownerOf) : IAsyncDisposable
{
    private const int Block = 64 << 10;
    private readonly Random _rng = new(seed);
    private readonly List<(long Offset, byte[] Data)> _uncertain = [];
    private readonly List<string> _violations = [];
    private NbdClient? _client;
    private char? _moveTo;
    private TaskCompletionSource? _moved;

    public byte[] Flushed { get; } = new byte[size];
    public char Site { get; private set; }
    public long Writes { get; private set; }
    public long Flushes { get; private set; }
    public int Reconnects { get; private set; }
    public int Resolved { get; private set; }
    public IReadOnlyList<string> Violations => _violations;

    public async Task ConnectAsync(char site)
    {
        Site = site;
        _client = await NbdClient.ConnectAsync(NbdClientOptions.FromUri(uriOf(site)));
    }

    /// <summary>Data in a few places (whole blocks, pieces), holes elsewhere, flushed.</summary>
    public async Task SeedDataAsync()
    {
        var places = new List<(long, int)>();
        for (int i = 0; i < 24; i++) places.Add(((long)_rng.Next(0, size / Block - 8) * Block, Block * _rng.Next(1, 5)));
        for (int i = 0; i < 16; i++) places.Add(((long)_rng.Next(0, size / Block) * Block + 4096 * _rng.Next(0, 15), 4096));
        await WriteBatchAsync(places);
    }

    /// <summary>Asks the loop to move to <paramref name="site"/>; completes once it has.</summary>
    public Task MoveAsync(char site)
    {
        lock (_uncertain)
        {
            _moveTo = site;
            _moved = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _moved.Task;
        }
    }

    /// <summary>Writes and flushes until <paramref name="stop"/>; ends with everything flushed or resolved.</summary>
    public async Task RunAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await MoveIfAskedAsync();
                await WriteBatchAsync(RandomPlaces(_rng.Next(1, 9)));
                await Task.Delay(_rng.Next(5, 40), stop); // a guest's pace, not a benchmark's
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex) when (ex is IOException or TimeoutException or OperationCanceledException or ObjectDisposedException)
            {
                await RecoverAsync(stop);
            }
        }
        while (_uncertain.Count > 0 || _client is null) await RecoverAsync(CancellationToken.None);
    }

    private async Task MoveIfAskedAsync()
    {
        char? to;
        lock (_uncertain) to = _moveTo;
        if (to is not { } site || site == Site) { CompleteMove(); return; }
        var next = await NbdClient.ConnectAsync(NbdClientOptions.FromUri(uriOf(site)));
        await DropClientAsync();
        _client = next;
        Site = site;
        CompleteMove();
    }

    private void CompleteMove()
    {
        lock (_uncertain)
        {
            _moveTo = null;
            _moved?.TrySetResult();
            _moved = null;
        }
    }

    /// <summary>Writes at a few places: into holes or data, 1 byte to 3 blocks long, often across a block boundary.</summary>
    private List<(long, int)> RandomPlaces(int count)
    {
        var places = new List<(long, int)>();
        for (int i = 0; i < count; i++)
        {
            int length = _rng.Next(3) switch { 0 => 4096 * _rng.Next(1, 9), 1 => _rng.Next(1, 20_000), _ => _rng.Next(Block, 3 * Block) };
            long offset = _rng.Next(2) == 0
                ? (long)_rng.Next(1, size / Block) * Block - _rng.Next(1, Math.Min(length, 8192) + 1) // across a boundary
                : _rng.NextInt64(0, size - length);
            places.Add((Math.Clamp(offset, 0, size - length), length));
        }
        return places;
    }

    private async Task WriteBatchAsync(IEnumerable<(long Offset, int Length)> places)
    {
        var client = _client ?? throw new IOException("not connected");
        foreach (var (offset, length) in places)
        {
            var data = new byte[length];
            _rng.NextBytes(data);
            _uncertain.Add((offset, data)); // before the write: a write that fails may still have landed
            await client.WriteAsync(offset, data).WaitAsync(TimeSpan.FromSeconds(150));
            Writes++;
        }
        await client.FlushAsync().WaitAsync(TimeSpan.FromSeconds(150));
        Flushes++;
        foreach (var (offset, data) in _uncertain) data.CopyTo(Flushed, (int)offset);
        _uncertain.Clear();
    }

    /// <summary>Reconnects (to the disk's owner as the cluster says, else where it was) until it works, then
    /// resolves the uncertain writes: reads them back, checks each byte is the flushed one or a written one.</summary>
    private async Task RecoverAsync(CancellationToken stop)
    {
        await DropClientAsync();
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(4);
        while (true)
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"the guest could not reconnect to its disk for 4 minutes (last site-{Site})");
            var site = await ownerOf() ?? Site;
            try
            {
                var client = await NbdClient.ConnectAsync(NbdClientOptions.FromUri(uriOf(site)) with { ConnectTimeout = TimeSpan.FromSeconds(5) });
                _client = client;
                Site = site;
                Reconnects++;
                await ResolveAsync(client);
                CompleteMove();
                return;
            }
            catch (Exception ex) when (ex is IOException or TimeoutException or OperationCanceledException or System.Net.Sockets.SocketException)
            {
                await DropClientAsync();
                await Task.Delay(300, CancellationToken.None);
            }
        }
    }

    private async Task ResolveAsync(NbdClient client)
    {
        if (_uncertain.Count == 0) return;
        long lo = _uncertain.Min(u => u.Offset), hi = _uncertain.Max(u => u.Offset + u.Data.Length);
        var seen = new byte[hi - lo];
        for (long off = lo; off < hi; off += 1 << 20)
            await client.ReadAsync(off, seen.AsMemory((int)(off - lo), (int)Math.Min(1 << 20, hi - off))).WaitAsync(TimeSpan.FromSeconds(150));
        for (long i = 0; i < seen.Length; i++)
        {
            long at = lo + i;
            byte b = seen[i];
            if (b != Flushed[at] && !_uncertain.Any(u => at >= u.Offset && at < u.Offset + u.Data.Length && u.Data[at - u.Offset] == b))
            {
                _violations.Add($"byte {at} read at site-{Site} after a reconnect is neither the flushed value nor one written since");
                break;
            }
        }
        // What the disk holds now becomes promised once it is durable: the same bytes written back, then FLUSH
        // (no change of content). Until that succeeds the writes stay uncertain.
        await client.WriteAsync(lo, seen).WaitAsync(TimeSpan.FromSeconds(150));
        await client.FlushAsync().WaitAsync(TimeSpan.FromSeconds(150));
        seen.CopyTo(Flushed, (int)lo);
        _uncertain.Clear();
        Resolved++;
    }

    private async Task DropClientAsync()
    {
        var c = _client;
        _client = null;
        if (c is null) return;
        try { await c.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10)); }
        catch (Exception ex) when (ex is IOException or TimeoutException or ObjectDisposedException or OperationCanceledException) { }
    }

    public ValueTask DisposeAsync() => new(DropClientAsync());
}
