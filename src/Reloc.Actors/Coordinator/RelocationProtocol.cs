using RelocationMode = Reloc.Management.RelocationMode;

namespace Reloc.Actors.Coordinator;

/// <summary>Messages of a relocation between sites: operator requests to the
/// <see cref="MigrationCoordinator"/>, and the flow between it and the sites. All cross nodes; every
/// one that changes ownership carries the epoch it belongs to, and a site refuses stale ones.</summary>
public static class RelocationProtocol
{
    // ---- operator → coordinator ----
    /// <param name="Prefetch">false: no background copy at all, blocks move only when read (pure post-copy on demand).</param>
    public sealed record Relocate(string Disk, string ToSite, bool Hybrid = false, long RateBytesPerSecond = 0, bool Prefetch = true) : IRelocMessage;
    public sealed record RequestHandover(string Disk) : IRelocMessage;
    public sealed record GetRelocations : IRelocMessage;
    /// <summary>Abort before handover: nothing is lost, the source stays the owner. Refused after handover.</summary>
    public sealed record CancelRelocation(string Disk) : IRelocMessage;
    /// <summary>Change the background copy's rate cap (0 = no cap) of a relocation under way.</summary>
    public sealed record SetRelocationRate(string Disk, long RateBytesPerSecond) : IRelocMessage;
    /// <summary>Change a relocation's weight (1..<see cref="LinkShares.MaxWeight"/>, default 1): its part of its link's
    /// budget against the others on that link (<see cref="LinkShares"/>). Answered with <see cref="RelocationInfo"/>.</summary>
    public sealed record SetRelocationWeight(string Disk, int Weight) : IRelocMessage;
    /// <summary>Answered with <see cref="RelocationStatus"/> (progress from the destination site) or <see cref="RelocationRefused"/>.</summary>
    public sealed record GetRelocationStatus(string Disk) : IRelocMessage;

    // ---- admission queue: operator → coordinator ----
    /// <summary>Relocate every disk <see cref="FromSite"/> owns now to <see cref="ToSite"/>, each through the admission
    /// queue (reloc.coordinator.max-concurrent-relocations-per-site). Answered with <see cref="DrainAccepted"/> once every
    /// queued one is durable at its source, or <see cref="RelocationRefused"/>.</summary>
    public sealed record DrainSite(string FromSite, string ToSite, bool Hybrid = false, long RateBytesPerSecond = 0, bool Prefetch = true) : IRelocMessage;
    /// <summary>The disks a drain relocates (started, or queued with their place), and the ones it left out with why.</summary>
    public sealed record DrainAccepted(string FromSite, string ToSite, IReadOnlyList<RelocationInfo> Relocations, IReadOnlyList<DrainSkipped> Skipped) : IRelocMessage;
    public sealed record DrainSkipped(string Disk, string Reason);
    /// <summary>The answer to a <see cref="Relocate"/> over the limit: it waits in the queue, durable at its source, at <see cref="Position"/> (1: next).</summary>
    public sealed record RelocationQueued(string Disk, string FromSite, string ToSite, long Epoch, int Position) : IRelocMessage;

    // ---- link budgets: operator → coordinator ----
    /// <summary>Set the budget of the link between two sites (each direction; 0 = none) at run time, over reloc.links.
    /// Stored at both sites of the pair (<see cref="RememberLinkBudget"/>) and applied once at least one of them has it
    /// durably, so a coordinator that takes over adopts it; answered then with <see cref="LinkInfo"/>, or with
    /// <see cref="RelocationRefused"/> (nothing changed) when neither site stored it.</summary>
    public sealed record SetLinkBudget(string SiteA, string SiteB, long BandwidthBytesPerSecond) : IRelocMessage;
    /// <summary>Answered with <see cref="LinkList"/>: every pair with a budget, and every pair with relocations on it.</summary>
    public sealed record GetLinks : IRelocMessage;
    public sealed record LinkList(IReadOnlyList<LinkInfo> Links) : IRelocMessage;
    /// <summary>A pair's budget per direction (0: none), whether it was set at run time, and the rate of each relocation on it.</summary>
    public sealed record LinkInfo(string SiteA, string SiteB, long BandwidthBytesPerSecond, bool SetAtRunTime, IReadOnlyList<LinkShare> Shares) : IRelocMessage;

