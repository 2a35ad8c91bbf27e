using Reloc.Actors.Coordinator;
using Reloc.Actors.Site;
using Xunit;
using static Reloc.Actors.Coordinator.RelocationProtocol;
using static Reloc.Actors.Site.SiteProtocol;

namespace Reloc.Actors.Tests;

/// <summary>What a coordinator that just took over concludes from the sites' disk lists alone.</summary>
public sealed class ReconcilerTests
{
    private static DiskInfo Disk(string site, string phase, long epoch, string peer = "", bool writable = false, int clients = 0, bool wanted = false, string relocation = "r1") =>
        new("vm", 1 << 20, site, epoch, phase, $"nbd://{site}:10809/vm", peer, 0, clients, writable, wanted, phase == "owned" ? "" : relocation);

    private static Reconciler.Derived One(params DiskList[] lists) => Assert.Single(Reconciler.Derive(lists));

    private static DiskList At(string site, params DiskInfo[] disks) => new(site, disks);

    [Fact]
    public void A_disk_owned_at_one_site_is_not_relocating() =>
        Assert.Empty(Reconciler.Derive([At("a", Disk("a", "owned", 3)), At("b")]));

    [Fact]
    public void A_source_tracking_writes_for_a_destination_that_has_nothing_yet_is_preparing()
    {
        var d = One(At("a", Disk("a", "outgoing", 3, "b")), At("b"));
        Assert.Equal(new RelocationInfo("vm", "a", "b", 3, Reconciler.Preparing), d.Info);
        Assert.Null(d.Anomaly);
    }

    [Fact]
    public void Both_sides_up_before_handover_is_serving_and_a_trigger_is_seen()
    {
        var quiet = One(At("a", Disk("a", "outgoing", 3, "b", clients: 1)), At("b", Disk("b", "incoming", 3, "a")));
        Assert.Equal((Reconciler.Serving, false), (quiet.Info.Phase, quiet.Handover));
        Assert.True(One(At("a", Disk("a", "outgoing", 3, "b", clients: 1)), At("b", Disk("b", "incoming", 3, "a", wanted: true))).Handover);
        Assert.True(One(At("a", Disk("a", "outgoing", 3, "b", clients: 0)), At("b", Disk("b", "incoming", 3, "a", clients: 1))).Handover);
    }

    [Fact]
    public void A_fenced_source_and_a_destination_not_yet_owning_repeat_the_fence()
    {
        var d = One(At("a", Disk("a", "fenced", 4, "b")), At("b", Disk("b", "incoming", 3, "a")));
        Assert.Equal(new RelocationInfo("vm", "a", "b", 3, Reconciler.Fencing), d.Info);
        Assert.Equal((new Fence("vm", 4, "r1"), "a"), (d.Step, d.StepTo)); // the source answers with its stored final dirty set
    }

    [Fact]
    public void After_the_handover_the_relocation_only_goes_forward()
    {
        var post = One(At("a", Disk("a", "fenced", 4, "b")), At("b", Disk("b", "incoming", 3, "a", writable: true)));
        Assert.Equal((Reconciler.Postcopy, (object?)null), (post.Info.Phase, post.Step));
        var done = One(At("a", Disk("a", "fenced", 4, "b")), At("b", Disk("b", "owned", 4)));
        Assert.Equal((Reconciler.Releasing, (object?)new Release("vm", 4, "r1"), "a"), (done.Info.Phase, done.Step, done.StepTo));
    }

    /// <summary>F16 (found by the model, seed 25995): a zombie coordinator's round held the destination's answer from
    /// before the disk left it and came back (owned at epoch 2) and the source's from after the handover (fenced at 4):
    /// releasing the source then deleted the disk's only complete copy. Only an answer from the handover's epoch on counts.</summary>
    [Fact]
    public void A_destination_answer_from_before_the_handover_releases_nothing()
    {
        var stale = One(At("a", Disk("a", "fenced", 4, "c", relocation: "r3")), At("c", Disk("c", "owned", 2)));
        Assert.Equal((Reconciler.Transferring, (object?)null), (stale.Info.Phase, stale.Step));
        Assert.NotNull(stale.Anomaly);
        var movedOn = One(At("a", Disk("a", "fenced", 4, "c", relocation: "r3")), At("c", Disk("c", "owned", 5)));
        Assert.Equal(Reconciler.Releasing, movedOn.Info.Phase);
    }

