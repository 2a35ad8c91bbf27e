using RelocationMode = Reloc.Management.RelocationMode;
using Akka.Actor;
using Akka.Serialization;
using Reloc.Actors;
using Reloc.Actors.Disk;
using Reloc.Actors.Serialization;
using Reloc.Actors.Site;
using Reloc.Actors.Coordinator;
using Xunit;

namespace Reloc.Actors.Tests;

/// <summary>Every persisted or cross-node message goes through RelocSerializer and round-trips.</summary>
public sealed class SerializerTests : IDisposable
{
    private readonly ActorSystem _system = ActorSystem.Create("ser", RelocConfig.Node(RelocConfig.Sqlite(":memory:")));

    public void Dispose() => _system.Dispose();

    public static TheoryData<object> Messages => new()
    {
        new DiskEvents.BlocksLanded(12, 3456, LandKind.Fetched, 3456L * 65536),
        new DiskEvents.BlocksLanded(0, 1, LandKind.Written, 100),
        new DiskEvents.BlocksLanded(long.MaxValue / 2, 7, LandKind.Skipped, 0),
        new DiskEvents.RelocationCompleted(),
        new SiteProtocol.CreateDisk("vm1", 10L << 30),
        new SiteProtocol.CreateDisk("vm2", 0, "/images/base.img"),
        new SiteProtocol.DeleteDisk("vm1"),
        new SiteProtocol.DeleteDisk("vm1", Force: true),
        new SiteProtocol.Forbidden("'/etc/shadow' is outside site a's import directory /imp"),
        new SiteProtocol.ListDisks(),
        new SiteProtocol.GetNbdAddress(),
        new SiteProtocol.NbdAddress("site-a", "nbds://10.0.0.1:10811"),
        new SiteProtocol.DiskInfo("vm1", 1 << 20, "site-a", 3, "owned", "nbd://127.0.0.1:10811/vm1"),
        new SiteProtocol.DiskInfo("vm1", 1 << 20, "site-b", 3, "incoming", "nbd://127.0.0.1:10812/vm1", "site-a", 65536, 2, true, true, "r1"),
        new SiteProtocol.CreateDisk("vm3", 0, "nbd://10.0.0.9:10809/export"),
        new SiteProtocol.Deleted("vm1"),
        new SiteProtocol.Deleted("vm1", ClientsCut: 2),
        new SiteProtocol.Refused("disk 'vm1' already exists — ünïcode too"),
        new SiteEvents.DiskAdded("vm1", 1 << 20, "/var/lib/reloc/vm1.img", 1),
        new SiteEvents.DiskRemoved("vm1"),
        new SiteEvents.IncomingAdded("vm1", 1 << 30, "/data/vm1.img", "nbd://10.0.0.1:10809/vm1@peer", 3, "site-a", "0f3c", "r7", new(Hybrid: false, Rate: 40_000_000, Prefetch: true)),
        new SiteEvents.IncomingAdded("vm1", 1 << 30, "/data/vm1.img", "nbd://10.0.0.1:10809/vm1", 3, "", "0f3c", "0f3c", new(Hybrid: true, Rate: 0, Prefetch: false)),
        new SiteEvents.ArrivalRateSet("vm1", 5_000_000),
        new SiteEvents.OutgoingBegun("vm1", 3, "site-b", "r1"),
        new SiteEvents.OutgoingEnded("vm1", "r1"),
        new DiskEvents.BlocksInvalidated(7, 9),
        new DiskEvents.OwnershipTaken(5),
        new RelocationProtocol.Relocate("vm1", "site-b", true, 40_000_000),
        new RelocationProtocol.RequestHandover("vm1"),
        new RelocationProtocol.GetRelocations(),
        new RelocationProtocol.RelocationAccepted("vm1", "site-a", "site-b", 1),
        new RelocationProtocol.RelocationRefused("unknown site 'x'"),
        new RelocationProtocol.RelocationInfo("vm1", "site-a", "site-b", 1, "serving"),
        new RelocationProtocol.PrepareIncoming("vm1", 1 << 30, "site-a", "nbd://127.0.0.1:10811/vm1", 1, false, 0, true, "r1"),
        new RelocationProtocol.IncomingPrepared("vm1", 1, "r1"),
        new RelocationProtocol.Relocate("vm1", "site-c", false, 0, Prefetch: false),
        new RelocationProtocol.PrepareIncoming("vm1", 1 << 30, "site-a", "nbd://127.0.0.1:10811/vm1", 1, true, 5, false, "r2"),
        new RelocationProtocol.StartOutgoing("vm1", "site-b", 1, 65536, "r1"),
        new RelocationProtocol.CancelRelocation("vm1"),
        new RelocationProtocol.SetRelocationRate("vm1", 20_000_000),
        new RelocationProtocol.GetRelocationStatus("vm1"),
        new RelocationProtocol.RelocationCancelled("vm1"),
        new RelocationProtocol.DiskProgress("vm1", "relocating", 1, 2, 3, 4, 5, 6, 7, 8, true),
        new RelocationProtocol.RelocationStatus(new RelocationProtocol.RelocationInfo("vm1", "a", "b", 1, "postcopy"),
            new RelocationProtocol.DiskProgress("vm1", "relocating", 1, 2, 3, 4, 5, 6, 7, 8, false)),
        new RelocationProtocol.StopOutgoing("vm1", 1, "r1"),
        new RelocationProtocol.OutgoingStopped("vm1", 1, "r1"),
        new RelocationProtocol.DropIncoming("vm1", 1, "r1"),
        new RelocationProtocol.IncomingDropped("vm1", 1, "r1"),
        new RelocationProtocol.GuestClients("vm1", "site-a", 0),
        new RelocationProtocol.GetProgress("vm1"),
        new RelocationProtocol.SetRate("vm1", 0),
        new RelocationProtocol.SetRelocationWeight("vm1", 3),
        new RelocationProtocol.SetLinkBudget("site-a", "site-b", 100_000_000),
        new RelocationProtocol.GetLinks(),
        new RelocationProtocol.RememberLinkBudget(new(new("site-b", "site-a"), 100_000_000, 638_999_000_000_000_000)),
        new RelocationProtocol.LinkBudgetHeld("site-a", new(new("site-a", "site-b"), 0, 1)),
        new SiteEvents.LinkBudgetRemembered(new(new("site-a", "site-c"), 40_000_000, long.MaxValue)),
        new RelocationProtocol.OutgoingStarted("vm1", 1, 2, "r1"),
        new RelocationProtocol.InvalidatedAt("vm1", 1, 17, "r1"),
        new RelocationProtocol.Fence("vm1", 2, "r1"),
        new RelocationProtocol.OwnershipMoved("vm1", 2, "r1"),
        new RelocationProtocol.RelocationDone("vm1", 2, "r1"),
        new RelocationProtocol.Release("vm1", 2, "r1"),
        new RelocationProtocol.Released("vm1", 2, "r1"),
        new RelocationProtocol.HandoverRequested("vm1", "r1"),
        new RelocationProtocol.RelocationEvent(Guid.Parse("01890a5d-ac96-774b-bcce-b302099a8057"), new DateTime(2026, 12, 6, 13, 0, 0, DateTimeKind.Utc),
            "r1", "vm1", "site-a", "site-b", RelocationMode.Hybrid, 3, RelocationEventKind.Started, RelocationPhase.Starting),
        new RelocationProtocol.RelocationEvent(Guid.NewGuid(), DateTime.UnixEpoch, "r1", "vm1", "site-a", "site-b", null, 3,
            RelocationEventKind.Completed, null, HandoverTrigger.Operator, TimeSpan.FromMilliseconds(12_345), new(1 << 30, 1 << 29, 1 << 29, 42), "détail"),
        new RelocationProtocol.RelocationEvent(Guid.NewGuid(), DateTime.UnixEpoch, "r2", "vm1", "b", "c", RelocationMode.Postcopy, 4,
            RelocationEventKind.Handover, RelocationPhase.Fencing, HandoverTrigger.GuestMoved),
    };

