using RelocationMode = Reloc.Management.RelocationMode;
using Reloc.Actors.Coordinator;
using Reloc.Actors.History;
using Xunit;
using static Reloc.Actors.Coordinator.RelocationEventKind;
using static Reloc.Actors.Coordinator.RelocationPhase;
using static Reloc.Actors.Coordinator.RelocationProtocol;
using static Reloc.Actors.History.HistoryProtocol;

namespace Reloc.Actors.Tests;

/// <summary>The history's pure parts: events to one row per relocation (a table), and the bounded, deduplicated log.</summary>
public sealed class HistoryLogTests
{
    private static DateTime T(double seconds) => new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc).AddSeconds(seconds);

    private static RelocationEvent E(string relocation, double t, RelocationEventKind kind, RelocationPhase? phase = null, RelocationMode? mode = RelocationMode.Hybrid,
        string from = "a", string to = "b", HandoverTrigger? trigger = null, double? duration = null, RelocationTotals? totals = null) =>
        new(Guid.CreateVersion7(new DateTimeOffset(T(t))), T(t), relocation, "vm", from, to, mode, 1, kind, phase, trigger,
            duration is { } d ? TimeSpan.FromSeconds(d) : null, totals, null);

    private static readonly RelocationTotals Moved = new(8 << 20, 6 << 20, 2 << 20, 5);

    /// <summary>Events (in any order) → rows as "relocation from→to mode trigger duration bytes outcome phase".</summary>
    public static TheoryData<string, RelocationEvent[], string[]> Rows => new()
    {
        { "nothing", [], [] },
        { "a completed relocation: its trigger, its time from this history's start, the destination's figures",
            [E("r1", 0, Started, Starting), E("r1", 1, PhaseChanged, Serving), E("r1", 2, Handover, Fencing, trigger: HandoverTrigger.SourceIdle),
                E("r1", 9, Completed, duration: 8.5, totals: Moved)],
            ["r1 a→b hybrid SourceIdle 9s 6291456/2097152/5 Completed -"] },
        { "in progress: its last phase", [E("r1", 0, Started, Starting), E("r1", 1, PhaseChanged, Serving)], ["r1 a→b hybrid - - - InProgress serving"] },
        { "cancelled", [E("r1", 0, Started, Starting), E("r1", 1, PhaseChanged, Cancelling), E("r1", 3, Cancelled, duration: 3)],
            ["r1 a→b hybrid - 3s - Cancelled -"] },
        { "events out of order are put in order", [E("r1", 9, Completed, duration: 9, totals: Moved), E("r1", 0, Started, Starting)],
            ["r1 a→b hybrid - 9s 6291456/2097152/5 Completed -"] },
        { "adopted only (this node missed the start): the mode unknown, the coordinator's duration",
            [E("r1", 5, Adopted, Postcopy, mode: null), E("r1", 9, Completed, duration: 4, totals: Moved, mode: null)],
            ["r1 a→b - - 4s 6291456/2097152/5 Completed -"] },
        { "two relocations of the disk, oldest first",
            [E("r2", 20, Started, Starting, from: "b", to: "c", mode: RelocationMode.Postcopy), E("r1", 0, Started, Starting), E("r1", 5, Cancelled, duration: 5)],
            ["r1 a→b hybrid - 5s - Cancelled -", "r2 b→c postcopy - - - InProgress starting"] },
        { "superseded by another attempt", [E("r1", 0, Started, Starting), E("r1", 4, Superseded, duration: 4), E("r2", 4, Adopted, Serving, mode: null)],
            ["r1 a→b hybrid - 4s - Superseded -", "r2 a→b - - - - InProgress serving"] },
        { "stalled is no end", [E("r1", 0, Started, Starting), E("r1", 4, Stalled, Serving)], ["r1 a→b hybrid - - - InProgress serving"] },
    };

    [Theory]
    [MemberData(nameof(Rows))]
    public void Events_make_one_row_per_relocation(string what, RelocationEvent[] events, string[] expected)
    {
        var rows = HistoryLog.Summarize(events).Select(Show).ToList();
        Assert.True(expected.SequenceEqual(rows), $"{what}: expected [{string.Join(" | ", expected)}], got [{string.Join(" | ", rows)}]");
    }

    private static string Show(RelocationSummary s) =>
        $"{s.Relocation} {s.FromSite}→{s.ToSite} {s.Mode?.Name() ?? "-"} {s.Trigger?.ToString() ?? "-"} {(s.Duration is { } d ? $"{d.TotalSeconds}s" : "-")} "
        + $"{(s.Totals is { } t ? $"{t.FetchedBytes}/{t.SkippedBytes}/{t.Misses}" : "-")} {s.Outcome} {s.Phase?.Name() ?? "-"}";

    [Fact]
    public void The_log_keeps_each_event_once_and_at_most_its_bound()
    {
        var log = new HistoryLog(3);
        var events = Enumerable.Range(0, 5).Select(i => E("r1", i, PhaseChanged, Serving)).ToList();
        Assert.True(log.Add(new HistoryEntry(1, events[0])));
        Assert.False(log.Add(new HistoryEntry(2, events[0]))); // the same id again
        for (int i = 1; i < 5; i++) log.Add(new HistoryEntry(i + 1, events[i]));
        Assert.Equal([3L, 4, 5], log.All.Select(e => e.Seq));
        Assert.Equal([4L, 5], log.After(3, 10).Select(e => e.Seq));
        Assert.Equal([3L], log.After(null, 1).Select(e => e.Seq));
        Assert.Equal([4L, 5], log.Newest(2).Select(e => e.Seq)); // the newest, oldest first
        Assert.Equal([3L, 4, 5], log.Newest(10).Select(e => e.Seq));
        Assert.Empty(log.Newest(0));
        Assert.False(log.Contains(events[0].Id)); // dropped with its entry
        Assert.Equal(5, log.LastSeq);
    }
}
