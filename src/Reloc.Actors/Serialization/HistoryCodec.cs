using RelocationMode = Reloc.Management.RelocationMode;
using System.Text;
using Reloc.Actors.Coordinator;
using Reloc.Actors.History;
using static Reloc.Actors.Coordinator.RelocationProtocol;

namespace Reloc.Actors.Serialization;

/// <summary>
/// Binary layouts of the relocation history: <see cref="RelocationEvent"/> and <see cref="AuditRecord"/> (published to
/// every node and persisted by each node's history) and <see cref="HistoryProtocol.HistorySnapshot"/> (persisted). Version story: a layout change
/// gets a new manifest (REV2 ...) and every manifest ever written stays readable here; enums are written as their
/// numbers, so their members are only ever appended. The history's queries are local to a node and have no layout.
/// </summary>
internal static class HistoryCodec
{
    public static string? Manifest(object o) => o switch
    {
        RelocationEvent => "REV1",
        AuditRecord => "RAU1",
        // RHS1 (events only, before the audit) stays readable.
        HistoryProtocol.HistorySnapshot => "RHS2",
        _ => null,
    };

    public static byte[] Write(object o)
    {
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true))
        {
            switch (o)
            {
                case RelocationEvent e: WriteEvent(w, e); break;
                case AuditRecord a: WriteAudit(w, a); break;
                case HistoryProtocol.HistorySnapshot s:
                    w.Write(s.Entries.Count);
                    foreach (var entry in s.Entries) { w.Write(entry.Seq); WriteEvent(w, entry.Event); }
                    var audit = s.Audit ?? [];
                    w.Write(audit.Count);
                    foreach (var entry in audit) { w.Write(entry.Seq); WriteAudit(w, entry.Record); }
                    break;
                default: throw new ArgumentException($"cannot serialize {o.GetType()}");
            }
        }
        return ms.ToArray();
    }

    public static object? Read(byte[] bytes, string manifest)
    {
        using var r = new BinaryReader(new MemoryStream(bytes), Encoding.UTF8);
        return manifest switch
        {
            "REV1" => ReadEvent(r),
            "RAU1" => ReadAudit(r),
            "RHS1" => new HistoryProtocol.HistorySnapshot(ReadEntries(r), []),
            "RHS2" => new HistoryProtocol.HistorySnapshot(ReadEntries(r),
                Enumerable.Range(0, Count(r)).Select(_ => new HistoryProtocol.AuditEntry(r.ReadInt64(), ReadAudit(r))).ToList()),
            _ => null,
        };
    }

    private static List<HistoryProtocol.HistoryEntry> ReadEntries(BinaryReader r) =>
        Enumerable.Range(0, Count(r)).Select(_ => new HistoryProtocol.HistoryEntry(r.ReadInt64(), ReadEvent(r))).ToList();

    private static void WriteAudit(BinaryWriter w, AuditRecord a)
    {
        w.Write(a.Id.ToByteArray());
        w.Write(a.Time.ToUniversalTime().Ticks);
        w.Write(a.Node); w.Write(a.Principal);
        w.Write((int)a.Auth);
        w.Write(a.Source);
        w.Write((int)a.Action);
        w.Write(a.Target); w.Write(a.Detail);
        w.Write((int)a.Outcome);
        w.Write(a.Status);
    }

    private static AuditRecord ReadAudit(BinaryReader r) => new(
        new Guid(r.ReadBytes(16)), new DateTime(r.ReadInt64(), DateTimeKind.Utc), r.ReadString(), r.ReadString(),
        Defined((AuditAuth)r.ReadInt32()), r.ReadString(), Defined((AuditAction)r.ReadInt32()), r.ReadString(), r.ReadString(),
        Defined((AuditOutcome)r.ReadInt32()), r.ReadInt32());

    private static void WriteEvent(BinaryWriter w, RelocationEvent e)
    {
        w.Write(e.Id.ToByteArray());
        w.Write(e.Time.ToUniversalTime().Ticks);
        w.Write(e.Relocation); w.Write(e.Disk); w.Write(e.FromSite); w.Write(e.ToSite);
        WriteEnum(w, e.Mode);
        w.Write(e.Epoch);
        w.Write((int)e.Kind);
        WriteEnum(w, e.Phase);
        WriteEnum(w, e.Trigger);
        w.Write(e.Duration is not null);
        if (e.Duration is { } d) w.Write(d.Ticks);
        w.Write(e.Totals is not null);
        if (e.Totals is { } t) { w.Write(t.TotalBytes); w.Write(t.FetchedBytes); w.Write(t.SkippedBytes); w.Write(t.Misses); }
        w.Write(e.Detail is not null);
        if (e.Detail is not null) w.Write(e.Detail);
    }

    private static RelocationEvent ReadEvent(BinaryReader r) => new(
        new Guid(r.ReadBytes(16)), new DateTime(r.ReadInt64(), DateTimeKind.Utc), r.ReadString(), r.ReadString(), r.ReadString(), r.ReadString(),
        ReadEnum<RelocationMode>(r), r.ReadInt64(), Defined((RelocationEventKind)r.ReadInt32()), ReadEnum<RelocationPhase>(r), ReadEnum<HandoverTrigger>(r),
        r.ReadBoolean() ? TimeSpan.FromTicks(r.ReadInt64()) : null,
        r.ReadBoolean() ? new RelocationTotals(r.ReadInt64(), r.ReadInt64(), r.ReadInt64(), r.ReadInt64()) : null,
        r.ReadBoolean() ? r.ReadString() : null);

    /// <summary>-1: none.</summary>
    private static void WriteEnum<T>(BinaryWriter w, T? value) where T : struct, Enum => w.Write(value is { } v ? Convert.ToInt32(v) : -1);

    private static T? ReadEnum<T>(BinaryReader r) where T : struct, Enum => r.ReadInt32() is var n && n < 0 ? null : Defined((T)(object)n);

    private static T Defined<T>(T value) where T : struct, Enum =>
        Enum.IsDefined(value) ? value : throw new InvalidDataException($"{typeof(T).Name} {value} is not known to this version");

    private static int Count(BinaryReader r)
    {
        int n = r.ReadInt32();
        if (n < 0 || n > 10_000_000) throw new InvalidDataException($"list of {n} entries");
        return n;
    }
}
