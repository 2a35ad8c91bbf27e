using Reloc.Storage;

namespace Reloc.Actors.Site;

/// <summary>
/// The rules of the owned-disk layer, without threads or I/O: which blocks the guest wrote since the destination
/// last heard (tracking), and the fence (after the handover no write is admitted; the fence is complete once
/// every write admitted before it is done and tracked, so a drain after it is the final dirty set).
/// <see cref="OwnedDisk"/> runs it under its lock on the NBD data path; the protocol model runs it as it is.
/// </summary>
public sealed class WriteTracker(long size)
{
    private HashSet<long>? _dirty;   // blocks written since the last drain; null while not tracking
    private int _blockShift;
    private bool _allDirty;          // every block counts as written (tracking resumed after a restart)
    private int _writesInFlight;
    private volatile bool _fenced;   // read without OwnedDisk's lock by guests' reads (GuestMayRead)

    public bool IsFenced => _fenced;
    public bool IsTracking => _dirty is not null;

    /// <summary>The guest's reads are served only while not fenced: once fenced, another site owns the disk and may
    /// have acknowledged writes this copy never sees. (Other sites' fetchers read the peer export, not this rule.)
    /// Safe to read without a lock: a read racing the fence may go either way, and the new owner accepts no write
    /// before the fence completed and ownership moved.</summary>
    public bool GuestMayRead => !IsFenced;

    /// <summary>Start recording written blocks of <paramref name="blockSize"/> bytes; <paramref name="everything"/>:
    /// count every block as written once (no per-block set: a disk may have millions).</summary>
    public void StartTracking(int blockSize, bool everything)
    {
        _blockShift = int.Log2(blockSize);
        _dirty ??= [];
        if (everything) _allDirty = true;
    }

    public void StopTracking()
    {
        _dirty = null;
        _allDirty = false;
    }

    /// <summary>The written blocks since the last drain, as sorted runs; tracking goes on.</summary>
    public List<(long First, long Count)> DrainDirty()
    {
        if (_allDirty)
        {
            _allDirty = false;
            _dirty?.Clear();
            return [(0, (size + (1L << _blockShift) - 1) >> _blockShift)];
        }
        if (_dirty is null || _dirty.Count == 0) return [];
        var blocks = _dirty.ToArray();
        _dirty.Clear();
        Array.Sort(blocks); // in order, each block extends the last run or appends one
        return new BlockRuns(blocks.Select(b => (b, 1L))).Runs.ToList();
    }

    /// <summary>Admits a write-like request: false once fenced (EPERM).</summary>
    public bool TryEnter()
    {
        if (IsFenced) return false;
        _writesInFlight++;
        return true;
    }

    /// <summary>A write admitted by <see cref="TryEnter"/> is done (failed writes too: they may have changed blocks).
    /// True when it was the last one a fence waited for.</summary>
    public bool Exit(long offset, long length)
    {
        if (_dirty is not null && length > 0)
            for (long b = offset >> _blockShift; b <= (offset + length - 1) >> _blockShift; b++) _dirty.Add(b);
        return --_writesInFlight == 0 && IsFenced;
    }

    /// <summary>Refuses writes from now on; true when the fence is complete at once (nothing in flight).</summary>
    public bool Fence()
    {
        _fenced = true;
        return _writesInFlight == 0;
    }

    /// <summary>Lifts a fence (its flush failed): the source owns the disk again.</summary>
    public void Unfence() => _fenced = false;

    public string Describe() =>
        $"{(IsFenced ? "fenced " : "")}{(_writesInFlight > 0 ? $"in flight {_writesInFlight} " : "")}{(IsTracking ? $"tracking{(_allDirty ? " all" : "")} {{{string.Join(",", _dirty!.Order())}}} " : "")}";
}
