using RelocationMode = Reloc.Management.RelocationMode;
using static Reloc.Actors.Coordinator.RelocationProtocol;

namespace Reloc.Actors.Coordinator;

/// <summary>What made a relocation hand over (the one rule is <see cref="Reconciler.TriggerOf"/>; the operator's
/// request is the fourth).</summary>
public enum HandoverTrigger
{
    /// <summary>A write arrived at the destination.</summary>
    WriteAtDestination,
    /// <summary>The source's last guest left after one connected at the destination (what a live-migrating QEMU does).</summary>
    GuestMoved,
    /// <summary>The source has had no guest since it began tracking (or for several reconcile rounds).</summary>
    SourceIdle,
    /// <summary>The operator asked for it.</summary>
    Operator,
}

/// <summary>How the destination copies before the handover: <c>postcopy</c> waits, <c>hybrid</c> pre-copies.</summary>
/// <summary>What a <see cref="RelocationEvent"/> reports.</summary>
public enum RelocationEventKind
{
    /// <summary>The operator's relocation was accepted.</summary>
    Started,
    /// <summary>A coordinator that took over found the relocation under way at the sites (its start was reported by another).</summary>
    Adopted,
    /// <summary>The phase changed (other than by the handover or an end).</summary>
    PhaseChanged,
    /// <summary>The source was asked to fence: from here on the relocation only goes forward.</summary>
    Handover,
    /// <summary>Every block is at the destination and the source let go.</summary>
    Completed,
    /// <summary>Ended before the handover: the source still owns the disk.</summary>
    Cancelled,
    /// <summary>The sites show another attempt of the same disk's relocation: that one replaces this one.</summary>
    Superseded,
    /// <summary>The relocation cannot go on for now (its destination left the cluster); <see cref="RelocationEvent.Detail"/> says what it waits for.</summary>
    Stalled,
    /// <summary>The relocation waits in the admission queue (durable at its source); <see cref="RelocationEvent.Detail"/> says its place.
    /// Its Started follows when a slot frees, or Cancelled if it is cancelled first.</summary>
    Queued,
}

/// <summary>A relocation's outcome as the history shows it.</summary>
public enum RelocationOutcome { InProgress, Completed, Cancelled, Superseded }

public static class RelocationEvents
{
    /// <summary>The DistributedPubSub topic the coordinator publishes every <see cref="RelocationEvent"/> on.</summary>
    public const string Topic = "reloc-relocation-events";

    public static string Name(this RelocationMode mode) => mode == RelocationMode.Hybrid ? "hybrid" : "postcopy";

    /// <summary>The trigger as the coordinator's log has always said it.</summary>
    public static string Describe(this HandoverTrigger trigger) => trigger switch
    {
        HandoverTrigger.WriteAtDestination => "a write arrived at the destination",
        HandoverTrigger.GuestMoved => "the source's last client left after a client connected at the destination",
        HandoverTrigger.SourceIdle => "the source has no clients",
        HandoverTrigger.Operator => "operator",
        _ => throw new ArgumentOutOfRangeException(nameof(trigger), trigger, null),
    };

    /// <summary>The lifecycle event a move of a flow's phase is, if any (pure: the table the core's moves go through,
    /// <see cref="FlowTransitions.Table"/>, mapped to what an operator follows). <paramref name="from"/> null: the flow
    /// begins; <paramref name="to"/> null: it ends. A move that keeps the phase (a step resent, an answer) is none.</summary>
    public static RelocationEventKind? KindOf(RelocationPhase? from, FlowEvent e, RelocationPhase? to) => (from, e, to) switch
    {
        (null, FlowEvent.Accepted, _) => RelocationEventKind.Started,
        (null, FlowEvent.Adopted, _) => RelocationEventKind.Adopted,
        (_, FlowEvent.Handover, _) => RelocationEventKind.Handover,
        (_, FlowEvent.OtherAttempt, null) => RelocationEventKind.Superseded,
        (_, FlowEvent.Released, null) => RelocationEventKind.Completed,
        (_, FlowEvent.IncomingDropped or FlowEvent.OutgoingStoppedDestinationGone, null) => RelocationEventKind.Cancelled,
        // The sites show nothing of it any more: before the handover the source kept the disk, after it the destination has it.
        ({ } p, FlowEvent.SitesShowOver, null) => p == RelocationPhase.Cancelling || FlowTransitions.BeforeHandover(p)
            ? RelocationEventKind.Cancelled : RelocationEventKind.Completed,
        ({ } p, _, { } q) when p != q => RelocationEventKind.PhaseChanged,
        _ => null,
    };

    /// <summary>The coordinator's one log line for an event (what the operator reads at Information).</summary>
    public static string Describe(this RelocationEvent e)
    {
        var head = $"relocation {e.Relocation} of {e.Disk} {e.FromSite}→{e.ToSite}";
        return e.Kind switch
        {
            RelocationEventKind.Started => $"{head} started ({e.Mode?.Name() ?? "mode unknown"}, epoch {e.Epoch})",
            RelocationEventKind.Adopted => $"{head} picked up from the sites ({e.Phase?.Name()})",
            RelocationEventKind.PhaseChanged => $"{head}: {e.Phase?.Name()}",
            RelocationEventKind.Handover => $"{head}: handover ({e.Trigger?.Describe() ?? "trigger unknown"}) at epoch {e.Epoch + 1}",
            RelocationEventKind.Completed => $"{head} completed in {Duration(e.Duration)}: " + (e.Totals is { } t
                ? $"{t.FetchedBytes} bytes fetched, {t.SkippedBytes} skipped, {t.Misses} misses ({t.TotalBytes} bytes in all)"
                : "its figures were not reported by the destination"),
            RelocationEventKind.Cancelled => $"{head} cancelled after {Duration(e.Duration)}; {e.FromSite} owns it at epoch {e.Epoch}",
            RelocationEventKind.Superseded => $"{head} superseded: {e.Detail}",
            RelocationEventKind.Stalled => $"{head} stalled ({e.Phase?.Name()}): {e.Detail}",
            RelocationEventKind.Queued => $"{head} queued ({e.Mode?.Name() ?? "mode unknown"}, epoch {e.Epoch}): {e.Detail}",
            _ => $"{head}: {e.Kind}",
        };
    }

    private static string Duration(TimeSpan? d) => d is { } t ? $"{t.TotalSeconds:0.0} s" : "an unknown time";

    /// <summary>How loud the coordinator's line is: a relocation that cannot go on, or was replaced, is a warning.</summary>
    public static CoreLogLevel LevelOf(RelocationEventKind kind) =>
        kind is RelocationEventKind.Stalled or RelocationEventKind.Superseded ? CoreLogLevel.Warning : CoreLogLevel.Info;
}