    [Fact]
    public void Messages_with_block_runs_round_trip()
    {
        IReadOnlyList<(long, long)> runs = [(0, 3), (100, 1), (long.MaxValue / 4, 2)];
        object[] messages =
        [
            new RelocationProtocol.InvalidateAt("vm1", 1, 5, runs, "r1"),
            new RelocationProtocol.Fenced("vm1", 2, runs, "r1"),
            new RelocationProtocol.TakeOwnershipAt("vm1", 2, runs, "r1"),
            new SiteEvents.DiskFenced("vm1", 2, "site-b", runs, "r1"),
            new RelocationProtocol.RelocationList([new RelocationProtocol.RelocationInfo("a", "x", "y", 1, "postcopy")]),
        ];
        foreach (var m in messages)
        {
            var serializer = (SerializerWithStringManifest)_system.Serialization.FindSerializerFor(m);
            var back = serializer.FromBinary(serializer.ToBinary(m), serializer.Manifest(m));
            Assert.Equal(System.Text.Json.JsonSerializer.Serialize(m, new System.Text.Json.JsonSerializerOptions { IncludeFields = true }),
                System.Text.Json.JsonSerializer.Serialize(back, new System.Text.Json.JsonSerializerOptions { IncludeFields = true }));
        }
    }

    [Fact]
    public void The_admission_queue_messages_and_events_round_trip()
    {
        var queued = new QueuedRelocation("site-b", 638_000_000_000_000_001, true, 40_000_000, false, "r9");
        object[] messages =
        [
            new SiteEvents.RelocationQueued("vm1", queued),
            new SiteEvents.QueueLeft("vm1", "r9"),
            new SiteProtocol.DiskInfo("vm1", 1 << 20, "site-a", 3, "owned", "nbd://127.0.0.1:10811/vm1", Queued: queued),
            new SiteProtocol.DiskList("site-a", [new SiteProtocol.DiskInfo("vm1", 1 << 20, "site-a", 3, "owned", "nbd://a/vm1", Queued: queued),
                new SiteProtocol.DiskInfo("vm2", 1 << 20, "site-a", 3, "owned", "nbd://a/vm2")]),
            new RelocationProtocol.DrainSite("site-a", "site-b", true, 5_000_000, false),
            new RelocationProtocol.DrainAccepted("site-a", "site-b",
                [new RelocationProtocol.RelocationInfo("vm1", "site-a", "site-b", 3, "starting"), new RelocationProtocol.RelocationInfo("vm2", "site-a", "site-b", 1, "queued", 2)],
                [new RelocationProtocol.DrainSkipped("vm3", "already relocating site-a->site-c (serving)")]),
            new RelocationProtocol.RelocationQueued("vm1", "site-a", "site-b", 3, 7),
            new RelocationProtocol.QueueRelocation("vm1", 3, "site-b", 638_000_000_000_000_001, false, 0, true, "r9"),
            new RelocationProtocol.QueuedAt("vm1", 638_000_000_000_000_001, "r9"),
            new RelocationProtocol.QueueRefused("vm1", "r9", "disk 'vm1' is outgoing on site site-a"),
            new RelocationProtocol.Unqueue("vm1", "r9"),
            new RelocationProtocol.Unqueued("vm1", "r9"),
            new RelocationProtocol.RelocationInfo("vm1", "site-a", "site-b", 3, "queued", 4),
            new RelocationProtocol.RelocationList([new RelocationProtocol.RelocationInfo("vm1", "site-a", "site-b", 3, "queued", 4)]),
            new RelocationProtocol.RelocationStatus(new RelocationProtocol.RelocationInfo("vm1", "site-a", "site-b", 3, "queued", 1),
                new RelocationProtocol.DiskProgress("vm1", "queued", 0, 1 << 20, 0, 0, 0, 0, 0, 0, false)),
            new RelocationProtocol.RelocationEvent(Guid.NewGuid(), DateTime.UnixEpoch, "r9", "vm1", "site-a", "site-b", RelocationMode.Hybrid, 3,
                RelocationEventKind.Queued, null, Detail: "waits in the admission queue at place 2"),
        ];
        var json = new System.Text.Json.JsonSerializerOptions { IncludeFields = true };
        foreach (var m in messages)
        {
            var serializer = (SerializerWithStringManifest)_system.Serialization.FindSerializerFor(m);
            Assert.IsType<RelocSerializer>(serializer);
            var back = serializer.FromBinary(serializer.ToBinary(m), serializer.Manifest(m));
            Assert.Equal(System.Text.Json.JsonSerializer.Serialize(m, m.GetType(), json), System.Text.Json.JsonSerializer.Serialize(back, back.GetType(), json));
        }
    }