    // ---- link budgets: coordinator → the two sites of a pair ----
    /// <summary>Keep this budget set at run time for its pair (persisted; a site keeps the newest per pair,
    /// <see cref="LinkMemory.Supersedes"/>). Answered, once durable, with <see cref="LinkBudgetHeld"/>, or with a refusal.</summary>
    public sealed record RememberLinkBudget(RememberedBudget Budget) : IRelocMessage;
    /// <summary>What <paramref name="Site"/> durably holds for the pair now (the one asked, or a newer one).</summary>
    public sealed record LinkBudgetHeld(string Site, RememberedBudget Budget) : IRelocMessage;
    /// <summary>A relocation on a link: its weight, the operator's cap (0: none) and the rate its destination was given (0: unlimited).</summary>
    public sealed record LinkShare(string Disk, string FromSite, string ToSite, int Weight, long CapBytesPerSecond, long RateBytesPerSecond);

    public sealed record RelocationAccepted(string Disk, string FromSite, string ToSite, long Epoch) : IRelocMessage;
    public sealed record RelocationRefused(string Reason) : IRelocMessage;
    /// <summary>A relocation under way, or waiting in the admission queue (<see cref="Phase"/> <see cref="QueuedPhase"/>,
    /// <see cref="Position"/> its place in line from 1; 0 for one under way).</summary>
    public sealed record RelocationInfo(string Disk, string FromSite, string ToSite, long Epoch, string Phase, int Position = 0) : IRelocMessage;

    /// <summary>The phase a waiting relocation shows (not a <see cref="RelocationPhase"/>: nothing runs yet).</summary>
    public const string QueuedPhase = "queued";
    public sealed record RelocationList(IReadOnlyList<RelocationInfo> Relocations) : IRelocMessage;
    public sealed record RelocationCancelled(string Disk) : IRelocMessage;
    public sealed record RelocationStatus(RelocationInfo Info, DiskProgress Progress) : IRelocMessage;

    /// <summary>The destination's view of a relocating disk (bytes; rate in bytes per second).</summary>
    public sealed record DiskProgress(string Disk, string State, long LocalBytes, long TotalBytes, long FetchedBytes, long SkippedBytes,
        long WrittenBytes, long OnDemandFetches, long RateBps, int PrefetchWindow, bool PrefetchPaused) : IRelocMessage;

    // ---- coordinator → every node's history (DistributedPubSub topic RelocationEvents.Topic) ----
    /// <summary>A step of a relocation's lifecycle, as the coordinator saw it. <see cref="Id"/> is a version-7 GUID
    /// made from <see cref="Time"/>: unique whichever node runs the singleton (it moves on fail-over, so no counter
    /// of its own would stay unique), and events of one relocation order by <see cref="Time"/> (the coordinator's
    /// clock; the history also numbers events in the order it received them). <see cref="Epoch"/>: the source's
    /// epoch at the start (the destination owns Epoch + 1 after the handover). <see cref="Mode"/> null: not known
    /// (a coordinator that took over does not learn it from the sites). <see cref="Phase"/> null: the relocation is
    /// over. <see cref="Duration"/>: with Completed and Cancelled, since its start as this coordinator knew it.
    /// <see cref="Totals"/>: with Completed, the destination's last figures (null if it did not report them).</summary>
    public sealed record RelocationEvent(Guid Id, DateTime Time, string Relocation, string Disk, string FromSite, string ToSite,
        RelocationMode? Mode, long Epoch, RelocationEventKind Kind, RelocationPhase? Phase, HandoverTrigger? Trigger = null,
        TimeSpan? Duration = null, RelocationTotals? Totals = null, string? Detail = null) : IRelocMessage;

    /// <summary>A completed relocation's figures from its destination (<see cref="DiskProgress"/>): bytes fetched from
    /// the source, skipped (holes: not sent), and the guest's on-demand fetches (misses).</summary>
    public sealed record RelocationTotals(long TotalBytes, long FetchedBytes, long SkippedBytes, long Misses);

    /// <summary>The unit of the block runs a source reports (invalidations, final dirty set), whatever block
    /// size either site's relocation engine uses: the destination converts to its own.</summary>
    public const int TrackingBlockSize = 65536;

    // ---- admission queue: coordinator ↔ source site ----
    /// <summary>To the disk's owner: remember (persisted) that relocation <see cref="Relocation"/> of the disk to
    /// <see cref="ToSite"/> waits in the admission queue at <see cref="Ticket"/> (the queue's order), so a coordinator that
    /// takes over finds it. Nothing else changes: the disk is served as before. Answered with <see cref="QueuedAt"/> or
    /// <see cref="QueueRefused"/>; StartOutgoing of that relocation takes the disk out of the queue.</summary>
    public sealed record QueueRelocation(string Disk, long Epoch, string ToSite, long Ticket, bool Hybrid, long RateBytesPerSecond, bool Prefetch, string Relocation) : IRelocMessage;
    public sealed record QueuedAt(string Disk, long Ticket, string Relocation) : IRelocMessage;
    public sealed record QueueRefused(string Disk, string Relocation, string Reason) : IRelocMessage;
    /// <summary>To the disk's owner: the queued relocation was cancelled (persisted; the attempt is never started there).</summary>
    public sealed record Unqueue(string Disk, string Relocation) : IRelocMessage;
    public sealed record Unqueued(string Disk, string Relocation) : IRelocMessage;

