using System.Text;
using Reloc.Actors.Coordinator;
using static Reloc.Actors.Coordinator.RelocationProtocol;

namespace Reloc.Actors.Serialization;

/// <summary>Binary layouts of the relocation flow's messages (manifest → layout; a new layout gets a new manifest).</summary>
internal static class RelocationCodec
{
    public static string? Manifest(object o) => o switch
    {
        Relocate => "RR2", RequestHandover => "RH1", GetRelocations => "RG1", RelocationAccepted => "RA1",
        RelocationRefused => "RF1", RelocationInfo i => Placed(i) ? "RI2" : "RI1", RelocationList l => l.Relocations.Any(Placed) ? "RL2" : "RL1", PrepareIncoming => "PI3",
        IncomingPrepared => "IP2", StartOutgoing => "SO3", OutgoingStarted => "OS2", InvalidateAt => "IA2",
        InvalidatedAt => "ID2", Fence => "FE2", Fenced => "FD2", TakeOwnershipAt => "TO2", OwnershipMoved => "OM2",
        RelocationDone => "DN2", Release => "RE2", Released => "RD2", HandoverRequested => "HR2",
        CancelRelocation => "XC1", SetRelocationRate => "XR1", GetRelocationStatus => "XG1", RelocationCancelled => "XD1",
        RelocationStatus s => Placed(s.Info) ? "XS2" : "XS1", DiskProgress => "XP1", StopOutgoing => "XST2", OutgoingStopped => "XSD2",
        DropIncoming => "XDI2", IncomingDropped => "XDD2", GuestClients => "XGC1", RelocationStalled => "XRS1", GetProgress => "XGP1", SetRate => "XSR1",
        SetRelocationWeight => "XW1", SetLinkBudget => "LS1", GetLinks => "LG1", LinkList => "LL1", LinkInfo => "LI1",
        RememberLinkBudget => "LR1", LinkBudgetHeld => "LH1",
        // Admission queue (RI2/RL2/XS2: RelocationInfo's layout with its place in line appended, written only when one is
        // queued: else the 1s, which a node of the version before reads).
        DrainSite => "QD1", DrainAccepted => "QDA1", RelocationQueued => "QR1", QueueRelocation => "QQ1", QueuedAt => "QA1",
        QueueRefused => "QF1", Unqueue => "QU1", Unqueued => "QUD1",
        _ => null,
    };

