using Reloc.Storage;

namespace Reloc.Actors.Disk;

/// <summary>How blocks became local.</summary>
public enum LandKind : byte
{
    /// <summary>Their data came from the source over the wire.</summary>
    Fetched = 0,
    /// <summary>The source has nothing there (hole or zeros): nothing crossed the wire.</summary>
    Skipped = 1,
    /// <summary>A guest write covered them whole, so the source's copy no longer matters.</summary>
    Written = 2,
}

/// <summary>Persisted events of a relocating disk.</summary>
public static class DiskEvents
{
    /// <summary>Blocks [First, First+Count) hold their data in the local image, durably: the image was
    /// fdatasynced before this event was written.</summary>
    public sealed record BlocksLanded(long First, long Count, LandKind Kind, long Bytes) : IRelocMessage;

    /// <summary>Every block is local; the source is no longer needed.</summary>
    public sealed record RelocationCompleted : IRelocMessage;

    /// <summary>The source wrote these blocks after they were copied: the local copies are stale.</summary>
    public sealed record BlocksInvalidated(long First, long Count) : IRelocMessage;

    /// <summary>This site owns the disk from <see cref="Epoch"/> on: it alone accepts writes.</summary>
    public sealed record OwnershipTaken(long Epoch) : IRelocMessage;
}

/// <summary>Snapshot of <see cref="DiskState"/>.</summary>
public sealed record DiskSnapshot(byte[] Map, long FetchedBytes, long SkippedBytes, long WrittenBytes, bool Completed,
    long Epoch = 0, bool Owner = true) : IRelocMessage;

/// <summary>
/// A relocating disk's durable state, pure: the block map and progress counters, changed only by
/// <see cref="Apply"/>, so recovery and the live actor go through the same code.
/// </summary>
public sealed class DiskState
{
    private volatile bool _owner;

    /// <param name="owner">Whether the disk accepts writes from the start (a standalone proxy does; a
    /// destination site waits for the handover).</param>
    public DiskState(long diskSize, int blockSize, bool owner = true)
    {
        Map = new BlockMap(diskSize, blockSize);
        _owner = _ownerAtStart = owner;
    }

    private readonly bool _ownerAtStart;

    /// <summary>Back to what the journal starts from (nothing local, the first owner), for a disk actor created again
    /// over the same state: its recovery replays the journal into it, and nothing it did not persist may survive.
    /// The map instance is kept (the data path holds it); reads see missing blocks and wait for the new actor.</summary>
    public void Reset()
    {
        Map.CopyFrom(new BlockMap(Map.DiskSize, Map.BlockSize));
        FetchedBytes = SkippedBytes = WrittenBytes = 0;
        Completed = false;
        Epoch = 0;
        _owner = _ownerAtStart;
        _recovered = false;
    }

    public BlockMap Map { get; }
    public long FetchedBytes { get; private set; }
    public long SkippedBytes { get; private set; }
    public long WrittenBytes { get; private set; }
    public bool Completed { get; private set; }
    public long Epoch { get; private set; }

    /// <summary>Read on the NBD hot path (writes bypass the actor only when this site owns the disk).</summary>
    public bool IsOwner => _owner;

    private volatile bool _recovered;

    /// <summary>The journal has been replayed: until then <see cref="IsOwner"/> may still be about to change.</summary>
    public bool Recovered => _recovered;

    public void MarkRecovered() => _recovered = true;

    public void Apply(object evt)
    {
        switch (evt)
        {
            case DiskEvents.BlocksLanded l:
                Map.Set(l.First, l.Count, BlockState.Local);
                Count(l.Kind, l.Bytes);
                break;
            case DiskEvents.RelocationCompleted:
                Completed = true;
                break;
            case DiskEvents.BlocksInvalidated i:
                Map.Set(i.First, i.Count, BlockState.Remote);
                break;
            case DiskEvents.OwnershipTaken o:
                Epoch = o.Epoch;
                _owner = true;
                break;
            default:
                throw new ArgumentException($"not a disk event: {evt.GetType().Name}");
        }
    }

    /// <summary>Counts landed bytes whose bits are not persisted yet (the live view).</summary>
    public void Count(LandKind kind, long bytes)
    {
        switch (kind)
        {
            case LandKind.Fetched: FetchedBytes += bytes; break;
            case LandKind.Skipped: SkippedBytes += bytes; break;
            case LandKind.Written: WrittenBytes += bytes; break;
        }
    }

    /// <param name="notDurable">Landings whose data is not synced yet: their blocks are saved as not local
    /// (a snapshot must not claim more than the journal may).</param>
    public DiskSnapshot ToSnapshot(IEnumerable<DiskEvents.BlocksLanded>? notDurable = null) =>
        new(Map.ToSnapshot(notDurable is null ? null : new BlockRuns(notDurable.Select(l => (l.First, l.Count)))),
            FetchedBytes, SkippedBytes, WrittenBytes, Completed, Epoch, _owner);

    /// <summary>Restores a snapshot into this state (the map instance is kept: the data path holds it).</summary>
    public void Restore(DiskSnapshot s)
    {
        Map.CopyFrom(BlockMap.FromSnapshot(s.Map));
        FetchedBytes = s.FetchedBytes;
        SkippedBytes = s.SkippedBytes;
        WrittenBytes = s.WrittenBytes;
        Completed = s.Completed;
        Epoch = s.Epoch;
        _owner = s.Owner;
    }
}
