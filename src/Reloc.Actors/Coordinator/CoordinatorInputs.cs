using RelocationMode = Reloc.Management.RelocationMode;
using Reloc.Actors.Site;

namespace Reloc.Actors.Coordinator;

/// <summary>What <see cref="CoordinatorCore"/> is told: operator requests, the sites' messages, the reconcile
/// timer and the answers to the asks it decided on. <c>ReplyTo</c> is opaque to the core (an actor, or the
/// model's address); <c>Now</c> is the shell's clock.</summary>
public abstract record CoordinatorInput
{
    /// <summary>An operator's <see cref="RelocationProtocol.Relocate"/>; <paramref name="Sites"/>: the sites the shell knows now.</summary>
    public sealed record Relocate(RelocationProtocol.Relocate Request, object ReplyTo, IReadOnlyList<string> Sites) : CoordinatorInput;

    /// <summary>The answers to the ask of <see cref="CoordinatorDecision.AskAllSites"/> made for a relocate
    /// request: every site's list, or none when any site did not answer.</summary>
    public sealed record Found(RelocationProtocol.Relocate Request, object ReplyTo, IReadOnlyList<SiteProtocol.DiskList> Lists, DateTime Now) : CoordinatorInput;

    /// <summary>Any other operator request (RequestHandover, CancelRelocation, SetRelocationRate, SetRelocationWeight,
    /// GetRelocations, GetRelocationStatus, SetLinkBudget, GetLinks).
    /// <paramref name="Sites"/>: the sites the shell knows now (null: not known, every site counts as present).</summary>
    public sealed record Command(object Request, object ReplyTo, DateTime Now, IReadOnlyList<string>? Sites = null) : CoordinatorInput;

    /// <summary>A site's message (a step's answer, a trigger, a client count, a refusal); <paramref name="From"/> names the sender for the log.</summary>
    public sealed record FromSite(object Message, string From, DateTime Now) : CoordinatorInput;

    /// <summary>The reconcile timer fired. <paramref name="Sites"/>: the sites the shell knows now (null: not known).</summary>
    public sealed record Tick(DateTime Now, IReadOnlyList<string>? Sites = null) : CoordinatorInput;

    /// <summary>The answers to the ask of <see cref="CoordinatorDecision.AskAllSitesForDrain"/>: every site's list, or none when any site did not answer.</summary>
    public sealed record DrainFound(RelocationProtocol.DrainSite Request, object ReplyTo, IReadOnlyList<SiteProtocol.DiskList> Lists, DateTime Now) : CoordinatorInput;

    /// <summary>A site's answer to <see cref="CoordinatorDecision.AskToRemember"/>: what it holds durably for the pair
    /// (<paramref name="Held"/>), or why it did not answer (<paramref name="Error"/>: a refusal, a timeout).</summary>
    public sealed record LinkStored(string Site, RememberedBudget Asked, RememberedBudget? Held, string? Error) : CoordinatorInput;

    /// <summary>The disk lists of the sites that answered a reconcile round begun at <paramref name="AskedAt"/>.</summary>
    public sealed record Observed(IReadOnlyList<SiteProtocol.DiskList> Lists, DateTime AskedAt, DateTime Now) : CoordinatorInput;
}

/// <summary>What <see cref="CoordinatorCore"/> decides; the shell carries them out in order.</summary>
public abstract record CoordinatorDecision
{
    public sealed record SendToSite(string Site, object Message) : CoordinatorDecision;

    public sealed record Reply(object To, object Message) : CoordinatorDecision;

    /// <summary>Ask every site for its disks. For a reconcile round (<paramref name="ForRelocate"/> null) feed back
    /// <see cref="CoordinatorInput.Observed"/> with the lists that came; for a relocate request feed back
    /// <see cref="CoordinatorInput.Found"/> (no lists if any site failed to answer).</summary>
    public sealed record AskAllSites(DateTime AskedAt, RelocationProtocol.Relocate? ForRelocate = null, object? ReplyTo = null) : CoordinatorDecision;

    /// <summary>Ask every site for its disks for a drain; feed back <see cref="CoordinatorInput.DrainFound"/> (no lists if any site failed to answer).</summary>
    public sealed record AskAllSitesForDrain(RelocationProtocol.DrainSite Request, object ReplyTo) : CoordinatorDecision;

    /// <summary>Ask <paramref name="Site"/> for the disk's progress and answer <paramref name="ReplyTo"/> with a
    /// <see cref="RelocationProtocol.RelocationStatus"/> (or a refusal if it does not answer).</summary>
    public sealed record AskProgress(string Site, string Disk, RelocationProtocol.RelocationInfo Info, object ReplyTo) : CoordinatorDecision;

    /// <summary>Ask <paramref name="Site"/> to remember a link budget set at run time (<see cref="RelocationProtocol.RememberLinkBudget"/>)
    /// and feed back <see cref="CoordinatorInput.LinkStored"/> with its answer, or the failure.</summary>
    public sealed record AskToRemember(string Site, RememberedBudget Budget) : CoordinatorDecision;

    public sealed record Log(CoreLogLevel Level, string Text, CoordinatorEvent Event = CoordinatorEvent.None) : CoordinatorDecision;

    /// <summary>A step of a relocation's lifecycle (<see cref="RelocationEvents.KindOf"/>): the shell stamps it with an id,
    /// adds the destination's figures to a Completed one, logs and publishes it (<see cref="ToEvent"/>).
    /// <paramref name="At"/>: the input's Now (the shell's clock).</summary>
    public sealed record Lifecycle(RelocationEventKind Kind, string Relocation, string Disk, string From, string To, RelocationMode? Mode,
        long Epoch, RelocationPhase? Phase, DateTime At, HandoverTrigger? Trigger = null, TimeSpan? Duration = null, string? Detail = null) : CoordinatorDecision
    {
        public RelocationProtocol.RelocationEvent ToEvent(Guid id, RelocationProtocol.RelocationTotals? totals = null) =>
            new(id, At, Relocation, Disk, From, To, Mode, Epoch, Kind, Phase, Trigger, Duration, totals, Detail);
    }

    /// <summary>A relocation left this coordinator (finished, cancelled, or shown over by the sites).</summary>
    public sealed record Ended(string Disk, string Relocation, bool Cancelled) : CoordinatorDecision;
}


/// <summary>Protections a decision took (named for the model's coverage counters).</summary>
public enum CoordinatorEvent
{
    None,
    /// <summary>The destination ran out of space before the handover: the relocation is cancelled.</summary>
    StalledCancelled,
    /// <summary>The destination ran out of space after the handover: the relocation waits (the source is not released).</summary>
    StalledWaiting,
    /// <summary>A reconciler's drop sent once the copy's source confirmed the stop.</summary>
    DropAfterStop,
    /// <summary>A relocation refused while another site still holds a copy.</summary>
    RefusedLeftoverCopy,
    /// <summary>A flow replaced by the relocation the sites show.</summary>
    SitesWin,
    /// <summary>A round older than a flow's last change did not judge it.</summary>
    StaleRoundNotJudged,
    /// <summary>An answer of another relocation ignored.</summary>
    ForeignAnswerIgnored,
    /// <summary>A handover begun because the source has had no guest for several rounds.</summary>
    IdleHandover,
    /// <summary>A cancel finished without its destination, which is no longer in the cluster.</summary>
    CancelledWithoutDestination,
    /// <summary>A relocation's destination is no longer in the cluster (reported once).</summary>
    DestinationGone,
}
