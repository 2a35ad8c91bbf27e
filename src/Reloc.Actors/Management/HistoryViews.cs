using System.Text.Json;
using Reloc.Actors.Coordinator;
using Reloc.Actors.History;
using Reloc.Management;

namespace Reloc.Actors.Management;

/// <summary>The API's views of the relocation history (names in kebab-case, as the API's other names).</summary>
internal static class HistoryViews
{
    private static string Name<T>(T value) where T : struct, Enum => JsonNamingPolicy.KebabCaseLower.ConvertName(value.ToString());

    public static RelocationEventView Event(HistoryProtocol.HistoryEntry entry)
    {
        var e = entry.Event;
        return new RelocationEventView(entry.Seq, e.Id, e.Time, e.Relocation, e.Disk, e.FromSite, e.ToSite,
            e.Mode is { } mode ? Name(mode) : null, e.Epoch, Name(e.Kind), e.Phase?.Name(), e.Trigger is { } t ? Name(t) : null,
            e.Duration?.TotalSeconds, e.Totals?.TotalBytes, e.Totals?.FetchedBytes, e.Totals?.SkippedBytes, e.Totals?.Misses, e.Detail);
    }

    public static RelocationHistoryRow Row(HistoryProtocol.RelocationSummary r) =>
        new(r.Relocation, r.Started, r.FromSite, r.ToSite, r.Mode is { } mode ? Name(mode) : null, r.Trigger is { } t ? Name(t) : null,
            r.Duration?.TotalSeconds, r.Totals?.TotalBytes, r.Totals?.FetchedBytes, r.Totals?.SkippedBytes, r.Totals?.Misses,
            Name(r.Outcome), r.Phase?.Name());

    public static AuditRecordView Audit(HistoryProtocol.AuditEntry entry)
    {
        var a = entry.Record;
        return new AuditRecordView(entry.Seq, a.Id, a.Time, a.Node, a.Principal, Name(a.Auth), a.Source, Name(a.Action), a.Target, a.Detail,
            Name(a.Outcome), a.Status);
    }
}
