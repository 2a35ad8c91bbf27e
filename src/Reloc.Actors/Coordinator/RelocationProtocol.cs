namespace Reloc.Actors.Coordinator;

/// <summary>Messages of a relocation between sites: operator requests to the
/// <see cref="MigrationCoordinator"/>, and the flow between it and the sites. All cross nodes; every
/// one that changes ownership carries the epoch it belongs to, and a site refuses stale ones.</summary>
public static class RelocationProtocol
{
    // ---- operator → coordinator ----
    public sealed record Relocate(string Disk, string ToSite, bool Hybrid = false, long RateBytesPerSecond = 0) : IRelocMessage;
    public sealed record RequestHandover(string Disk) : IRelocMessage;
    public sealed record GetRelocations : IRelocMessage;

    public sealed record RelocationAccepted(string Disk, string FromSite, string ToSite, long Epoch) : IRelocMessage;
    public sealed record RelocationRefused(string Reason) : IRelocMessage;
    public sealed record RelocationInfo(string Disk, string FromSite, string ToSite, long Epoch, string Phase) : IRelocMessage;
    public sealed record RelocationList(IReadOnlyList<RelocationInfo> Relocations) : IRelocMessage;

    // ---- coordinator ↔ sites ----
    /// <summary>To the destination: serve the disk at once, fetching from the source; ownership stays at the source (Epoch).</summary>
    public sealed record PrepareIncoming(string Disk, long Size, string FromSite, string SourceUri, long Epoch, bool Hybrid, long RateBytesPerSecond) : IRelocMessage;
    public sealed record IncomingPrepared(string Disk, long Epoch) : IRelocMessage;

    /// <summary>To the source: track writes and stream invalidations to the destination site at <see cref="DestinationPath"/>.</summary>
    public sealed record StartOutgoing(string Disk, string DestinationPath, long Epoch, int BlockSize) : IRelocMessage;
    public sealed record OutgoingStarted(string Disk, long Epoch, int SourceClients) : IRelocMessage;

    /// <summary>Source → destination site: blocks written at the source at Epoch (Seq orders and acknowledges them).</summary>
    public sealed record InvalidateAt(string Disk, long Epoch, long Seq, IReadOnlyList<(long First, long Count)> Blocks) : IRelocMessage;
    public sealed record InvalidatedAt(string Disk, long Epoch, long Seq) : IRelocMessage;

    /// <summary>To the source: refuse writes from now on (NewEpoch belongs to the destination), flush, report the final dirty set.</summary>
    public sealed record Fence(string Disk, long NewEpoch) : IRelocMessage;
    public sealed record Fenced(string Disk, long NewEpoch, IReadOnlyList<(long First, long Count)> FinalDirty) : IRelocMessage;

    /// <summary>To the destination: apply the final dirty set and own the disk at NewEpoch.</summary>
    public sealed record TakeOwnershipAt(string Disk, long NewEpoch, IReadOnlyList<(long First, long Count)> FinalDirty) : IRelocMessage;
    public sealed record OwnershipMoved(string Disk, long NewEpoch) : IRelocMessage;

    /// <summary>From the destination: every block is local.</summary>
    public sealed record RelocationDone(string Disk, long Epoch) : IRelocMessage;

    /// <summary>To the source: the disk lives elsewhere now (Epoch); drop it.</summary>
    public sealed record Release(string Disk, long Epoch) : IRelocMessage;
    public sealed record Released(string Disk, long Epoch) : IRelocMessage;

    /// <summary>From a site: a handover trigger fired (a write arrived at the destination, or the source went idle).</summary>
    public sealed record HandoverRequested(string Disk) : IRelocMessage;
}
