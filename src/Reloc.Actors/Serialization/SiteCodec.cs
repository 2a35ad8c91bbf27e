using System.Text;
using Reloc.Actors.Site;

namespace Reloc.Actors.Serialization;

/// <summary>Binary layouts of the site messages and events (length-prefixed UTF-8 strings, little-endian numbers).</summary>
internal static class SiteCodec
{
    public static byte[] Write(object o)
    {
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true))
        {
            switch (o)
            {
                case SiteProtocol.CreateDisk c: w.Write(c.Name); w.Write(c.Size); WriteOptional(w, c.FromFile); break;
                case SiteProtocol.DeleteDisk d: w.Write(d.Name); w.Write(d.Force); break;
                case SiteProtocol.ListDisks: break;
                case SiteProtocol.DiskInfo i: WriteInfo(w, i, Queued(i)); break;
                case SiteProtocol.DiskList l:
                    w.Write(l.Site);
                    w.Write(l.Disks.Count);
                    var queued = Queued(l);
                    foreach (var i in l.Disks) WriteInfo(w, i, queued || HasLinks(l));
                    if (!HasLinks(l)) break;
                    // SLR5: SLR4's layout with the remembered link budgets appended.
                    w.Write(l.Links!.Count);
                    foreach (var b in l.Links) RelocationCodec.WriteBudget(w, b);
                    break;
                case SiteProtocol.Deleted d: w.Write(d.Name); w.Write(d.ClientsCut); break;
                case SiteProtocol.Refused r: w.Write(r.Reason); break;
                case SiteProtocol.Forbidden f: w.Write(f.Reason); break;
                case SiteProtocol.GetNbdAddress: break;
                case SiteProtocol.NbdAddress n: w.Write(n.Site); w.Write(n.BaseUri); break;
                case SiteProtocol.GetAllocation g: w.Write(g.Disk); break;
                case SiteProtocol.Allocation a: w.Write(a.Disk); w.Write(a.Size); w.Write(a.Allocated); break;
                case SiteProtocol.CheckRoom cr: w.Write(cr.Disk); w.Write(cr.Size); w.Write(cr.Allocated); break;
                case SiteProtocol.RoomChecked rc: w.Write(rc.Disk); w.Write(rc.Free); w.Write(rc.Needed); WriteOptional(w, rc.Refusal); WriteOptional(w, rc.Warning); break;
                case SiteEvents.DiskAdded a: w.Write(a.Name); w.Write(a.Size); w.Write(a.ImagePath); w.Write(a.Epoch); break;
                case SiteEvents.DiskRemoved r: w.Write(r.Name); break;
                case SiteEvents.IncomingAdded i:
                    w.Write(i.Name); w.Write(i.Size); w.Write(i.ImagePath); w.Write(i.SourceUri); w.Write(i.Epoch); w.Write(i.FromSite); w.Write(i.Journal); w.Write(i.Relocation);
                    var options = i.Options ?? new Site.Core.ArrivalOptions(Hybrid: true, Rate: 0, Prefetch: true);
                    w.Write(options.Hybrid); w.Write(options.Rate); w.Write(options.Prefetch);
                    break;
                case SiteEvents.ArrivalRateSet rs: w.Write(rs.Name); w.Write(rs.Rate); break;
                case SiteEvents.DiskFenced f: w.Write(f.Name); w.Write(f.NewEpoch); w.Write(f.ToSite); RelocationCodec.WriteRuns(w, f.FinalDirty ?? []); w.Write(f.Relocation); break;
                case SiteEvents.OutgoingBegun ob: w.Write(ob.Name); w.Write(ob.Epoch); w.Write(ob.ToSite); w.Write(ob.Relocation); break;
                case SiteEvents.OutgoingEnded oe: w.Write(oe.Name); w.Write(oe.Relocation); break;
                case SiteEvents.RelocationQueued q: w.Write(q.Name); WriteQueued(w, q.Queued); break;
                case SiteEvents.QueueLeft q: w.Write(q.Name); w.Write(q.Relocation); break;
                case SiteEvents.LinkBudgetRemembered lb: RelocationCodec.WriteBudget(w, lb.Budget); break;
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
            "SC1" => new SiteProtocol.CreateDisk(r.ReadString(), r.ReadInt64(), ReadOptional(r)),
            "SD1" => new SiteProtocol.DeleteDisk(r.ReadString()),
            "SD2" => new SiteProtocol.DeleteDisk(r.ReadString(), r.ReadBoolean()),
            "SL1" => new SiteProtocol.ListDisks(),
            // SI4/SLR4: SI3's layout with the queued relocation appended (SI3 and SLR3 stay readable: a node of the
            // version before sends them while a cluster is upgraded one node at a time).
            "SI3" => ReadInfo(r, queued: false),
            "SLR3" => ReadList(r, queued: false),
            "SI4" => ReadInfo(r),
            "SLR4" => ReadList(r),
            "SLR5" => ReadList(r, links: true),
            "SDD1" => new SiteProtocol.Deleted(r.ReadString()),
            "SDD2" => new SiteProtocol.Deleted(r.ReadString(), r.ReadInt32()),
            "SR1" => new SiteProtocol.Refused(r.ReadString()),
            "SFB1" => new SiteProtocol.Forbidden(r.ReadString()),
            "SGN1" => new SiteProtocol.GetNbdAddress(),
            "SNA1" => new SiteProtocol.NbdAddress(r.ReadString(), r.ReadString()),
            "SGA1" => new SiteProtocol.GetAllocation(r.ReadString()),
            "SAL1" => new SiteProtocol.Allocation(r.ReadString(), r.ReadInt64(), r.ReadInt64()),
            "SCR1" => new SiteProtocol.CheckRoom(r.ReadString(), r.ReadInt64(), r.ReadInt64()),
            "SRC1" => new SiteProtocol.RoomChecked(r.ReadString(), r.ReadInt64(), r.ReadInt64(), ReadOptional(r), ReadOptional(r)),
            "SA1" => new SiteEvents.DiskAdded(r.ReadString(), r.ReadInt64(), r.ReadString(), r.ReadInt64()),
            "SX1" => new SiteEvents.DiskRemoved(r.ReadString()),
            // Persisted events: every layout ever written stays readable.
            "SIA1" => new SiteEvents.IncomingAdded(r.ReadString(), r.ReadInt64(), r.ReadString(), r.ReadString(), r.ReadInt64()),
            "SIA2" => new SiteEvents.IncomingAdded(r.ReadString(), r.ReadInt64(), r.ReadString(), r.ReadString(), r.ReadInt64(), r.ReadString(), r.ReadString()),
            "SIA3" => new SiteEvents.IncomingAdded(r.ReadString(), r.ReadInt64(), r.ReadString(), r.ReadString(), r.ReadInt64(), r.ReadString(), r.ReadString(), r.ReadString()),
            "SIA4" => new SiteEvents.IncomingAdded(r.ReadString(), r.ReadInt64(), r.ReadString(), r.ReadString(), r.ReadInt64(), r.ReadString(), r.ReadString(), r.ReadString(),
                new Site.Core.ArrivalOptions(r.ReadBoolean(), r.ReadInt64(), r.ReadBoolean())),
            "SRS1" => new SiteEvents.ArrivalRateSet(r.ReadString(), r.ReadInt64()),
            "SF1" => new SiteEvents.DiskFenced(r.ReadString(), r.ReadInt64()),
            "SF2" => new SiteEvents.DiskFenced(r.ReadString(), r.ReadInt64(), r.ReadString(), RelocationCodec.ReadRuns(r)),
            "SF3" => new SiteEvents.DiskFenced(r.ReadString(), r.ReadInt64(), r.ReadString(), RelocationCodec.ReadRuns(r), r.ReadString()),
            "SOB1" => new SiteEvents.OutgoingBegun(r.ReadString(), r.ReadInt64(), r.ReadString()),
            "SOB2" => new SiteEvents.OutgoingBegun(r.ReadString(), r.ReadInt64(), r.ReadString(), r.ReadString()),
            "SOE1" => new SiteEvents.OutgoingEnded(r.ReadString()),
            "SOE2" => new SiteEvents.OutgoingEnded(r.ReadString(), r.ReadString()),
            "SQ1" => new SiteEvents.RelocationQueued(r.ReadString(), ReadQueued(r)),
            "SQL1" => new SiteEvents.QueueLeft(r.ReadString(), r.ReadString()),
            "SLB1" => new SiteEvents.LinkBudgetRemembered(RelocationCodec.ReadBudget(r)),
            _ => null,
        };
    }

    /// <param name="links">SLR5's layout: the remembered link budgets appended (before it: none, null).</param>
    private static SiteProtocol.DiskList ReadList(BinaryReader r, bool queued = true, bool links = false)
    {
        var site = r.ReadString();
        int n = r.ReadInt32();
        if (n < 0 || n > 1_000_000) throw new InvalidDataException($"disk list of {n} entries");
        var disks = new List<SiteProtocol.DiskInfo>(n);
        for (int i = 0; i < n; i++) disks.Add(ReadInfo(r, queued));
        if (!links) return new SiteProtocol.DiskList(site, disks);
        int m = r.ReadInt32();
        if (m < 0 || m > 1_000_000) throw new InvalidDataException($"{m} link budgets in a disk list");
        var budgets = new List<Coordinator.RememberedBudget>(m);
        for (int i = 0; i < m; i++) budgets.Add(RelocationCodec.ReadBudget(r));
        return new SiteProtocol.DiskList(site, disks, budgets);
    }

    /// <summary>Whether the layout with the remembered link budgets (SLR5) is needed.</summary>
    public static bool HasLinks(SiteProtocol.DiskList l) => l.Links is { Count: > 0 };

    /// <summary>Whether the layout with the queued relocation (SI4, SLR4) is needed: else SI3/SLR3, as before the queue.</summary>
    public static bool Queued(SiteProtocol.DiskInfo i) => i.Queued is not null;

    public static bool Queued(SiteProtocol.DiskList l) => l.Disks.Any(Queued);

    private static void WriteInfo(BinaryWriter w, SiteProtocol.DiskInfo i, bool withQueued)
    {
        w.Write(i.Name); w.Write(i.Size); w.Write(i.Site); w.Write(i.Epoch); w.Write(i.Phase); w.Write(i.NbdUri);
        w.Write(i.Peer); w.Write(i.LocalBytes); w.Write(i.Clients); w.Write(i.Writable); w.Write(i.HandoverWanted); w.Write(i.Relocation);
        if (!withQueued) return;
        w.Write(i.Queued is not null);
        if (i.Queued is not null) WriteQueued(w, i.Queued);
    }

    /// <param name="queued">The layout of SI4 and after (the queued relocation appended).</param>
    private static SiteProtocol.DiskInfo ReadInfo(BinaryReader r, bool queued = true) =>
        new(r.ReadString(), r.ReadInt64(), r.ReadString(), r.ReadInt64(), r.ReadString(), r.ReadString(),
            r.ReadString(), r.ReadInt64(), r.ReadInt32(), r.ReadBoolean(), r.ReadBoolean(), r.ReadString(),
            queued && r.ReadBoolean() ? ReadQueued(r) : null);

    private static void WriteQueued(BinaryWriter w, QueuedRelocation q)
    {
        w.Write(q.ToSite); w.Write(q.Ticket); w.Write(q.Hybrid); w.Write(q.RateBytesPerSecond); w.Write(q.Prefetch); w.Write(q.Relocation);
    }

    private static QueuedRelocation ReadQueued(BinaryReader r) =>
        new(r.ReadString(), r.ReadInt64(), r.ReadBoolean(), r.ReadInt64(), r.ReadBoolean(), r.ReadString());

    private static void WriteOptional(BinaryWriter w, string? s)
    {
        w.Write(s is not null);
        if (s is not null) w.Write(s);
    }

    private static string? ReadOptional(BinaryReader r) => r.ReadBoolean() ? r.ReadString() : null;
}
