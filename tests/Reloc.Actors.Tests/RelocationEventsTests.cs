using RelocationMode = Reloc.Management.RelocationMode;
using Reloc.Actors.Coordinator;
using Xunit;
using static Reloc.Actors.Coordinator.CoordinatorInput;
using static Reloc.Actors.Coordinator.RelocationPhase;
using static Reloc.Actors.Coordinator.RelocationProtocol;
using static Reloc.Actors.Site.SiteProtocol;

namespace Reloc.Actors.Tests;

/// <summary>The lifecycle events of a relocation: which move of a flow is which event (a table), what the core decides
/// along whole relocations (sequences of inputs, as <see cref="CoordinatorCoreTests"/>), and the log line of each.</summary>
public sealed class RelocationEventsTests
{
    public static TheoryData<string, RelocationPhase?, FlowEvent, RelocationPhase?, RelocationEventKind?> Kinds => new()
    {
        { "accepted", null, FlowEvent.Accepted, Starting, RelocationEventKind.Started },
        { "adopted by a coordinator that took over", null, FlowEvent.Adopted, Serving, RelocationEventKind.Adopted },
        { "the source tracks", Starting, FlowEvent.OutgoingStarted, Preparing, RelocationEventKind.PhaseChanged },
        { "the handover", Serving, FlowEvent.Handover, Fencing, RelocationEventKind.Handover },
        { "owned at the destination", Transferring, FlowEvent.OwnershipMoved, Postcopy, RelocationEventKind.PhaseChanged },
        { "released: completed", Releasing, FlowEvent.Released, null, RelocationEventKind.Completed },
        { "the operator's cancel", Serving, FlowEvent.Cancel, Cancelling, RelocationEventKind.PhaseChanged },
        { "the cancel again: nothing new", Cancelling, FlowEvent.Cancel, Cancelling, null },
        { "a step resent: nothing new", Starting, FlowEvent.StepResent, Starting, null },
        { "the copy dropped: cancelled", Cancelling, FlowEvent.IncomingDropped, null, RelocationEventKind.Cancelled },
        { "the source stopped, destination gone: cancelled", Cancelling, FlowEvent.OutgoingStoppedDestinationGone, null, RelocationEventKind.Cancelled },
        { "the sites show it over past the handover: completed", Postcopy, FlowEvent.SitesShowOver, null, RelocationEventKind.Completed },
        { "... while cancelling: cancelled", Cancelling, FlowEvent.SitesShowOver, null, RelocationEventKind.Cancelled },
        { "... before the handover: the source kept it", Serving, FlowEvent.SitesShowOver, null, RelocationEventKind.Cancelled },
        { "another attempt at the sites: superseded", Serving, FlowEvent.OtherAttempt, null, RelocationEventKind.Superseded },
        { "the sites are ahead", Serving, FlowEvent.SitesShow, Postcopy, RelocationEventKind.PhaseChanged },
        { "the sites agree", Serving, FlowEvent.SitesShow, Serving, null },
    };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void A_move_is_an_event(string what, RelocationPhase? from, FlowEvent e, RelocationPhase? to, RelocationEventKind? expected) =>
        Assert.True(expected == RelocationEvents.KindOf(from, e, to), $"{what}: expected {expected}, got {RelocationEvents.KindOf(from, e, to)}");

    [Fact]
    public void Every_transition_of_the_table_that_changes_something_is_an_event()
    {
        foreach (var t in FlowTransitions.Table.Where(t => t.From != t.To))
            Assert.True(RelocationEvents.KindOf(t.From, t.Event, t.To) is not null, $"{t} is no event");
    }

