using Reloc.Actors.Coordinator;
using Xunit;
using Xunit.Abstractions;
using static Reloc.Actors.Coordinator.RelocationPhase;

namespace Reloc.Actors.Tests;

/// <summary>The coordinator's one table of phase changes (<see cref="FlowTransitions"/>), and README's diagram of it.</summary>
public sealed class FlowTransitionsTests(ITestOutputHelper output)
{
    /// <summary>(phase, event) → where it goes; "refused" when the table has no such move, "ends" when the flow ends.</summary>
    public static TheoryData<string, RelocationPhase, FlowEvent, string> Moves => new()
    {
        { "tracking started: the destination is prepared next", Starting, FlowEvent.OutgoingStarted, "preparing" },
        { "an answer out of order changes nothing", Starting, FlowEvent.IncomingPrepared, "refused" },
        { "the handover waits for the destination to serve", Preparing, FlowEvent.Handover, "refused" },
        { "the handover", Serving, FlowEvent.Handover, "fencing" },
        { "fenced: ownership moves next", Fencing, FlowEvent.Fenced, "transferring" },
        { "a disk pre-copied in full completes as it is owned", Transferring, FlowEvent.RelocationDone, "releasing" },
        { "complete: the source is released", Postcopy, FlowEvent.RelocationDone, "releasing" },
        { "released: the flow ends", Releasing, FlowEvent.Released, "ends" },
        { "a cancel before the handover", Serving, FlowEvent.Cancel, "cancelling" },
        { "a cancel asked again", Cancelling, FlowEvent.Cancel, "cancelling" },
        { "no cancel past the handover", Fencing, FlowEvent.Cancel, "refused" },
        { "no cancel past the handover (postcopy)", Postcopy, FlowEvent.Cancel, "refused" },
        { "the source stopped: the destination drops next", Cancelling, FlowEvent.OutgoingStopped, "cancelling" },
        { "the source stopped and the destination is gone: the cancel ends", Cancelling, FlowEvent.OutgoingStoppedDestinationGone, "ends" },
        { "dropped: the cancel ends", Cancelling, FlowEvent.IncomingDropped, "ends" },
        { "a lost first step is sent again", Starting, FlowEvent.StepResent, "starting" },
        { "a flow the sites do not show yet is not over", Starting, FlowEvent.SitesShowOver, "refused" },
        { "a flow the sites show over ends", Postcopy, FlowEvent.SitesShowOver, "ends" },
        { "another attempt at the sites replaces the flow", Serving, FlowEvent.OtherAttempt, "ends" },
    };

    [Theory]
    [MemberData(nameof(Moves))]
    public void Moves_a_flow(string what, RelocationPhase from, FlowEvent e, string expected)
    {
        var actual = !FlowTransitions.Allows(from, e) ? "refused" : FlowTransitions.Next(from, e)?.Name() ?? "ends";
        Assert.True(expected == actual, $"{what}: {from.Name()} on {e}: expected {expected}, got {actual}");
    }

    /// <summary>(phase, the sites show) → whether a judged round follows them.</summary>
    public static TheoryData<RelocationPhase, RelocationPhase, bool> Shown => new()
    {
        { Starting, Preparing, true },     // OutgoingStarted got lost
        { Fencing, Serving, true },        // the fence got lost: the trigger is judged again
        { Transferring, Releasing, true }, // two answers lost
        { Cancelling, Fencing, true },     // the handover won the race with the cancel
        { Cancelling, Serving, false },    // the stop has not arrived: sent again, the cancel does not go back
        { Cancelling, Preparing, false },
        { Serving, Starting, false },      // the sites never show a source that has told nothing
    };

    [Theory]
    [MemberData(nameof(Shown))]
    public void A_judged_round_follows_the_sites_except_back_out_of_a_cancel(RelocationPhase flow, RelocationPhase sites, bool follows) =>
        Assert.Equal(follows, FlowTransitions.Allows(flow, FlowEvent.SitesShow, sites));

    [Fact]
    public void Every_event_but_the_sites_choice_has_one_target_per_phase()
    {
        var ambiguous = FlowTransitions.Table.Where(t => t.From is not null && t.Event is not FlowEvent.SitesShow)
            .GroupBy(t => (t.From, t.Event)).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        Assert.Empty(ambiguous);
    }

    [Fact]
    public void Every_phase_is_reached_by_the_protocol_and_leads_to_an_end_without_the_sites_help()
    {
        var steps = FlowTransitions.Table.Where(t => !FlowTransitions.FollowsTheSites(t.Event)).ToList();
        var reached = Closure(null, steps.Select(t => (t.From, t.To)));
        var every = new HashSet<RelocationPhase?> { null };
        foreach (var phase in Enum.GetValues<RelocationPhase>()) every.Add(phase);
        Assert.Equal(every, reached);
        foreach (var phase in Enum.GetValues<RelocationPhase>())
            Assert.Contains(null, Closure(phase, steps.Select(t => (t.From, t.To))));
    }

    private static HashSet<RelocationPhase?> Closure(RelocationPhase? from, IEnumerable<(RelocationPhase? From, RelocationPhase? To)> edges)
    {
        var list = edges.ToList();
        var seen = new HashSet<RelocationPhase?>();
        var next = new Queue<RelocationPhase?>([from]);
        while (next.TryDequeue(out var at))
            foreach (var (_, to) in list.Where(e => e.From == at))
                if (seen.Add(to) && to is not null) next.Enqueue(to);
        return seen;
    }

    [Fact]
    public void README_shows_the_diagram_the_table_generates() =>
        ReadmeDiagram.AssertShows("coordinator", FlowTransitions.Diagram(), "FlowTransitions.Table", output);
}
