using Reloc.Actors.Coordinator;
using static Reloc.Actors.Coordinator.RelocationProtocol;
using static Reloc.Actors.History.HistoryProtocol;

namespace Reloc.Actors.History;

/// <summary>The events a history keeps (pure: no actor): at most <paramref name="maxEvents"/>, the oldest dropped first,
/// each event once (by its id: the topic may deliver one twice after a fail-over, a replay must not add it again).</summary>
public sealed class HistoryLog(int maxEvents)
{
    private readonly Queue<HistoryEntry> _entries = new();
    private readonly HashSet<Guid> _ids = [];

    public int Count => _entries.Count;

    public long LastSeq { get; private set; }

    public bool Contains(Guid id) => _ids.Contains(id);

    /// <summary>False when the event is already kept (nothing changes).</summary>
    public bool Add(HistoryEntry entry)
    {
        if (!_ids.Add(entry.Event.Id)) return false;
        _entries.Enqueue(entry);
        LastSeq = Math.Max(LastSeq, entry.Seq);
        while (_entries.Count > maxEvents) _ids.Remove(_entries.Dequeue().Event.Id);
        return true;
    }

    public IReadOnlyList<HistoryEntry> After(long? afterSequence, int limit) =>
        _entries.Where(e => afterSequence is not { } after || e.Seq > after).Take(Math.Max(0, limit)).ToList();

    /// <summary>The newest <paramref name="count"/> entries, oldest first (a dashboard's list on load).</summary>
    public IReadOnlyList<HistoryEntry> Newest(int count) => _entries.Skip(Math.Max(0, _entries.Count - Math.Max(0, count))).ToList();

    public IReadOnlyList<HistoryEntry> All => [.. _entries];

    public IEnumerable<RelocationEvent> OfDisk(string disk) => _entries.Select(e => e.Event).Where(e => e.Disk == disk);

    /// <summary>One row per relocation (by its id) from its events, oldest start first. The start is the first event
    /// seen (Started, or Adopted when this node heard only from a coordinator that took over); the duration is from
    /// that start to the end when both are here, else the coordinator's; mode, trigger and figures come from the
    /// events that carry them; the outcome from the event that ended it (none: in progress).</summary>
    public static IReadOnlyList<RelocationSummary> Summarize(IEnumerable<RelocationEvent> events) =>
        events.GroupBy(e => e.Relocation, StringComparer.Ordinal)
            .Select(g => Summary(g.OrderBy(e => e.Time).ThenBy(e => e.Id).ToList()))
            .OrderBy(s => s.Started).ThenBy(s => s.Relocation, StringComparer.Ordinal)
            .ToList();

    private static RelocationSummary Summary(List<RelocationEvent> events)
    {
        var first = events[0];
        var start = events.FirstOrDefault(e => e.Kind == RelocationEventKind.Started);
        var end = events.LastOrDefault(e => e.Kind is RelocationEventKind.Completed or RelocationEventKind.Cancelled or RelocationEventKind.Superseded);
        var outcome = end?.Kind switch
        {
            RelocationEventKind.Completed => RelocationOutcome.Completed,
            RelocationEventKind.Cancelled => RelocationOutcome.Cancelled,
            RelocationEventKind.Superseded => RelocationOutcome.Superseded,
            _ => RelocationOutcome.InProgress,
        };
        var duration = end is null ? null : start is not null ? end.Time - start.Time : end.Duration;
        return new RelocationSummary(first.Relocation, first.Disk, first.Time, first.FromSite, first.ToSite,
            events.Select(e => e.Mode).FirstOrDefault(m => m is not null),
            events.LastOrDefault(e => e.Kind == RelocationEventKind.Handover)?.Trigger,
            duration, end?.Totals, outcome, end is null ? events[^1].Phase : null);
    }
}