    /// <summary>The version story: nothing queued is written in the layouts before the queue (SI3, SLR3, RI1, RL1, XS1), which
    /// a node of the version before reads during a rolling upgrade; only a queued disk or relocation needs SI4, SLR4, RI2,
    /// RL2, XS2 (those layouts with the queue's fields appended). Both read back the same.</summary>
    [Fact]
    public void Only_what_is_queued_is_written_in_the_new_layouts()
    {
        var serializer = (SerializerWithStringManifest)_system.Serialization.FindSerializerFor(new SiteEvents.DiskRemoved("x"));
        var info = new SiteProtocol.DiskInfo("vm1", 1 << 20, "site-a", 3, "owned", "nbd://a/vm1", "", 0, 1, true, false, "");
        var queued = info with { Queued = new QueuedRelocation("site-b", 5, false, 0, true, "r5") };
        var running = new RelocationProtocol.RelocationInfo("vm1", "site-a", "site-b", 3, "serving");
        var waiting = new RelocationProtocol.RelocationInfo("vm2", "site-a", "site-b", 3, "queued", 2);
        var progress = new RelocationProtocol.DiskProgress("vm1", "queued", 0, 1 << 20, 0, 0, 0, 0, 0, 0, false);
        (object Message, string Manifest)[] cases =
        [
            (info, "SI3"), (queued, "SI4"),
            (new SiteProtocol.DiskList("site-a", [info]), "SLR3"), (new SiteProtocol.DiskList("site-a", [info, queued]), "SLR4"),
            (running, "RI1"), (waiting, "RI2"),
            (new RelocationProtocol.RelocationList([running]), "RL1"), (new RelocationProtocol.RelocationList([running, waiting]), "RL2"),
            (new RelocationProtocol.RelocationStatus(running, progress), "XS1"), (new RelocationProtocol.RelocationStatus(waiting, progress), "XS2"),
        ];
        var json = new System.Text.Json.JsonSerializerOptions { IncludeFields = true };
        foreach (var (m, manifest) in cases)
        {
            Assert.Equal(manifest, serializer.Manifest(m));
            var back = serializer.FromBinary(serializer.ToBinary(m), manifest);
            Assert.Equal(System.Text.Json.JsonSerializer.Serialize(m, m.GetType(), json), System.Text.Json.JsonSerializer.Serialize(back, back.GetType(), json));
        }
        Assert.Equal(("SQ1", "SQL1"), (serializer.Manifest(new SiteEvents.RelocationQueued("x", new("b", 1, false, 0, true, "r"))),
            serializer.Manifest(new SiteEvents.QueueLeft("x", "r"))));
    }

