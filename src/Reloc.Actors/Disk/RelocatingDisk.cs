using System.Buffers;
using System.Diagnostics;
using Akka.Actor;
using Reloc.Actors.Telemetry;
using Reloc.Storage;
using static Reloc.Actors.Disk.VirtualDiskProtocol;

namespace Reloc.Actors.Disk;

/// <summary>
/// The NBD face of a relocating disk. Requests on local blocks go straight to the image on the
/// connection's thread (the block map is read lock-free; the actor is its only writer), so a guest
/// read of a relocated block never waits for the actor, the network or the background copy. Only a
/// request that touches missing blocks, and FLUSH, talk to the <see cref="VirtualDiskActor"/>.
/// Once every block is local the fast path is all there is: clients stay connected throughout.
/// A read that waits for missing blocks is reported to <paramref name="metrics"/> (the guest's wait on a miss).
/// <paramref name="stopping"/> fires when the disk actor's system is gone: requests waiting on it then fail at once
/// (EIO) instead of at the miss timeout, so a node the cluster downed drains its NBD clients and exits promptly.
/// </summary>
public sealed class RelocatingDisk(IBlockDevice image, DiskState state, IActorRef disk, DiskSettings settings, DiskMetrics? metrics = null,
    CancellationToken stopping = default) : IBlockDevice
{
    private readonly TimeSpan _askTimeout = settings.MissTimeout + TimeSpan.FromSeconds(5);
    private readonly BlockMap map = state.Map;

    /// <summary>Writes bypass the actor only where this site owns the disk and the blocks are local.</summary>
    private bool Writable(long offset, long length) => state.IsOwner && map.AllLocal(offset, length);

    public long Size => image.Size;
    public bool IsReadOnly => false;

    public bool TryRead(long offset, Span<byte> destination) =>
        state.IsOwner && map.AllLocal(offset, destination.Length) && image.TryRead(offset, destination);

    public async ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken ct)
    {
        // Not a miss when the blocks are local and only the page cache made TryRead decline.
        long missed = metrics is not null && !(state.IsOwner && map.AllLocal(offset, destination.Length)) ? Stopwatch.GetTimestamp() : 0;
        if (!state.IsOwner && await AskAsync(new ReadThrough(offset, destination.Length), ct) is ThroughData through)
        {
            through.Data.CopyTo(destination);
            if (missed != 0) metrics!.Missed(missed);
            return;
        }
        var ready = await AskAsync(new EnsureLocal(offset, destination.Length), ct);
        if (missed != 0) metrics!.Missed(missed);
        if (ready is ThroughData first) first.Data.CopyTo(destination); // the range, ahead of its block
        else image.TryRead(offset, destination.Span);
    }

    public ValueTask WriteAsync(long offset, in ReadOnlySequence<byte> data, WriteOptions options, CancellationToken ct)
    {
        if (Writable(offset, data.Length)) return image.WriteAsync(offset, data, options, ct);
        var copy = data.ToArray(); // the sequence is only ours until we return
        return GrantedAsync(offset, copy.Length, options, () => image.WriteAsync(offset, new ReadOnlySequence<byte>(copy), WriteOptions.None, ct), ct);
    }

    public ValueTask FlushAsync(CancellationToken ct) => new(AskAsync(new Sync(), ct));

    public ValueTask TrimAsync(long offset, long length, WriteOptions options, CancellationToken ct) =>
        Writable(offset, length)
            ? image.TrimAsync(offset, length, options, ct)
            : GrantedAsync(offset, length, options, () => image.TrimAsync(offset, length, WriteOptions.None, ct), ct);

    public ValueTask WriteZeroesAsync(long offset, long length, WriteOptions options, CancellationToken ct) =>
        Writable(offset, length)
            ? image.WriteZeroesAsync(offset, length, options, ct)
            : GrantedAsync(offset, length, options, () => image.WriteZeroesAsync(offset, length, options & ~WriteOptions.Fua, ct), ct);

    public ValueTask CacheAsync(long offset, long length, CancellationToken ct)
    {
        if (!map.AllLocal(offset, length)) disk.Tell(new Warm(offset, length));
        return image.CacheAsync(offset, length, ct);
    }

    public ValueTask<IReadOnlyList<Extent>> GetExtentsAsync(long offset, long length, int maxExtents, CancellationToken ct) =>
        // Where blocks are missing the local image cannot tell; "data" is always a true answer.
        // Before the handover a local copy may be older than the source: only the owner's holes are true.
        state.IsOwner && map.AllLocal(offset, length)
            ? image.GetExtentsAsync(offset, length, maxExtents, ct)
            : ValueTask.FromResult<IReadOnlyList<Extent>>([new Extent(length, ExtentFlags.Data)]);

    /// <summary>A write-like operation on a range with missing blocks: the disk fetches partly covered
    /// blocks first (read-modify-write) and reserves wholly covered ones, so no fetch can land on top.</summary>
    private async ValueTask GrantedAsync(long offset, long length, WriteOptions options, Func<ValueTask> write, CancellationToken ct)
    {
        var grant = (WriteGranted)await AskAsync(new PrepareWrite(offset, length), ct);
        try
        {
            await write();
        }
        catch
        {
            disk.Tell(new WriteAborted(grant.Reserved));
            throw;
        }
        disk.Tell(new WriteDone(grant.Reserved, map.BlockSize));
        if (options.HasFlag(WriteOptions.Fua)) await AskAsync(new Sync(), ct);
    }

    private async Task<object> AskAsync(object message, CancellationToken ct)
    {
        object reply;
        using var either = CancellationTokenSource.CreateLinkedTokenSource(ct, stopping);
        try
        {
            reply = await disk.Ask<object>(message, _askTimeout, either.Token);
        }
        catch (AskTimeoutException ex)
        {
            throw new BlockDeviceException(DeviceError.Io, "disk actor did not answer in time", ex);
        }
        catch (OperationCanceledException ex) when (stopping.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            throw new BlockDeviceException(DeviceError.Io, "this node is stopping", ex);
        }
        return reply switch
        {
            Failed f => throw new BlockDeviceException(DeviceError.Io, f.Reason),
            Akka.Actor.Status.Failure sf => throw new BlockDeviceException(DeviceError.Io, sf.Cause.Message, sf.Cause),
            _ => reply,
        };
    }
}
