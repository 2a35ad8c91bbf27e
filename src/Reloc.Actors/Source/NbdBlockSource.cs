using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Reloc.Nbd.Client;
using Reloc.Storage;

namespace Reloc.Actors.Source;

/// <summary>A source site reached over NBD: one connection of its own that reconnects with backoff.
/// Reads are idempotent, so one cut off by a lost connection is retried on the next.</summary>
public sealed class NbdBlockSource(NbdClientOptions options, long size, ReconnectOptions? reconnect = null, NbdClient? first = null,
    PeerConnectionPool? pool = null, ILogger? logger = null) : IBlockSource
{
    private readonly ReconnectingNbdClient _client = new(options, reconnect, logger, first, pool);

    public long Size { get; } = size;

    internal ReconnectingNbdClient Client => _client;

    public Task ReadAsync(long offset, Memory<byte> destination, CancellationToken ct) => _client.ReadAsync(offset, destination, ct);

    public async Task<IReadOnlyList<Extent>?> GetExtentsAsync(long offset, long length, CancellationToken ct)
    {
        var client = await _client.GetClientAsync(ct);
        if (!client.CanBlockStatus) return null;
        var extents = await _client.BlockStatusAsync(offset, (uint)Math.Min(length, uint.MaxValue & ~0xfffL), ct);
        return extents.Select(e => e.Extent).ToList();
    }

    public ValueTask DisposeAsync() => _client.DisposeAsync();

    /// <summary>A factory for a disk's children: each call makes a separate connection. The first
    /// <see cref="SourceLane.Misses"/> connection is <paramref name="first"/> when given: one opened before it was
    /// needed, so a guest's first miss does not wait for a handshake over the WAN. With <paramref name="pool"/> (the
    /// source site's parked connections, see <see cref="PeerConnectionPool"/>) every connection is taken from it.</summary>
    public static BlockSourceFactory Factory(NbdClientOptions options, long size, ReconnectOptions? reconnect = null, NbdClient? first = null,
        PeerConnectionPool? pool = null, ILogger? logger = null)
    {
        var open = new StrongBox<NbdClient?>(first);
        return lane => new NbdBlockSource(options, size, reconnect, lane == SourceLane.Misses ? Interlocked.Exchange(ref open.Value, null) : null, pool, logger);
    }
}