    [Fact]
    public void The_history_snapshot_round_trips_with_its_events()
    {
        var e = new RelocationProtocol.RelocationEvent(Guid.NewGuid(), DateTime.UnixEpoch, "r1", "vm1", "a", "b", RelocationMode.Hybrid, 3,
            RelocationEventKind.Cancelled, null, Duration: TimeSpan.FromSeconds(3));
        var audit = new History.AuditRecord(Guid.NewGuid(), DateTime.UnixEpoch, "site-a", "alice", History.AuditAuth.Token, "127.0.0.1:5000",
            History.AuditAction.Relocate, "vm1", "relocate vm1 → site-b hybrid", History.AuditOutcome.Refused, 403);
        var snapshot = new History.HistoryProtocol.HistorySnapshot([new(7, e), new(9, e with { Id = Guid.NewGuid(), Kind = RelocationEventKind.Stalled, Detail = "gone" })],
            [new(8, audit)]);
        var serializer = (SerializerWithStringManifest)_system.Serialization.FindSerializerFor(snapshot);
        Assert.IsType<RelocSerializer>(serializer);
        var back = (History.HistoryProtocol.HistorySnapshot)serializer.FromBinary(serializer.ToBinary(snapshot), serializer.Manifest(snapshot));
        Assert.Equal(snapshot.Entries, back.Entries);
        Assert.Equal(snapshot.Audit, back.Audit);
        Assert.Equal(("REV1", "RHS2"), (serializer.Manifest(e), serializer.Manifest(snapshot)));

        // A snapshot taken before the audit (RHS1: its events only) still reads, with no audit records.
        var old = (History.HistoryProtocol.HistorySnapshot)serializer.FromBinary(serializer.ToBinary(snapshot)[..^(4 + 8 + serializer.ToBinary(audit).Length)], "RHS1");
        Assert.Equal(snapshot.Entries, old.Entries);
        Assert.Empty(old.Audit!);
    }