    private static DateTime T(double seconds) => new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc).AddSeconds(seconds);
    private static readonly string[] Sites = ["a", "b", "c"];
    private static DiskInfo Owned(long epoch) => new("vm", 1 << 20, "a", epoch, "owned", "nbd://a:10809/vm", "", 0, 0, true, false, "");
    private static CoordinatorInput Ask(bool hybrid = false) => new CoordinatorInput.Relocate(new RelocationProtocol.Relocate("vm", "b", hybrid), "op", Sites);
    private static CoordinatorInput Found(bool hybrid = false) =>
        new CoordinatorInput.Found(new RelocationProtocol.Relocate("vm", "b", hybrid), "op", [new DiskList("a", [Owned(3)]), new DiskList("b", []), new DiskList("c", [])], T(0));
    private static CoordinatorInput Site(object m, double t) => new FromSite(m, "a site", T(t));
    private static readonly CoordinatorInput[] Idle = [Ask(), Found(), Site(new OutgoingStarted("vm", 3, 0, "r1"), 1)];
    private static readonly CoordinatorInput[] Busy = [Ask(true), Found(true), Site(new OutgoingStarted("vm", 3, 1, "r1"), 1), Site(new IncomingPrepared("vm", 3, "r1"), 2)];

    /// <summary>The lifecycle decisions on the last input, as "kind phase [trigger] [duration]".</summary>
    public static TheoryData<string, CoordinatorInput[], string[]> Sequences => new()
    {
        { "accepted: started, postcopy", [Ask(), Found()], ["Started starting postcopy"] },
        { "hybrid", [Ask(true), Found(true)], ["Started starting hybrid"] },
        { "an idle source: serving, then the handover at once, in that order",
            [.. Idle, Site(new IncomingPrepared("vm", 3, "r1"), 2)], ["PhaseChanged serving", "Handover fencing SourceIdle"] },
        { "a write at the destination", [.. Busy, Site(new HandoverRequested("vm", "r1"), 3)], ["Handover fencing WriteAtDestination"] },
        { "the guest moved", [.. Busy, Site(new GuestClients("vm", "b", 1), 3), Site(new GuestClients("vm", "a", 0), 4)], ["Handover fencing GuestMoved"] },
        { "the operator", [.. Busy, new Command(new RequestHandover("vm"), "op", T(3))], ["Handover fencing Operator"] },
        { "completed, with its duration from the start",
            [.. Busy, new Command(new RequestHandover("vm"), "op", T(3)), Site(new Fenced("vm", 4, [], "r1"), 4),
                Site(new RelocationDone("vm", 4, "r1"), 5), Site(new Released("vm", 4, "r1"), 6.5)], ["Completed - 6.5s"] },
        { "cancelled", [.. Busy, new Command(new CancelRelocation("vm"), "op", T(3)), Site(new OutgoingStopped("vm", 3, "r1"), 4), Site(new IncomingDropped("vm", 3, "r1"), 5)],
            ["Cancelled - 5s"] },
        { "a cancel is a phase change", [.. Busy, new Command(new CancelRelocation("vm"), "op", T(3))], ["PhaseChanged cancelling"] },
        { "the destination left the cluster: stalled", [.. Busy, new Tick(T(3), ["a", "c"])], ["Stalled serving"] },
        { "a coordinator that took over adopts it",
            [new Observed([new DiskList("a", [new("vm", 1 << 20, "a", 3, "outgoing", "nbd://a:10809/vm", "b", 0, 1, true, false, "r1")]), new DiskList("b", [])], T(0), T(0.1))],
            ["Adopted preparing"] },
    };

    [Theory]
    [MemberData(nameof(Sequences))]
    public void The_core_reports_the_lifecycle(string what, CoordinatorInput[] inputs, string[] expected)
    {
        int ids = 0;
        var core = new CoordinatorCore(TimeSpan.FromSeconds(2), () => "r" + ++ids);
        IReadOnlyList<CoordinatorDecision> last = [];
        foreach (var input in inputs) last = core.Handle(input);
        var said = last.OfType<CoordinatorDecision.Lifecycle>().Select(Show).ToList();
        Assert.True(expected.SequenceEqual(said), $"{what}: expected [{string.Join(" | ", expected)}], decided [{string.Join(" | ", said)}]");
        Assert.All(last.OfType<CoordinatorDecision.Lifecycle>(), l => Assert.Equal(("r1", "vm", "a", "b", 3L), (l.Relocation, l.Disk, l.From, l.To, l.Epoch)));
    }

    private static string Show(CoordinatorDecision.Lifecycle l) => string.Join(" ", new[]
    {
        l.Kind.ToString(), l.Phase?.Name() ?? "-",
        l.Kind == RelocationEventKind.Started ? l.Mode?.Name() : null,
        l.Trigger?.ToString(),
        l.Duration is { } d ? $"{d.TotalSeconds}s" : null,
    }.OfType<string>());

    private static readonly Guid Id = Guid.Parse("01890a5d-ac96-774b-bcce-b302099a8057");
    private static RelocationEvent Event(RelocationEventKind kind, RelocationPhase? phase = null) =>
        new(Id, T(0), "r1", "vm1", "site-a", "site-b", RelocationMode.Hybrid, 3, kind, phase);

    public static TheoryData<RelocationEvent, string> Lines => new()
    {
        { Event(RelocationEventKind.Started, Starting), "relocation r1 of vm1 site-a→site-b started (hybrid, epoch 3)" },
        { Event(RelocationEventKind.Handover, Fencing) with { Trigger = HandoverTrigger.GuestMoved },
            "relocation r1 of vm1 site-a→site-b: handover (the source's last client left after a client connected at the destination) at epoch 4" },
        { Event(RelocationEventKind.Completed) with { Duration = TimeSpan.FromSeconds(12.34), Totals = new(1 << 20, 700_000, 300_000, 17) },
            "relocation r1 of vm1 site-a→site-b completed in 12.3 s: 700000 bytes fetched, 300000 skipped, 17 misses (1048576 bytes in all)" },
        { Event(RelocationEventKind.Completed) with { Duration = TimeSpan.FromSeconds(2) },
            "relocation r1 of vm1 site-a→site-b completed in 2.0 s: its figures were not reported by the destination" },
        { Event(RelocationEventKind.Cancelled) with { Duration = TimeSpan.FromSeconds(3) }, "relocation r1 of vm1 site-a→site-b cancelled after 3.0 s; site-a owns it at epoch 3" },
        { Event(RelocationEventKind.Stalled, Serving) with { Detail = "site site-b is not in the cluster" },
            "relocation r1 of vm1 site-a→site-b stalled (serving): site site-b is not in the cluster" },
    };

    [Theory]
    [MemberData(nameof(Lines))]
    public void Each_event_is_one_log_line(RelocationEvent e, string line) => Assert.Equal(line, e.Describe());
}
