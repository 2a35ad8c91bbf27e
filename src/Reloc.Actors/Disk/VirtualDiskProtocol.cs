using Akka.Actor;

namespace Reloc.Actors.Disk;

/// <summary>Messages of <see cref="VirtualDiskActor"/> and its children.</summary>
public static class VirtualDiskProtocol
{
    // ---- from the NBD data path (RelocatingDisk) ----

    /// <summary>Make the blocks of a byte range local; answered with <see cref="Ready"/> (read the image), <see cref="Failed"/>,
    /// or, for a small read inside one missing block, <see cref="ThroughData"/>: the range itself, read from the source
    /// ahead of its block, which lands after it.</summary>
    public sealed record EnsureLocal(long Offset, long Length);

    /// <summary>A guest write to a range that is not all local: answered with <see cref="WriteGranted"/>
    /// once partly covered blocks are local and wholly covered ones are reserved for the writer.</summary>
    public sealed record PrepareWrite(long Offset, long Length);

    /// <summary>Blocks reserved for a write; give them back with <see cref="WriteDone"/> (data written) or <see cref="WriteAborted"/>.</summary>
    public sealed record WriteGranted(long First, long Count, IReadOnlyList<(long First, long Count)> Reserved);

    public sealed record WriteDone(IReadOnlyList<(long First, long Count)> Reserved, int BlockSize);

    public sealed record WriteAborted(IReadOnlyList<(long First, long Count)> Reserved);

    /// <summary>A read before this site owns the disk: served from the source (the owner) as it is now,
    /// since a local copy may be older than the source's last write not yet invalidated here.
    /// Answered with <see cref="ThroughData"/>, <see cref="Failed"/>, or <see cref="Ready"/> (owner meanwhile: read locally).</summary>
    public sealed record ReadThrough(long Offset, int Length);

    public sealed record ThroughData(byte[] Data);

    /// <summary>Make everything landed or written so far durable (data, then bits); answered with <see cref="Ready"/>.</summary>
    public sealed record Sync;

    /// <summary>Hint (NBD CACHE): fetch this range soon.</summary>
    public sealed record Warm(long Offset, long Length);

    public sealed record Ready
    {
        public static readonly Ready Instance = new();
    }

    public sealed record Failed(string Reason);

    // ---- control ----

    public sealed record GetStatus;

    public sealed record Status(
        string Disk, string State, long LocalBytes, long TotalBytes, long FetchedBytes, long SkippedBytes,
        long WrittenBytes, long OnDemandFetches, long RateBps, int PrefetchWindow, bool PrefetchPaused, long SourceZeroBytes = 0, string? Stalled = null);

    public sealed record SetRate(long BytesPerSecond);

    public sealed record PausePrefetch;

    public sealed record ResumePrefetch;

    /// <summary>From the site: the arrival is over (completed: the image holds everything and the site's registry
    /// owns the disk; or dropped): delete this actor's journal and snapshots, then stop if <see cref="ThenStop"/>.</summary>
    public sealed record DeleteJournal(bool ThenStop);

    /// <summary>Published to the event stream when the disk's copy stalls: <see cref="Reason"/> (its image is out of space).</summary>
    public sealed record ArrivalStalled(string Disk, string Reason);

    /// <summary>Published to the event stream when the disk no longer needs its source.</summary>
    public sealed record RelocationFinished(string Disk);

    // ---- handover between sites ----

    /// <summary>From the source, site to site: blocks the guest wrote there at <see cref="Epoch"/>
    /// after this site may have copied them. Answered with <see cref="Invalidated"/> once durable.</summary>
    public sealed record Invalidate(long Epoch, IReadOnlyList<(long First, long Count)> Blocks);

    public sealed record Invalidated(long Epoch);

    /// <summary>Handover: the source is fenced and flushed; <see cref="FinalDirty"/> is what it wrote since
    /// the last <see cref="Invalidate"/>. Answered with <see cref="OwnershipConfirmed"/> once durable.</summary>
    public sealed record TakeOwnership(long Epoch, IReadOnlyList<(long First, long Count)> FinalDirty);

    public sealed record OwnershipConfirmed(long Epoch);

    /// <summary>A message carried an epoch older than the disk's: refused, nothing changed.</summary>
    public sealed record StaleEpoch(long Current, long Received);

    /// <summary>Published when a guest write arrives before this site owns the disk: a handover trigger.</summary>
    public sealed record WriteHeldForHandover(string Disk);

    // ---- between the disk and its children ----

    internal sealed record Fetch(long First, long Count);

    internal sealed record Landed(long First, long Count, LandKind Kind, long Bytes);

    /// <param name="NoSpace">Writing the image failed for want of room (ENOSPC): nothing of it landed.</param>
    internal sealed record FetchFailed(long First, long Count, string Reason, bool NoSpace = false)
    {
        public static FetchFailed Of(long first, long count, Exception ex) =>
            new(first, count, ex.Message, ex is Reloc.Storage.BlockDeviceException { Error: Reloc.Storage.DeviceError.NoSpace });
    }

    internal sealed record RequestWork(long MaxBlocks);

    /// <summary>Blocks claimed for background copy; Zero: the source has only zeros there, punch, do not read.</summary>
    internal sealed record Work(long First, long Count, bool Zero);

    internal sealed record NoWork
    {
        public static readonly NoWork Instance = new();
    }

    /// <summary>Asks the prefetcher which blocks of <see cref="Ranges"/> are holes or zeros at the source (BLOCK_STATUS).</summary>
    internal sealed record ScanZeros(long Scan, IReadOnlyList<(long First, long Count)> Ranges);

    /// <summary>The answer to <see cref="ScanZeros"/>: whole blocks the source reported as zero, in increasing order.</summary>
    internal sealed record SourceZero(long Scan, IReadOnlyList<(long First, long Count)> Runs);

    internal sealed record PrefetchStats(int Window, bool Paused);

    /// <summary>To the prefetcher: a guest read waits on the source now (its window keeps a shorter queue meanwhile).</summary>
    internal sealed record GuestMiss
    {
        public static readonly GuestMiss Instance = new();
    }

    internal sealed record Tick
    {
        public static readonly Tick Instance = new();
    }
}