    [Fact]
    public void An_audit_record_round_trips()
    {
        var audit = new History.AuditRecord(Guid.CreateVersion7(), new DateTime(2026, 12, 6, 16, 0, 0, DateTimeKind.Utc), "site-b", "CN=ops ünï",
            History.AuditAuth.Certificate, "[::1]:41000", History.AuditAction.CancelRelocation, "vm2", "cancel the relocation of vm2",
            History.AuditOutcome.Accepted, 200);
        var serializer = (SerializerWithStringManifest)_system.Serialization.FindSerializerFor(audit);
        Assert.IsType<RelocSerializer>(serializer);
        Assert.Equal("RAU1", serializer.Manifest(audit));
        Assert.Equal(audit, serializer.FromBinary(serializer.ToBinary(audit), "RAU1"));
    }

    [Fact]
    public void Events_written_in_their_first_layout_still_read()
    {
        var serializer = (SerializerWithStringManifest)_system.Serialization.FindSerializerFor(new SiteEvents.DiskRemoved("x"));
        byte[] Layout(Action<BinaryWriter> write)
        {
            using var ms = new MemoryStream();
            using (var w = new BinaryWriter(ms)) write(w);
            return ms.ToArray();
        }
        var fenced = serializer.FromBinary(Layout(w => { w.Write("vm1"); w.Write(4L); }), "SF1");
        Assert.Equal(new SiteEvents.DiskFenced("vm1", 4), fenced);
        var incoming = serializer.FromBinary(Layout(w => { w.Write("vm1"); w.Write(1L << 30); w.Write("/d/vm1.img"); w.Write("nbd://x/vm1"); w.Write(3L); }), "SIA1");
        Assert.Equal(new SiteEvents.IncomingAdded("vm1", 1 << 30, "/d/vm1.img", "nbd://x/vm1", 3), incoming);
        // Before the arrival options were kept: null (SiteState resumes such an arrival hybrid, uncapped, with prefetch).
        var sia3 = serializer.FromBinary(Layout(w => { w.Write("vm1"); w.Write(1L << 30); w.Write("/d/vm1.img"); w.Write("nbd://x/vm1"); w.Write(3L); w.Write("a"); w.Write("j"); w.Write("r1"); }), "SIA3");
        Assert.Equal(new SiteEvents.IncomingAdded("vm1", 1 << 30, "/d/vm1.img", "nbd://x/vm1", 3, "a", "j", "r1"), sia3);
        Assert.Equal(new SiteEvents.OutgoingEnded("vm1"), serializer.FromBinary(Layout(w => w.Write("vm1")), "SOE1"));
    }

    [Fact]
    public void Disk_list_round_trips()
    {
        var list = new SiteProtocol.DiskList("site-b", [
            new SiteProtocol.DiskInfo("a", 1, "site-b", 1, "owned", "nbd://x/a"),
            new SiteProtocol.DiskInfo("b", 2, "site-b", 2, "owned", "nbd://x/b")]);
        var serializer = (SerializerWithStringManifest)_system.Serialization.FindSerializerFor(list);
        var back = (SiteProtocol.DiskList)serializer.FromBinary(serializer.ToBinary(list), serializer.Manifest(list));
        Assert.Equal(list.Site, back.Site);
        Assert.Equal(list.Disks, back.Disks);
    }

