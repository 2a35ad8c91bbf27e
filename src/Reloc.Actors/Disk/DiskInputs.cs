namespace Reloc.Actors.Disk;

/// <summary>What <see cref="DiskCore"/> is told: the data path's requests, the children's reports, the
/// source's invalidations and handover, and the feedback of the decisions the shell carried out.
/// <c>ReplyTo</c> is opaque to the core (an actor, or the model's callback); <c>Now</c> is the shell's clock.</summary>
public abstract record DiskInput
{
    /// <summary>The journal was replayed into the <see cref="DiskState"/> the core was built over.</summary>
    public sealed record Recovered(DateTime Now) : DiskInput;

    /// <summary>Make a byte range local, then answer <see cref="VirtualDiskProtocol.Ready"/>; no ReplyTo: a hint (NBD CACHE).</summary>
    public sealed record EnsureLocal(long Offset, long Length, object? ReplyTo, DateTime Now) : DiskInput;

    public sealed record ReadThrough(long Offset, int Length, object ReplyTo, DateTime Now) : DiskInput;

    public sealed record PrepareWrite(long Offset, long Length, object ReplyTo, DateTime Now) : DiskInput;

    public sealed record WriteDone(IReadOnlyList<(long First, long Count)> Reserved) : DiskInput;

    public sealed record WriteAborted(IReadOnlyList<(long First, long Count)> Reserved) : DiskInput;

    /// <summary>A fetch (or zero work) wrote its blocks into the image.</summary>
    public sealed record Landed(long First, long Count, LandKind Kind, long Bytes) : DiskInput;

    /// <param name="NoSpace">The image could not take the blocks (ENOSPC): the relocation stalls until room frees.</param>
    public sealed record FetchFailed(long First, long Count, string Reason, bool NoSpace = false) : DiskInput;

    /// <summary>The prefetcher has room for a piece of background copy; answered with Work or NoWork.</summary>
    public sealed record RequestWork(long MaxBlocks, object ReplyTo) : DiskInput;

    /// <summary>The answer to <see cref="DiskDecision.ScanSource"/>: whole blocks the source reported zero.</summary>
    public sealed record SourceZero(long Scan, IReadOnlyList<(long First, long Count)> Runs) : DiskInput;

    public sealed record PrefetchStats(int Window, bool Paused) : DiskInput;

    /// <summary>From the source, site to site: blocks its guest wrote at <see cref="Epoch"/>.</summary>
    public sealed record Invalidate(long Epoch, IReadOnlyList<(long First, long Count)> Blocks, object ReplyTo) : DiskInput;

    public sealed record TakeOwnership(long Epoch, IReadOnlyList<(long First, long Count)> FinalDirty, object ReplyTo) : DiskInput;

    /// <summary>A FLUSH: answered once everything landed so far is durable, data then bits.</summary>
    public sealed record Sync(object ReplyTo, DateTime Now) : DiskInput;

    /// <summary>The fdatasync of <see cref="DiskDecision.StartSync"/> succeeded.</summary>
    public sealed record DataSynced(long Id) : DiskInput;

    public sealed record SyncFailed(long Id, string Reason) : DiskInput;

    /// <summary>The events of <see cref="DiskDecision.Persist"/> are in the journal (fed back through the mailbox).</summary>
    public sealed record Persisted(object Token) : DiskInput;

    public sealed record Tick(DateTime Now) : DiskInput;

    public sealed record GetStatus(object ReplyTo) : DiskInput;
}

/// <summary>What <see cref="DiskCore"/> decides; the shell carries them out in order.</summary>
public abstract record DiskDecision
{
    public sealed record Reply(object To, object Message) : DiskDecision;

    /// <summary>Fetch these blocks for a guest (the fetcher's lane); it answers Landed or FetchFailed.</summary>
    public sealed record StartFetch(long First, long Count) : DiskDecision;

    /// <summary>Read a range from the source for <paramref name="ReplyTo"/>, landing nothing: not the owner yet, or a small
    /// miss's own bytes ahead of its block.</summary>
    public sealed record ForwardReadThrough(long Offset, int Length, object ReplyTo) : DiskDecision;

    /// <summary>Ask the source which blocks of <paramref name="Ranges"/> are zero; feed back SourceZero.</summary>
    public sealed record ScanSource(long Scan, IReadOnlyList<(long First, long Count)> Ranges) : DiskDecision;

    /// <summary>fdatasync the image off the actor; feed back DataSynced or SyncFailed with this id.</summary>
    public sealed record StartSync(long Id) : DiskDecision;

    /// <summary>Write the events to the journal, then feed back Persisted(<paramref name="Then"/>) through the
    /// mailbox. <paramref name="HoldCommands"/>: no command is handled meanwhile (PersistAll), otherwise
    /// commands keep flowing (PersistAllAsync).</summary>
    public sealed record Persist(IReadOnlyList<object> Events, object Then, bool HoldCommands) : DiskDecision;

    public sealed record SaveSnapshot(DiskSnapshot Snapshot) : DiskDecision;

    /// <summary>To the event stream: RelocationFinished or WriteHeldForHandover.</summary>
    public sealed record Publish(object Message) : DiskDecision;

    /// <summary>Every block is local and persisted: stop the fetcher, the prefetcher and the tick.</summary>
    public sealed record StopChildren : DiskDecision;

    public sealed record Log(CoreLogLevel Level, string Text, DiskCoreEvent Event = DiskCoreEvent.None) : DiskDecision;
}


/// <summary>Protections a decision took (named for the model's coverage counters).</summary>
public enum DiskCoreEvent
{
    None,
    /// <summary>Fetched blocks could not be written: this site's image is out of space (the copy stalls).</summary>
    NoSpace,
    /// <summary>A block the source had reported as a hole was written there: no longer known zero.</summary>
    HoleWritten,
    /// <summary>A write held for the handover failed at its deadline.</summary>
    HeldWriteExpired,
    /// <summary>A disk that recovered complete told its site again.</summary>
    Republished,
    /// <summary>This site owns the disk: the handover's events are in the journal.</summary>
    Owned,
}