    [Fact]
    public void A_half_done_cancel_drops_the_destination_copy()
    {
        var d = One(At("a", Disk("a", "owned", 3)), At("b", Disk("b", "incoming", 3, "a")));
        // The source confirms first (a source that fenced meanwhile refuses), then the copy is dropped.
        Assert.Equal((Reconciler.Cancelling, (object?)new StopOutgoing("vm", 3, "r1"), "a", "b"), (d.Info.Phase, d.Step, d.StepTo, d.DropAt));
    }

    [Fact]
    public void Nothing_is_concluded_about_a_site_that_did_not_answer()
    {
        Assert.Empty(Reconciler.Derive([At("a", Disk("a", "outgoing", 3, "b"))]));           // b silent
        Assert.Empty(Reconciler.Derive([At("b", Disk("b", "incoming", 3, "a"))]));           // a silent
    }

    [Fact]
    public void Impossible_combinations_are_reported_not_acted_on()
    {
        var lost = One(At("a", Disk("a", "fenced", 4, "b")), At("b"));
        Assert.NotNull(lost.Anomaly);
        Assert.Null(lost.Step);
    }

    [Fact]
    public void A_copy_its_source_no_longer_sends_is_dropped_and_so_is_another_attempts_copy()
    {
        var orphan = One(At("a"), At("b", Disk("b", "incoming", 3, "a")));
        Assert.Equal((Reconciler.Cancelling, (object?)new StopOutgoing("vm", 3, "r1"), "a", "b"), (orphan.Info.Phase, orphan.Step, orphan.StepTo, orphan.DropAt));
        var other = One(At("a", Disk("a", "outgoing", 3, "b", relocation: "r2")), At("b", Disk("b", "incoming", 3, "a", relocation: "r1")));
        Assert.Equal((Reconciler.Preparing, (object?)new StopOutgoing("vm", 3, "r1"), "a", "b", "r2"), (other.Info.Phase, other.Step, other.StepTo, other.DropAt, other.Relocation));
        // ... but never a copy that owns the disk.
        var owning = One(At("a"), At("b", Disk("b", "incoming", 3, "a", writable: true)));
        Assert.Equal((Reconciler.Postcopy, (object?)null), (owning.Info.Phase, owning.Step));
    }

    /// <summary>The one handover trigger: (write at the destination, source clients, destination has clients, idle) → fires?</summary>
    [Theory]
    [InlineData(true, 1, false, false, true)]
    [InlineData(false, 0, true, false, true)]   // the VM moved
    [InlineData(false, 0, false, false, false)] // no guest seen once: a restarted source's VM may be reconnecting
    [InlineData(false, 0, false, true, true)]   // idle since tracking began (or for several rounds)
    [InlineData(false, -1, true, false, false)] // the source's count unknown
    [InlineData(false, 1, true, false, false)]
    public void The_handover_trigger(bool write, int sourceClients, bool destinationClients, bool idle, bool fires) =>
        Assert.Equal(fires, Reconciler.TriggerOf(write, sourceClients, destinationClients, idle) is not null);

    [Fact]
    public void The_owner_is_the_copy_that_accepts_writes()
    {
        Assert.Equal("b", Reconciler.OwnerOf([Disk("a", "fenced", 4, "b"), Disk("b", "incoming", 3, "a", writable: true)])?.Site);
        Assert.Equal("a", Reconciler.OwnerOf([Disk("a", "outgoing", 3, "b", writable: true), Disk("b", "incoming", 3, "a")])?.Site);
        Assert.Null(Reconciler.OwnerOf([Disk("a", "fenced", 4, "b"), Disk("b", "incoming", 3, "a")])); // mid-handover
    }

    [Fact]
    public void An_import_from_a_foreign_server_is_no_relocation() =>
        Assert.Empty(Reconciler.Derive([At("b", Disk("b", "incoming", 1, "", writable: true))]));
}

/// <summary>The source's block runs stay within one remoting frame, and never cover less than was written.</summary>
public sealed class CoarsenTests
{
    [Fact]
    public void Runs_are_merged_and_past_the_limit_joined_never_dropped()
    {
        Assert.Equal([(0L, 5L), (10L, 1L)], Reloc.Actors.Site.Core.SourceSide.Coarsen([(3, 2), (0, 3), (10, 1), (4, 1)]));
        var scattered = Enumerable.Range(0, 20_000).Select(i => ((long)i * 3, 1L)).ToList();
        var coarse = Reloc.Actors.Site.Core.SourceSide.Coarsen(scattered);
        Assert.InRange(coarse.Count, 1, 4096);
        foreach (var (first, _) in scattered)
            Assert.Contains(coarse, r => r.First <= first && first < r.First + r.Count);
    }
}