    public static byte[] Write(object o)
    {
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true))
        {
            switch (o)
            {
                case Relocate m: w.Write(m.Disk); w.Write(m.ToSite); w.Write(m.Hybrid); w.Write(m.RateBytesPerSecond); w.Write(m.Prefetch); break;
                case RequestHandover m: w.Write(m.Disk); break;
                case GetRelocations: break;
                case RelocationAccepted m: w.Write(m.Disk); w.Write(m.FromSite); w.Write(m.ToSite); w.Write(m.Epoch); break;
                case RelocationRefused m: w.Write(m.Reason); break;
                case RelocationInfo m: WriteInfo(w, m, Placed(m)); break;
                case RelocationList m:
                    var placed = m.Relocations.Any(Placed);
                    w.Write(m.Relocations.Count); foreach (var i in m.Relocations) WriteInfo(w, i, placed);
                    break;
                case PrepareIncoming m: w.Write(m.Disk); w.Write(m.Size); w.Write(m.FromSite); w.Write(m.SourceUri); w.Write(m.Epoch); w.Write(m.Hybrid); w.Write(m.RateBytesPerSecond); w.Write(m.Prefetch); w.Write(m.Relocation); break;
                case IncomingPrepared m: w.Write(m.Disk); w.Write(m.Epoch); w.Write(m.Relocation); break;
                case StartOutgoing m: w.Write(m.Disk); w.Write(m.ToSite); w.Write(m.Epoch); w.Write(m.BlockSize); w.Write(m.Relocation); break;
                case OutgoingStarted m: w.Write(m.Disk); w.Write(m.Epoch); w.Write(m.SourceClients); w.Write(m.Relocation); break;
                case InvalidateAt m: w.Write(m.Disk); w.Write(m.Epoch); w.Write(m.Seq); WriteRuns(w, m.Blocks); w.Write(m.Relocation); break;
                case InvalidatedAt m: w.Write(m.Disk); w.Write(m.Epoch); w.Write(m.Seq); w.Write(m.Relocation); break;
                case Fence m: w.Write(m.Disk); w.Write(m.NewEpoch); w.Write(m.Relocation); break;
                case Fenced m: w.Write(m.Disk); w.Write(m.NewEpoch); WriteRuns(w, m.FinalDirty); w.Write(m.Relocation); break;
                case TakeOwnershipAt m: w.Write(m.Disk); w.Write(m.NewEpoch); WriteRuns(w, m.FinalDirty); w.Write(m.Relocation); break;
                case OwnershipMoved m: w.Write(m.Disk); w.Write(m.NewEpoch); w.Write(m.Relocation); break;
                case RelocationDone m: w.Write(m.Disk); w.Write(m.Epoch); w.Write(m.Relocation); break;
                case Release m: w.Write(m.Disk); w.Write(m.Epoch); w.Write(m.Relocation); break;
                case Released m: w.Write(m.Disk); w.Write(m.Epoch); w.Write(m.Relocation); break;
                case HandoverRequested m: w.Write(m.Disk); w.Write(m.Relocation); break;
                case CancelRelocation m: w.Write(m.Disk); break;
                case SetRelocationRate m: w.Write(m.Disk); w.Write(m.RateBytesPerSecond); break;
                case GetRelocationStatus m: w.Write(m.Disk); break;
                case RelocationCancelled m: w.Write(m.Disk); break;
                case RelocationStatus m: WriteInfo(w, m.Info, Placed(m.Info)); WriteProgress(w, m.Progress); break;
                case DiskProgress m: WriteProgress(w, m); break;
                case StopOutgoing m: w.Write(m.Disk); w.Write(m.Epoch); w.Write(m.Relocation); break;
                case OutgoingStopped m: w.Write(m.Disk); w.Write(m.Epoch); w.Write(m.Relocation); break;
                case DropIncoming m: w.Write(m.Disk); w.Write(m.Epoch); w.Write(m.Relocation); break;
                case IncomingDropped m: w.Write(m.Disk); w.Write(m.Epoch); w.Write(m.Relocation); break;
                case GuestClients m: w.Write(m.Disk); w.Write(m.Site); w.Write(m.Count); break;
                case RelocationStalled m: w.Write(m.Disk); w.Write(m.Relocation); w.Write(m.Site); w.Write(m.Reason); break;
                case GetProgress m: w.Write(m.Disk); break;
                case SetRate m: w.Write(m.Disk); w.Write(m.RateBytesPerSecond); break;
                case SetRelocationWeight m: w.Write(m.Disk); w.Write(m.Weight); break;
                case SetLinkBudget m: w.Write(m.SiteA); w.Write(m.SiteB); w.Write(m.BandwidthBytesPerSecond); break;
                case GetLinks: break;
                case LinkList m: w.Write(m.Links.Count); foreach (var l in m.Links) WriteLink(w, l); break;
                case LinkInfo m: WriteLink(w, m); break;
                case RememberLinkBudget m: WriteBudget(w, m.Budget); break;
                case LinkBudgetHeld m: w.Write(m.Site); WriteBudget(w, m.Budget); break;
                case DrainSite m: w.Write(m.FromSite); w.Write(m.ToSite); w.Write(m.Hybrid); w.Write(m.RateBytesPerSecond); w.Write(m.Prefetch); break;
                case DrainAccepted m:
                    w.Write(m.FromSite); w.Write(m.ToSite);
                    w.Write(m.Relocations.Count); foreach (var i in m.Relocations) WriteInfo(w, i);
                    w.Write(m.Skipped.Count); foreach (var s in m.Skipped) { w.Write(s.Disk); w.Write(s.Reason); }
                    break;
                case RelocationQueued m: w.Write(m.Disk); w.Write(m.FromSite); w.Write(m.ToSite); w.Write(m.Epoch); w.Write(m.Position); break;
                case QueueRelocation m:
                    w.Write(m.Disk); w.Write(m.Epoch); w.Write(m.ToSite); w.Write(m.Ticket); w.Write(m.Hybrid); w.Write(m.RateBytesPerSecond); w.Write(m.Prefetch); w.Write(m.Relocation);
                    break;
                case QueuedAt m: w.Write(m.Disk); w.Write(m.Ticket); w.Write(m.Relocation); break;
                case QueueRefused m: w.Write(m.Disk); w.Write(m.Relocation); w.Write(m.Reason); break;
                case Unqueue m: w.Write(m.Disk); w.Write(m.Relocation); break;
                case Unqueued m: w.Write(m.Disk); w.Write(m.Relocation); break;
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
            "RR2" => new Relocate(r.ReadString(), r.ReadString(), r.ReadBoolean(), r.ReadInt64(), r.ReadBoolean()),
            "RH1" => new RequestHandover(r.ReadString()),
            "RG1" => new GetRelocations(),
            "RA1" => new RelocationAccepted(r.ReadString(), r.ReadString(), r.ReadString(), r.ReadInt64()),
            "RF1" => new RelocationRefused(r.ReadString()),
            "RI1" => ReadInfo(r, placed: false),
            "RL1" => new RelocationList(Enumerable.Range(0, Count(r)).Select(_ => ReadInfo(r, placed: false)).ToList()),
            "RI2" => ReadInfo(r),
            "RL2" => new RelocationList(Enumerable.Range(0, Count(r)).Select(_ => ReadInfo(r)).ToList()),
            "PI3" => new PrepareIncoming(r.ReadString(), r.ReadInt64(), r.ReadString(), r.ReadString(), r.ReadInt64(), r.ReadBoolean(), r.ReadInt64(), r.ReadBoolean(), r.ReadString()),
            "IP2" => new IncomingPrepared(r.ReadString(), r.ReadInt64(), r.ReadString()),
            "SO3" => new StartOutgoing(r.ReadString(), r.ReadString(), r.ReadInt64(), r.ReadInt32(), r.ReadString()),
            "OS2" => new OutgoingStarted(r.ReadString(), r.ReadInt64(), r.ReadInt32(), r.ReadString()),
            "IA2" => new InvalidateAt(r.ReadString(), r.ReadInt64(), r.ReadInt64(), ReadRuns(r), r.ReadString()),
            "ID2" => new InvalidatedAt(r.ReadString(), r.ReadInt64(), r.ReadInt64(), r.ReadString()),
            "FE2" => new Fence(r.ReadString(), r.ReadInt64(), r.ReadString()),
            "FD2" => new Fenced(r.ReadString(), r.ReadInt64(), ReadRuns(r), r.ReadString()),
            "TO2" => new TakeOwnershipAt(r.ReadString(), r.ReadInt64(), ReadRuns(r), r.ReadString()),
            "OM2" => new OwnershipMoved(r.ReadString(), r.ReadInt64(), r.ReadString()),
            "DN2" => new RelocationDone(r.ReadString(), r.ReadInt64(), r.ReadString()),
            "RE2" => new Release(r.ReadString(), r.ReadInt64(), r.ReadString()),
            "RD2" => new Released(r.ReadString(), r.ReadInt64(), r.ReadString()),
            "HR2" => new HandoverRequested(r.ReadString(), r.ReadString()),
            "XC1" => new CancelRelocation(r.ReadString()),
            "XR1" => new SetRelocationRate(r.ReadString(), r.ReadInt64()),
            "XG1" => new GetRelocationStatus(r.ReadString()),
            "XD1" => new RelocationCancelled(r.ReadString()),
            "XS1" => new RelocationStatus(ReadInfo(r, placed: false), ReadProgress(r)),
            "XS2" => new RelocationStatus(ReadInfo(r), ReadProgress(r)),
            "XP1" => ReadProgress(r),
            "XST2" => new StopOutgoing(r.ReadString(), r.ReadInt64(), r.ReadString()),
            "XSD2" => new OutgoingStopped(r.ReadString(), r.ReadInt64(), r.ReadString()),
            "XDI2" => new DropIncoming(r.ReadString(), r.ReadInt64(), r.ReadString()),
            "XDD2" => new IncomingDropped(r.ReadString(), r.ReadInt64(), r.ReadString()),
            "XGC1" => new GuestClients(r.ReadString(), r.ReadString(), r.ReadInt32()),
            "XRS1" => new RelocationStalled(r.ReadString(), r.ReadString(), r.ReadString(), r.ReadString()),
            "XGP1" => new GetProgress(r.ReadString()),
            "XSR1" => new SetRate(r.ReadString(), r.ReadInt64()),
            "XW1" => new SetRelocationWeight(r.ReadString(), r.ReadInt32()),
            "LS1" => new SetLinkBudget(r.ReadString(), r.ReadString(), r.ReadInt64()),
            "LG1" => new GetLinks(),
            "LL1" => new LinkList(Enumerable.Range(0, Count(r)).Select(_ => ReadLink(r)).ToList()),
            "LI1" => ReadLink(r),
            "LR1" => new RememberLinkBudget(ReadBudget(r)),
            "LH1" => new LinkBudgetHeld(r.ReadString(), ReadBudget(r)),
            "QD1" => new DrainSite(r.ReadString(), r.ReadString(), r.ReadBoolean(), r.ReadInt64(), r.ReadBoolean()),
            "QDA1" => new DrainAccepted(r.ReadString(), r.ReadString(), Enumerable.Range(0, Count(r)).Select(_ => ReadInfo(r)).ToList(),
                Enumerable.Range(0, Count(r)).Select(_ => new DrainSkipped(r.ReadString(), r.ReadString())).ToList()),
            "QR1" => new RelocationQueued(r.ReadString(), r.ReadString(), r.ReadString(), r.ReadInt64(), r.ReadInt32()),
            "QQ1" => new QueueRelocation(r.ReadString(), r.ReadInt64(), r.ReadString(), r.ReadInt64(), r.ReadBoolean(), r.ReadInt64(), r.ReadBoolean(), r.ReadString()),
            "QA1" => new QueuedAt(r.ReadString(), r.ReadInt64(), r.ReadString()),
            "QF1" => new QueueRefused(r.ReadString(), r.ReadString(), r.ReadString()),
            "QU1" => new Unqueue(r.ReadString(), r.ReadString()),
            "QUD1" => new Unqueued(r.ReadString(), r.ReadString()),
            _ => null,
        };
    }

    private static bool Placed(RelocationInfo i) => i.Position != 0;

    /// <param name="placed">RI2's layout (its place in line appended), else RI1's.</param>
    private static void WriteInfo(BinaryWriter w, RelocationInfo i, bool placed = true)
    {
        w.Write(i.Disk); w.Write(i.FromSite); w.Write(i.ToSite); w.Write(i.Epoch); w.Write(i.Phase);
        if (placed) w.Write(i.Position);
    }

    /// <param name="placed">The layout of RI2 and after (its place in line appended).</param>
    private static RelocationInfo ReadInfo(BinaryReader r, bool placed = true) =>
        new(r.ReadString(), r.ReadString(), r.ReadString(), r.ReadInt64(), r.ReadString(), placed ? r.ReadInt32() : 0);

    private static void WriteLink(BinaryWriter w, LinkInfo l)
    {
        w.Write(l.SiteA); w.Write(l.SiteB); w.Write(l.BandwidthBytesPerSecond); w.Write(l.SetAtRunTime);
        w.Write(l.Shares.Count);
        foreach (var s in l.Shares)
        {
            w.Write(s.Disk); w.Write(s.FromSite); w.Write(s.ToSite); w.Write(s.Weight); w.Write(s.CapBytesPerSecond); w.Write(s.RateBytesPerSecond);
        }
    }

    private static LinkInfo ReadLink(BinaryReader r) => new(r.ReadString(), r.ReadString(), r.ReadInt64(), r.ReadBoolean(),
        Enumerable.Range(0, Count(r)).Select(_ => new LinkShare(r.ReadString(), r.ReadString(), r.ReadString(), r.ReadInt32(), r.ReadInt64(), r.ReadInt64())).ToList());

    /// <summary>A remembered link budget: its pair's two sites (in <see cref="LinkPair"/>'s order), bytes per second, stamp.</summary>
    internal static void WriteBudget(BinaryWriter w, RememberedBudget b)
    {
        w.Write(b.Pair.A); w.Write(b.Pair.B); w.Write(b.BandwidthBytesPerSecond); w.Write(b.Stamp);
    }

    internal static RememberedBudget ReadBudget(BinaryReader r)
    {
        var (a, b) = (r.ReadString(), r.ReadString());
        LinkPair pair;
        try { pair = new LinkPair(a, b); }
        catch (ArgumentException ex) { throw new InvalidDataException($"a link budget's pair: {ex.Message}", ex); }
        return new RememberedBudget(pair, r.ReadInt64(), r.ReadInt64());
    }

    private static void WriteProgress(BinaryWriter w, DiskProgress p)
    {
        w.Write(p.Disk); w.Write(p.State); w.Write(p.LocalBytes); w.Write(p.TotalBytes); w.Write(p.FetchedBytes); w.Write(p.SkippedBytes);
        w.Write(p.WrittenBytes); w.Write(p.OnDemandFetches); w.Write(p.RateBps); w.Write(p.PrefetchWindow); w.Write(p.PrefetchPaused);
    }

    private static DiskProgress ReadProgress(BinaryReader r) =>
        new(r.ReadString(), r.ReadString(), r.ReadInt64(), r.ReadInt64(), r.ReadInt64(), r.ReadInt64(), r.ReadInt64(), r.ReadInt64(), r.ReadInt64(), r.ReadInt32(), r.ReadBoolean());

    internal static void WriteRuns(BinaryWriter w, IReadOnlyList<(long First, long Count)> runs)
    {
        w.Write(runs.Count);
        foreach (var (f, c) in runs) { w.Write(f); w.Write(c); }
    }

    internal static List<(long, long)> ReadRuns(BinaryReader r) => Enumerable.Range(0, Count(r)).Select(_ => (r.ReadInt64(), r.ReadInt64())).ToList();

    private static int Count(BinaryReader r)
    {
        int n = r.ReadInt32();
        if (n < 0 || n > 10_000_000) throw new InvalidDataException($"list of {n} entries");
        return n;
    }
}
