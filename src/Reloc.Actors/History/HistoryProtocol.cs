using RelocationMode = Reloc.Management.RelocationMode;
using Akka.Actor;
using Reloc.Actors.Coordinator;
using static Reloc.Actors.Coordinator.RelocationProtocol;

namespace Reloc.Actors.History;

/// <summary>
/// Messages of a node's <see cref="RelocationHistory"/>. Its queries and subscriptions are local to the node (the
/// HTTP layer asks its own node's history, which holds every event the cluster published while it ran), so they
/// have no serializer entry; what crosses nodes is <see cref="RelocationEvent"/>, and what is persisted is that event
/// and <see cref="HistorySnapshot"/>, both in <see cref="Serialization.RelocSerializer"/>.
/// </summary>
public static class HistoryProtocol
{
    /// <summary>An event as this node's history holds it: <paramref name="Seq"/> numbers events in the order this
    /// node received them (strictly increasing across restarts: the history's journal sequence number), so a
    /// reader can ask for what came after the last one it saw (an SSE Last-Event-ID).</summary>
    public sealed record HistoryEntry(long Seq, RelocationEvent Event);

    /// <summary>Answered with <see cref="HistoryEvents"/>: up to <paramref name="Limit"/> events with Seq greater than
    /// <paramref name="AfterSequence"/> (null: from the oldest kept), oldest first.</summary>
    /// <param name="Newest">Without <paramref name="AfterSequence"/>: the newest <paramref name="Limit"/> events instead of the oldest (still oldest first).</param>
    public sealed record GetEvents(long? AfterSequence = null, int Limit = 100, bool Newest = false);

    public sealed record HistoryEvents(IReadOnlyList<HistoryEntry> Events);

    /// <summary>Answered with <see cref="DiskHistory"/>: one row per relocation of the disk, oldest first.</summary>
    public sealed record GetDiskHistory(string Disk);

    public sealed record DiskHistory(string Disk, IReadOnlyList<RelocationSummary> Relocations);

    /// <summary>One relocation of a disk: when it started, between which sites, how, what triggered its handover, and
    /// for a completed one how long it took and what it moved. <paramref name="Phase"/>: the last phase seen while under way.</summary>
    public sealed record RelocationSummary(string Relocation, string Disk, DateTime Started, string FromSite, string ToSite, RelocationMode? Mode,
        HandoverTrigger? Trigger, TimeSpan? Duration, RelocationTotals? Totals, RelocationOutcome Outcome, RelocationPhase? Phase);

    /// <summary>Follow the history: <paramref name="Subscriber"/> gets one <see cref="HistoryEvents"/> at once (the events
    /// after <paramref name="AfterSequence"/>, up to the most kept; none when null: only new ones), then every new
    /// <see cref="HistoryEntry"/>, with no gap between the two. Watched: a subscriber that stops is forgotten.</summary>
    public sealed record Subscribe(IActorRef Subscriber, long? AfterSequence = null);

    public sealed record Unsubscribe(IActorRef Subscriber);

    /// <summary>An audit record as this node's history holds it (<paramref name="Seq"/>: its journal sequence number).</summary>
    public sealed record AuditEntry(long Seq, AuditRecord Record);

    /// <summary>Answered with <see cref="AuditRecords"/>: the newest <paramref name="Limit"/> audit records, oldest first.</summary>
    public sealed record GetAudit(int Limit = 100);

    public sealed record AuditRecords(IReadOnlyList<AuditEntry> Records);

    /// <summary>Persisted: the events and audit records kept when it was taken (the journal before it is deleted).</summary>
    public sealed record HistorySnapshot(IReadOnlyList<HistoryEntry> Entries, IReadOnlyList<AuditEntry>? Audit = null) : IRelocMessage;
}
