using Reloc.Actors.Site;
using Xunit;

namespace Reloc.Actors.Tests;

public sealed class SiteStateTests
{
    [Fact]
    public void A_relocation_event_for_a_disk_the_journal_does_not_hold_is_refused()
    {
        var s = new SiteState();
        s.Apply(new SiteEvents.DiskAdded("vm", 1 << 20, "/data/vm.img", 1));
        s.Apply(new SiteEvents.OutgoingBegun("vm", 1, "site-b", "r1"));
        Assert.True(s.TryGet("vm", out var d) && d.Phase == DiskPhase.Outgoing);
        s.Apply(new SiteEvents.OutgoingEnded("vm", "r1"));
        s.Apply(new SiteEvents.DiskRemoved("vm"));
        var ex = Assert.Throws<InvalidOperationException>(() => s.Apply(new SiteEvents.OutgoingEnded("vm")));
        Assert.Contains("'vm'", ex.Message);
        Assert.Throws<InvalidOperationException>(() => s.Apply(new SiteEvents.DiskFenced("other", 2, "site-b", [], "r1")));
    }

    public static TheoryData<object[], object> Impossible => new()
    {
        { [new SiteEvents.DiskAdded("vm", 1, "/d", 1)], new SiteEvents.DiskAdded("vm", 1, "/d", 1) },
        { [new SiteEvents.DiskAdded("vm", 1, "/d", 1)], new SiteEvents.DiskFenced("vm", 2, "b", [], "r1") },
        { [new SiteEvents.DiskAdded("vm", 1, "/d", 1)], new SiteEvents.ArrivalRateSet("vm", 5) },
        { [new SiteEvents.IncomingAdded("vm", 1, "/d", "nbd://a/vm", 1, "a", "j", "r1")], new SiteEvents.OutgoingBegun("vm", 1, "b", "r2") },
        { [new SiteEvents.DiskAdded("vm", 1, "/d", 1), new SiteEvents.OutgoingBegun("vm", 1, "b", "r1")], new SiteEvents.OutgoingBegun("vm", 1, "c", "r2") },
        { [new SiteEvents.DiskAdded("vm", 1, "/d", 1), new SiteEvents.OutgoingBegun("vm", 1, "b", "r1")], new SiteEvents.DiskRemoved("vm") },
        { [new SiteEvents.DiskAdded("vm", 1, "/d", 1), new SiteEvents.OutgoingBegun("vm", 1, "b", "r1"), new SiteEvents.DiskFenced("vm", 2, "b", [], "r1")], new SiteEvents.OutgoingEnded("vm", "r1") },
    };

    /// <summary>Only the transitions of <see cref="SiteState.Transitions"/>: any other event is a corrupt journal.</summary>
    [Theory]
    [MemberData(nameof(Impossible))]
    public void An_event_the_phase_does_not_allow_is_refused(object[] journal, object impossible)
    {
        var s = new SiteState();
        foreach (var e in journal) s.Apply(e);
        var ex = Assert.Throws<InvalidOperationException>(() => s.Apply(impossible));
        Assert.Contains("'vm'", ex.Message);
    }
}