    // ---- coordinator ↔ sites ----
    // Every step and every answer names its relocation (a fresh id per attempt, persisted at both sites):
    // a step or answer from an earlier attempt (cancelled, or sent by a coordinator since replaced) is
    // refused or ignored, even at the same epoch.
    /// <summary>To the source, first: track the guest's writes (persisted) and stream them as invalidations to <see cref="ToSite"/>.</summary>
    public sealed record StartOutgoing(string Disk, string ToSite, long Epoch, int BlockSize, string Relocation) : IRelocMessage;
    public sealed record OutgoingStarted(string Disk, long Epoch, int SourceClients, string Relocation) : IRelocMessage;

    /// <summary>To the destination, second: serve the disk at once, fetching from the source; ownership stays at the source (Epoch).</summary>
    public sealed record PrepareIncoming(string Disk, long Size, string FromSite, string SourceUri, long Epoch, bool Hybrid, long RateBytesPerSecond, bool Prefetch, string Relocation) : IRelocMessage;
    public sealed record IncomingPrepared(string Disk, long Epoch, string Relocation) : IRelocMessage;

    /// <summary>Cancel, first at the source (refused once fenced), then at the destination.</summary>
    public sealed record StopOutgoing(string Disk, long Epoch, string Relocation) : IRelocMessage;
    public sealed record OutgoingStopped(string Disk, long Epoch, string Relocation) : IRelocMessage;
    public sealed record DropIncoming(string Disk, long Epoch, string Relocation) : IRelocMessage;
    public sealed record IncomingDropped(string Disk, long Epoch, string Relocation) : IRelocMessage;

    /// <summary>Source → destination site: blocks written at the source at Epoch (Seq orders and acknowledges them).</summary>
    public sealed record InvalidateAt(string Disk, long Epoch, long Seq, IReadOnlyList<(long First, long Count)> Blocks, string Relocation) : IRelocMessage;
    public sealed record InvalidatedAt(string Disk, long Epoch, long Seq, string Relocation) : IRelocMessage;

    /// <summary>To the source: refuse writes from now on (NewEpoch belongs to the destination), flush, report the final dirty set.</summary>
    public sealed record Fence(string Disk, long NewEpoch, string Relocation) : IRelocMessage;
    public sealed record Fenced(string Disk, long NewEpoch, IReadOnlyList<(long First, long Count)> FinalDirty, string Relocation) : IRelocMessage;

    /// <summary>To the destination: apply the final dirty set and own the disk at NewEpoch.</summary>
    public sealed record TakeOwnershipAt(string Disk, long NewEpoch, IReadOnlyList<(long First, long Count)> FinalDirty, string Relocation) : IRelocMessage;
    public sealed record OwnershipMoved(string Disk, long NewEpoch, string Relocation) : IRelocMessage;

    /// <summary>From the destination: every block is local.</summary>
    public sealed record RelocationDone(string Disk, long Epoch, string Relocation) : IRelocMessage;

    /// <summary>To the source: the disk lives elsewhere now (Epoch); drop it.</summary>
    public sealed record Release(string Disk, long Epoch, string Relocation) : IRelocMessage;
    public sealed record Released(string Disk, long Epoch, string Relocation) : IRelocMessage;

    /// <summary>From a site: a handover trigger fired (a write arrived at the destination).</summary>
    public sealed record HandoverRequested(string Disk, string Relocation) : IRelocMessage;

    /// <summary>From the destination: the relocation's copy cannot go on there (<see cref="Reason"/>: its image is out of
    /// space). Before the handover the coordinator cancels it (the source keeps the disk); after it, it waits for room.</summary>
    public sealed record RelocationStalled(string Disk, string Relocation, string Site, string Reason) : IRelocMessage;

    /// <summary>From a site: the number of guest connections to a relocating disk changed there.</summary>
    public sealed record GuestClients(string Disk, string Site, int Count) : IRelocMessage;

    /// <summary>Coordinator → destination site: the destination's progress (answered with <see cref="DiskProgress"/>).</summary>
    public sealed record GetProgress(string Disk) : IRelocMessage;
    public sealed record SetRate(string Disk, long RateBytesPerSecond) : IRelocMessage;
}
