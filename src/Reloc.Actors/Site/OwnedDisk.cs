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
    private HashSet<long>? _dirty;   // blocks written since the last drain; null while not tracking
    private int _blockShift;
    private bool _allDirty;          // every block counts as written (tracking resumed after a restart)
    private bool _fenced;
    private int _writesInFlight;
    private TaskCompletionSource? _drained;

    public RawImage Image => image;
    public long Size => _device.Size;
    public bool IsReadOnly => false; // fencing is temporary: advertising read-only would make clients give up
    public bool IsFenced { get { lock (_gate) return _fenced; } }

    /// <summary>Start recording written blocks (of <paramref name="blockSize"/> bytes) for a relocation.</summary>
    public void StartTracking(int blockSize)
    {
        lock (_gate)
        {
            _blockShift = int.Log2(blockSize);
            _dirty ??= [];
        }
    }

    /// <summary>Counts every block as written once (no per-block set: a disk may have millions).</summary>
    public void MarkAllDirty()
    {
        lock (_gate) _allDirty = _dirty is not null;
    }

    /// <summary>The written blocks since the last drain, as sorted runs; tracking goes on.</summary>
    public List<(long First, long Count)> DrainDirty()
    {
        long[] blocks;
        lock (_gate)
        {
            if (_allDirty)
            {
                _allDirty = false;
                _dirty?.Clear();
                return [(0, (image.Size + (1L << _blockShift) - 1) >> _blockShift)];
            }
            if (_dirty is null || _dirty.Count == 0) return [];
            blocks = _dirty.ToArray();
            _dirty.Clear();
        }
        Array.Sort(blocks); // in order, each block extends the last run or appends one
        return new BlockRuns(blocks.Select(b => (b, 1L))).Runs.ToList();
    }

    public void StopTracking()
    {
        lock (_gate)
        {
            _dirty = null;
            _allDirty = false;
        }
    }

    /// <summary>From now on writes fail with EPERM; completes when every write admitted before the fence
    /// has finished (its data written and its blocks tracked), so a drain after it is the final dirty set.</summary>
    public Task FenceAsync()
    {
        lock (_gate)
        {
            _fenced = true;
            if (_writesInFlight == 0) return Task.CompletedTask;
            _drained ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _drained.Task;
        }
    }

    /// <summary>Lifts a fence (a relocation aborted before handover): the source owns the disk again.</summary>
    public void Unfence()
    {
        lock (_gate)
        {
            _fenced = false;
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
            if (_fenced) throw new BlockDeviceException(DeviceError.ReadOnly, "disk has been handed over to another site: writes go there now");
            _writesInFlight++;
        }
    }

    private void Exit(long offset, long length)
    {
        lock (_gate)
        {
            if (_dirty is not null && length > 0)
                for (long b = offset >> _blockShift; b <= (offset + length - 1) >> _blockShift; b++) _dirty.Add(b);
            if (--_writesInFlight == 0 && _fenced) _drained?.TrySetResult();
        }
    }
}
