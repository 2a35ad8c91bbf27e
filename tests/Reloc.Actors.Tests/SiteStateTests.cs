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
        Assert.True(s.TryGet("vm", out var d) && d.Phase == SiteDisk.Outgoing);
        s.Apply(new SiteEvents.DiskRemoved("vm"));
        var ex = Assert.Throws<InvalidOperationException>(() => s.Apply(new SiteEvents.OutgoingEnded("vm")));
        Assert.Contains("'vm'", ex.Message);
        Assert.Throws<InvalidOperationException>(() => s.Apply(new SiteEvents.DiskFenced("other", 2, "site-b", [], "r1")));
    }
}
