using System.Buffers.Binary;
using System.Runtime.Serialization;
using Akka.Actor;
using Akka.Serialization;
using Reloc.Actors.Disk;
using Reloc.Actors.Site;

namespace Reloc.Actors.Serialization;

/// <summary>
/// Explicit binary serializer for persisted events and cross-node messages. Each type has a short
/// manifest with a version suffix: a layout change gets a new manifest and the old one stays readable,
/// and renaming a C# type never breaks recovery (the default JSON serializer stores type names).
/// </summary>
public sealed class RelocSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    public const int Id = 4711;
    public override int Identifier => Id;

    public override string Manifest(object o) => o switch
    {
        DiskEvents.BlocksLanded => "BL1",
        DiskEvents.RelocationCompleted => "RC1",
        DiskEvents.BlocksInvalidated => "BI1",
        DiskEvents.OwnershipTaken => "OT1",
        DiskSnapshot => "DS2",
        SiteProtocol.CreateDisk => "SC1",
        SiteProtocol.DeleteDisk => "SD2",
        SiteProtocol.ListDisks => "SL1",
        // Nothing queued: the layout before the queue, which a node of the version before reads (a rolling upgrade).
        SiteProtocol.DiskInfo i => SiteCodec.Queued(i) ? "SI4" : "SI3",
        // With link budgets remembered: SLR5; else the layouts before, which a node of the version before reads.
        SiteProtocol.DiskList l => SiteCodec.HasLinks(l) ? "SLR5" : SiteCodec.Queued(l) ? "SLR4" : "SLR3",
        SiteProtocol.Deleted => "SDD2",
        SiteProtocol.Refused => "SR1",
        SiteProtocol.Forbidden => "SFB1",
        SiteProtocol.GetNbdAddress => "SGN1",
        SiteProtocol.NbdAddress => "SNA1",
        SiteProtocol.GetAllocation => "SGA1",
        SiteProtocol.Allocation => "SAL1",
        SiteProtocol.CheckRoom => "SCR1",
        SiteProtocol.RoomChecked => "SRC1",
        SiteEvents.DiskAdded => "SA1",
        SiteEvents.DiskRemoved => "SX1",
        SiteEvents.IncomingAdded => "SIA4",
        SiteEvents.ArrivalRateSet => "SRS1",
        SiteEvents.DiskFenced => "SF3",
        SiteEvents.OutgoingBegun => "SOB2",
        SiteEvents.OutgoingEnded => "SOE2",
        SiteEvents.RelocationQueued => "SQ1",
        SiteEvents.QueueLeft => "SQL1",
        SiteEvents.LinkBudgetRemembered => "SLB1",
        _ => RelocationCodec.Manifest(o) ?? HistoryCodec.Manifest(o) ?? throw new ArgumentException($"{o.GetType()} has no Reloc manifest"),
    };

    public override byte[] ToBinary(object o)
    {
        switch (o)
        {
            case DiskEvents.BlocksLanded l:
            {
                var b = new byte[25];
                BinaryPrimitives.WriteInt64BigEndian(b, l.First);
                BinaryPrimitives.WriteInt64BigEndian(b.AsSpan(8), l.Count);
                b[16] = (byte)l.Kind;
                BinaryPrimitives.WriteInt64BigEndian(b.AsSpan(17), l.Bytes);
                return b;
            }
            case DiskEvents.RelocationCompleted:
                return [];
            case DiskEvents.BlocksInvalidated i:
            {
                var b = new byte[16];
                BinaryPrimitives.WriteInt64BigEndian(b, i.First);
                BinaryPrimitives.WriteInt64BigEndian(b.AsSpan(8), i.Count);
                return b;
            }
            case DiskEvents.OwnershipTaken taken:
            {
                var b = new byte[8];
                BinaryPrimitives.WriteInt64BigEndian(b, taken.Epoch);
                return b;
            }
            case DiskSnapshot s:
            {
                // DS2 = DS1's layout with epoch and owner appended after the map's length-prefixed body.
                var b = new byte[25 + 4 + s.Map.Length + 9];
                BinaryPrimitives.WriteInt64BigEndian(b, s.FetchedBytes);
                BinaryPrimitives.WriteInt64BigEndian(b.AsSpan(8), s.SkippedBytes);
                BinaryPrimitives.WriteInt64BigEndian(b.AsSpan(16), s.WrittenBytes);
                b[24] = s.Completed ? (byte)1 : (byte)0;
                BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(25), s.Map.Length);
                s.Map.CopyTo(b, 29);
                BinaryPrimitives.WriteInt64BigEndian(b.AsSpan(29 + s.Map.Length), s.Epoch);
                b[^1] = s.Owner ? (byte)1 : (byte)0;
                return b;
            }
            default:
                return RelocationCodec.Manifest(o) is not null ? RelocationCodec.Write(o)
                    : HistoryCodec.Manifest(o) is not null ? HistoryCodec.Write(o)
                    : SiteCodec.Write(o);
        }
    }

    private static DiskSnapshot ReadSnapshotV2(ReadOnlySpan<byte> b)
    {
        int mapLength = BinaryPrimitives.ReadInt32BigEndian(b[25..]);
        var map = b.Slice(29, mapLength).ToArray();
        return new DiskSnapshot(map, BinaryPrimitives.ReadInt64BigEndian(b), BinaryPrimitives.ReadInt64BigEndian(b[8..]),
            BinaryPrimitives.ReadInt64BigEndian(b[16..]), b[24] == 1, BinaryPrimitives.ReadInt64BigEndian(b[(29 + mapLength)..]), b[^1] == 1);
    }

    public override object FromBinary(byte[] bytes, string manifest)
    {
        var b = bytes.AsSpan();
        return manifest switch
        {
            "BL1" => new DiskEvents.BlocksLanded(BinaryPrimitives.ReadInt64BigEndian(b), BinaryPrimitives.ReadInt64BigEndian(b[8..]),
                (LandKind)b[16], BinaryPrimitives.ReadInt64BigEndian(b[17..])),
            "RC1" => new DiskEvents.RelocationCompleted(),
            "BI1" => new DiskEvents.BlocksInvalidated(BinaryPrimitives.ReadInt64BigEndian(b), BinaryPrimitives.ReadInt64BigEndian(b[8..])),
            "OT1" => new DiskEvents.OwnershipTaken(BinaryPrimitives.ReadInt64BigEndian(b)),
            // DS1 (before epochs): the disk was always its own owner.
            "DS1" => new DiskSnapshot(b[25..].ToArray(), BinaryPrimitives.ReadInt64BigEndian(b), BinaryPrimitives.ReadInt64BigEndian(b[8..]),
                BinaryPrimitives.ReadInt64BigEndian(b[16..]), b[24] == 1),
            "DS2" => ReadSnapshotV2(b),
            _ => SiteCodec.Read(bytes, manifest) ?? RelocationCodec.Read(bytes, manifest) ?? HistoryCodec.Read(bytes, manifest) ?? throw new SerializationException($"unknown Reloc manifest '{manifest}'"),
        };
    }
}