    /// <summary>The version story of the remembered link budgets: a disk list with some is SLR5 (SLR4's layout with them
    /// appended); one without is SLR3/SLR4 as before, which a node of the version before reads; SLR3 and SLR4 from such a
    /// node read back with none (null).</summary>
    [Fact]
    public void A_disk_list_carries_the_remembered_link_budgets_only_in_its_new_layout()
    {
        var serializer = (SerializerWithStringManifest)_system.Serialization.FindSerializerFor(new SiteEvents.DiskRemoved("x"));
        var info = new SiteProtocol.DiskInfo("vm1", 1 << 20, "site-a", 3, "owned", "nbd://a/vm1", "", 0, 1, true, false, "");
        var queued = info with { Name = "vm2", Queued = new QueuedRelocation("site-b", 5, false, 0, true, "r5") };
        RememberedBudget[] links = [new(new("site-a", "site-b"), 40_000_000, 7), new(new("site-a", "site-c"), 0, 9)];
        foreach (var disks in new[] { new[] { info }, [info, queued], [] })
        {
            var list = new SiteProtocol.DiskList("site-a", disks, links);
            Assert.Equal("SLR5", serializer.Manifest(list));
            var back = (SiteProtocol.DiskList)serializer.FromBinary(serializer.ToBinary(list), "SLR5");
            Assert.Equal(disks, back.Disks);
            Assert.Equal(links, back.Links);
        }
        // None remembered: the layouts before, and what they read back has none.
        foreach (var (list, manifest) in new[] { (new SiteProtocol.DiskList("site-a", [info], []), "SLR3"), (new SiteProtocol.DiskList("site-a", [info, queued]), "SLR4") })
        {
            Assert.Equal(manifest, serializer.Manifest(list));
            var back = (SiteProtocol.DiskList)serializer.FromBinary(serializer.ToBinary(list), manifest);
            Assert.Equal(list.Disks, back.Disks);
            Assert.Null(back.Links);
        }
        Assert.Equal(("LR1", "LH1", "SLB1"), (serializer.Manifest(new RelocationProtocol.RememberLinkBudget(links[0])),
            serializer.Manifest(new RelocationProtocol.LinkBudgetHeld("site-a", links[0])), serializer.Manifest(new SiteEvents.LinkBudgetRemembered(links[0]))));
        // A pair that names one site twice is corrupt: a clear error, not a budget.
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms)) { w.Write("site-a"); w.Write("site-a"); w.Write(1L); w.Write(1L); }
        Assert.Throws<InvalidDataException>(() => serializer.FromBinary(ms.ToArray(), "SLB1"));
    }

    [Fact]
    public void Link_list_round_trips_with_its_shares()
    {
        var info = new RelocationProtocol.LinkInfo("site-a", "site-b", 20_000_000, true,
            [new("vm1", "site-a", "site-b", 1, 0, 10_000_000), new("vm2", "site-b", "site-a", 3, 5_000_000, 5_000_000)]);
        var list = new RelocationProtocol.LinkList([info, new("site-a", "site-c", 0, false, [])]);
        var serializer = (SerializerWithStringManifest)_system.Serialization.FindSerializerFor(list);
        var back = (RelocationProtocol.LinkList)serializer.FromBinary(serializer.ToBinary(list), serializer.Manifest(list));
        Assert.Equal(2, back.Links.Count);
        Assert.Equal(info with { Shares = [] }, back.Links[0] with { Shares = [] });
        Assert.Equal(info.Shares, back.Links[0].Shares);
        Assert.Empty(back.Links[1].Shares);
        var one = (RelocationProtocol.LinkInfo)serializer.FromBinary(serializer.ToBinary(info), serializer.Manifest(info));
        Assert.Equal(info.Shares, one.Shares);
        Assert.Equal(("LL1", "LI1"), (serializer.Manifest(list), serializer.Manifest(info)));
    }

    [Theory]
    [MemberData(nameof(Messages))]
    public void Round_trips_through_the_bound_serializer(object message)
    {
        var serializer = _system.Serialization.FindSerializerFor(message);
        Assert.IsType<RelocSerializer>(serializer);
        var manifest = Akka.Serialization.Serialization.ManifestFor(serializer, message);
        var back = _system.Serialization.Deserialize(serializer.ToBinary(message), serializer.Identifier, manifest);
        Assert.Equal(message, back);
    }

    [Fact]
    public void Snapshot_round_trips_with_its_map()
    {
        var state = new DiskState(10L << 20, 65536);
        state.Apply(new DiskEvents.BlocksLanded(3, 40, LandKind.Fetched, 40 * 65536));
        state.Apply(new DiskEvents.BlocksLanded(100, 20, LandKind.Skipped, 20 * 65536));
        var snap = state.ToSnapshot();
        var serializer = (SerializerWithStringManifest)_system.Serialization.FindSerializerFor(snap);
        var back = (DiskSnapshot)serializer.FromBinary(serializer.ToBinary(snap), serializer.Manifest(snap));
        var restored = new DiskState(10L << 20, 65536);
        restored.Restore(back);
        Assert.Equal(state.Map.LocalCount, restored.Map.LocalCount);
        Assert.Equal((state.FetchedBytes, state.SkippedBytes), (restored.FetchedBytes, restored.SkippedBytes));
        for (long b = 0; b < state.Map.BlockCount; b++) Assert.Equal(state.Map.IsLocal(b), restored.Map.IsLocal(b));
    }

    [Fact]
    public void Unknown_manifest_is_a_clear_error()
    {
        var serializer = new RelocSerializer((ExtendedActorSystem)_system);
        var ex = Assert.Throws<System.Runtime.Serialization.SerializationException>(() => serializer.FromBinary([], "XX9"));
        Assert.Contains("XX9", ex.Message);
    }
}
