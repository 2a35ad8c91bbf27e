using static Reloc.Actors.Coordinator.RelocationPhase;

namespace Reloc.Actors.Coordinator;

/// <summary>What moves a relocation's phase at the coordinator: a site's answer, a decision of the coordinator, or
/// a reconcile round.</summary>
public enum FlowEvent
{
    /// <summary>The operator's relocation was accepted (the flow begins).</summary>
    Accepted,
    OutgoingStarted,
    IncomingPrepared,
    /// <summary>A handover trigger held (<see cref="Reconciler.TriggerOf"/>), or the operator asked for it.</summary>
    Handover,
    Fenced,
    OwnershipMoved,
    RelocationDone,
    Released,
    /// <summary>The operator's cancel.</summary>
    Cancel,
    /// <summary>The source stopped sending: the destination drops its copy next.</summary>
    OutgoingStopped,
    /// <summary>The source stopped sending and the destination is not in the cluster: nothing is left to wait for
    /// (its copy is dropped by the reconcile rules when it comes back).</summary>
    OutgoingStoppedDestinationGone,
    IncomingDropped,
    /// <summary>A reconcile round showed a relocation the coordinator did not know (it just took over).</summary>
    Adopted,
    /// <summary>A reconcile round judged the flow: the sites' phase replaces the coordinator's.</summary>
    SitesShow,
    /// <summary>A reconcile round showed nothing of the flow any more at its sites (finished, or cancelled).</summary>
    SitesShowOver,
    /// <summary>A reconcile round showed another attempt at the sites: theirs replaces this flow.</summary>
    OtherAttempt,
    /// <summary>A reconcile round found the phase's step lost: it is sent again.</summary>
    StepResent,
}

/// <param name="From">Null: the flow does not exist yet.</param>
/// <param name="To">Null: the flow ends.</param>
public sealed record FlowTransition(RelocationPhase? From, FlowEvent Event, RelocationPhase? To);

/// <summary>
/// The one table of a relocation's phase changes at the coordinator: <see cref="CoordinatorCore"/>'s step handlers
/// and its reconcile rules both move a flow only through it (a move it does not hold throws), and README's state
/// diagram is generated from it.
/// </summary>
public static class FlowTransitions
{
    /// <summary>The phases in which the source still owns the disk: the operator can cancel, a write at the
    /// destination is remembered until the handover.</summary>
    public static bool BeforeHandover(RelocationPhase phase) => Handover.Contains(phase);

    private static readonly RelocationPhase[] Handover = [Starting, Preparing, Serving];

    /// <summary>The events that are a site's answer to a step (the others are the coordinator's own decisions).</summary>
    public static bool IsSiteAnswer(FlowEvent e) => e is FlowEvent.OutgoingStarted or FlowEvent.IncomingPrepared or FlowEvent.Fenced
        or FlowEvent.OwnershipMoved or FlowEvent.RelocationDone or FlowEvent.Released or FlowEvent.OutgoingStopped
        or FlowEvent.OutgoingStoppedDestinationGone or FlowEvent.IncomingDropped;

    /// <summary>What <see cref="Reconciler.Derive"/> can show (a source tracking writes has told nothing yet, so
    /// <see cref="Starting"/> is never seen at the sites).</summary>
    private static readonly RelocationPhase[] Shown = [Preparing, Serving, Fencing, Transferring, Postcopy, Releasing, Cancelling];

    public static IReadOnlyList<FlowTransition> Table { get; } = Build();

    private static List<FlowTransition> Build()
    {
        var all = Enum.GetValues<RelocationPhase>();
        List<FlowTransition> t =
        [
            new(null, FlowEvent.Accepted, Starting),
            new(Starting, FlowEvent.OutgoingStarted, Preparing),
            new(Preparing, FlowEvent.IncomingPrepared, Serving),
            new(Serving, FlowEvent.Handover, Fencing),
            new(Fencing, FlowEvent.Fenced, Transferring),
            new(Transferring, FlowEvent.OwnershipMoved, Postcopy),
            new(Transferring, FlowEvent.RelocationDone, Releasing), // a disk pre-copied in full completes the moment it is owned
            new(Postcopy, FlowEvent.RelocationDone, Releasing),
            new(Releasing, FlowEvent.Released, null),
            // Past the handover the destination owns the disk: a relocation only goes forward.
            .. Handover.Select(p => new FlowTransition(p, FlowEvent.Cancel, Cancelling)),
            new(Cancelling, FlowEvent.Cancel, Cancelling),
            new(Cancelling, FlowEvent.OutgoingStopped, Cancelling),
            new(Cancelling, FlowEvent.OutgoingStoppedDestinationGone, null),
            new(Cancelling, FlowEvent.IncomingDropped, null),
            new(Starting, FlowEvent.StepResent, Starting),
            new(Cancelling, FlowEvent.StepResent, Cancelling),
        ];
        t.AddRange(Shown.Select(q => new FlowTransition(null, FlowEvent.Adopted, q)));
        // The sites hold the truth, and lost or reordered steps and answers put the coordinator behind them or ahead
        // of them: a judged round follows them, but a cancel does not go back (they show it before the handover
        // only because its stop has not arrived: it is sent again).
        foreach (var p in all)
            t.AddRange(Shown.Where(q => !(p == Cancelling && BeforeHandover(q))).Select(q => new FlowTransition(p, FlowEvent.SitesShow, q)));
        // A flow whose source has not told anything yet is not shown by the sites: that is no end.
        t.AddRange(all.Where(p => p != Starting).Select(p => new FlowTransition(p, FlowEvent.SitesShowOver, null)));
        t.AddRange(all.Select(p => new FlowTransition(p, FlowEvent.OtherAttempt, null)));
        return t;
    }

    private static readonly HashSet<FlowTransition> Set = [.. Table];

    public static bool Allows(RelocationPhase? from, FlowEvent e, RelocationPhase? to) => Set.Contains(new FlowTransition(from, e, to));

    /// <summary>Whether <paramref name="e"/> applies to a flow in <paramref name="from"/> at all.</summary>
    public static bool Allows(RelocationPhase from, FlowEvent e) => Table.Any(t => t.From == from && t.Event == e);

    /// <summary>Where <paramref name="e"/> takes a flow in <paramref name="from"/> (null: it ends); for events whose
    /// target is not chosen by the sites (not <see cref="FlowEvent.SitesShow"/>, <see cref="FlowEvent.Adopted"/>).</summary>
    public static RelocationPhase? Next(RelocationPhase from, FlowEvent e)
    {
        var to = Table.Where(t => t.From == from && t.Event == e).ToList();
        if (to.Count != 1) throw new InvalidOperationException($"a relocation {from.Name()} has {to.Count} transitions on {e}, not one");
        return to[0].To;
    }

    /// <summary>The moves a reconcile round makes by following the sites, left out of the diagram (any phase to
    /// the one the sites show: drawn, they would hide the protocol; README says it in a sentence).</summary>
    public static bool FollowsTheSites(FlowEvent e) => e is FlowEvent.Adopted or FlowEvent.SitesShow or FlowEvent.SitesShowOver or FlowEvent.OtherAttempt;

    /// <summary>README's diagram of the coordinator's phases, from <see cref="Table"/>.</summary>
    public static string Diagram() => StateDiagram.Mermaid(Table.Where(t => !FollowsTheSites(t.Event))
        .Select(t => new StateDiagram.Transition(t.From?.Name(), t.Event.ToString(), t.To?.Name())));
}
