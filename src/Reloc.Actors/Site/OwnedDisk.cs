using System.Buffers;
using Reloc.Storage;

namespace Reloc.Actors.Site;

/// <summary>
/// The NBD face of a disk this site owns. It adds the two things a relocation needs from the source:
/// write tracking (which blocks the guest wrote since the destination last heard, so the destination can
/// invalidate stale copies) and a fence (after handover every write-like request fails with EPERM while
/// reads and FLUSH still succeed, as a migrating QEMU expects from the source it is leaving).
/// </summary>
/// <param name="device">What serves the data: the image itself, or (for a disk that arrived by relocation)
/// its relocating disk, so the same export object stays with the guest's connection from arrival to departure.</param>
public sealed class OwnedDisk(RawImage image, IBlockDevice? device = null) : IBlockDevice
{
    private readonly IBlockDevice _device = device ?? image;
    private readonly object _gate = new();
    private readonly WriteTracker _tracker = new(image.Size);
    private TaskCompletionSource? _drained;

    public RawImage Image => image;
    public long Size => _device.Size;
    public bool IsReadOnly => false; // fencing is temporary: advertising read-only would make clients give up
    public bool IsFenced { get { lock (_gate) return _tracker.IsFenced; } }

    /// <summary>The face guests are served through: the same disk, except that once fenced it refuses their reads
    /// too (the new owner may have acknowledged writes this copy never sees). Other sites' fetchers read the disk
    /// itself (the peer export), fenced or not: post-copy fetches from the fenced source.</summary>
    public IBlockDevice ForGuests => new GuestFace(this);

    /// <summary>Start recording written blocks (of <paramref name="blockSize"/> bytes) for a relocation;
    /// <paramref name="everything"/>: count every block as written once (after a restart).</summary>
    public void StartTracking(int blockSize, bool everything = false)
    {
        lock (_gate) _tracker.StartTracking(blockSize, everything);
    }

    /// <summary>The written blocks since the last drain, as sorted runs; tracking goes on.</summary>
    public List<(long First, long Count)> DrainDirty()
    {
        lock (_gate) return _tracker.DrainDirty();
    }

    public void StopTracking()
    {
        lock (_gate) _tracker.StopTracking();
    }

    /// <summary>From now on writes fail with EPERM; completes when every write admitted before the fence
    /// has finished (its data written and its blocks tracked), so a drain after it is the final dirty set.</summary>
    public Task FenceAsync()
    {
        lock (_gate)
        {
            if (_tracker.Fence()) return Task.CompletedTask;
            _drained ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _drained.Task;
        }
    }

    /// <summary>Lifts a fence (a relocation aborted before handover): the source owns the disk again.</summary>
    public void Unfence()
    {
        lock (_gate)
        {
            _tracker.Unfence();
            _drained = null;
        }
    }

    public bool TryRead(long offset, Span<byte> destination) => _device.TryRead(offset, destination);
    public ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken ct) => _device.ReadAsync(offset, destination, ct);
    public ValueTask FlushAsync(CancellationToken ct) => _device.FlushAsync(ct);
    public ValueTask CacheAsync(long offset, long length, CancellationToken ct) => _device.CacheAsync(offset, length, ct);
    public ValueTask<IReadOnlyList<Extent>> GetExtentsAsync(long offset, long length, int maxExtents, CancellationToken ct) =>
        _device.GetExtentsAsync(offset, length, maxExtents, ct);

    public ValueTask WriteAsync(long offset, in ReadOnlySequence<byte> data, WriteOptions options, CancellationToken ct)
    {
        Enter();
        ValueTask op;
        try { op = _device.WriteAsync(offset, data, options, ct); }
        catch { Exit(offset, 0); throw; }
        return Complete(op, offset, data.Length);
    }

    public ValueTask TrimAsync(long offset, long length, WriteOptions options, CancellationToken ct) =>
        Guarded(offset, length, () => _device.TrimAsync(offset, length, options, ct));

    public ValueTask WriteZeroesAsync(long offset, long length, WriteOptions options, CancellationToken ct) =>
        Guarded(offset, length, () => _device.WriteZeroesAsync(offset, length, options, ct));

    /// <summary>Admits a write-like operation past the fence and tracks its blocks when it is done.
    /// (WRITE does the same inline: its payload is an `in` sequence a lambda cannot capture.)</summary>
    private ValueTask Guarded(long offset, long length, Func<ValueTask> start)
    {
        Enter();
        ValueTask op;
        try { op = start(); }
        catch { Exit(offset, 0); throw; }
        return Complete(op, offset, length);
    }

    private ValueTask Complete(ValueTask op, long offset, long length)
    {
        if (op.IsCompletedSuccessfully)
        {
            Exit(offset, length);
            return ValueTask.CompletedTask;
        }
        return Later(op, offset, length);

        async ValueTask Later(ValueTask pending, long o, long l)
        {
            try { await pending; }
            finally { Exit(o, l); } // a failed write may still have changed blocks: track it anyway
        }
    }

    private void Enter()
    {
        lock (_gate)
        {
            if (!_tracker.TryEnter()) throw new BlockDeviceException(DeviceError.ReadOnly, "disk has been handed over to another site: writes go there now");
        }
    }

    private void Exit(long offset, long length)
    {
        lock (_gate)
        {
            if (_tracker.Exit(offset, length)) _drained?.TrySetResult();
        }
    }

    private void GuardRead()
    {
        if (!_tracker.GuestMayRead) throw new BlockDeviceException(DeviceError.ReadOnly, "disk has been handed over to another site: it is served there now");
    }

    /// <summary>See <see cref="ForGuests"/>.</summary>
    private sealed class GuestFace(OwnedDisk disk) : IBlockDevice
    {
        public long Size => disk.Size;
        public bool IsReadOnly => false;

        public bool TryRead(long offset, Span<byte> destination)
        {
            disk.GuardRead();
            return disk.TryRead(offset, destination);
        }

        public ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken ct)
        {
            disk.GuardRead();
            return disk.ReadAsync(offset, destination, ct);
        }

        public ValueTask<IReadOnlyList<Extent>> GetExtentsAsync(long offset, long length, int maxExtents, CancellationToken ct)
        {
            disk.GuardRead();
            return disk.GetExtentsAsync(offset, length, maxExtents, ct);
        }

        public ValueTask CacheAsync(long offset, long length, CancellationToken ct) => disk.CacheAsync(offset, length, ct);
        public ValueTask FlushAsync(CancellationToken ct) => disk.FlushAsync(ct);
        public ValueTask WriteAsync(long offset, in ReadOnlySequence<byte> data, WriteOptions options, CancellationToken ct) => disk.WriteAsync(offset, data, options, ct);
        public ValueTask TrimAsync(long offset, long length, WriteOptions options, CancellationToken ct) => disk.TrimAsync(offset, length, options, ct);
        public ValueTask WriteZeroesAsync(long offset, long length, WriteOptions options, CancellationToken ct) => disk.WriteZeroesAsync(offset, length, options, ct);
    }
}
