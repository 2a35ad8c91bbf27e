using RelocationMode = Reloc.Management.RelocationMode;
using Reloc.Actors.Site;
using Reloc.Nbd.Client;
using static Reloc.Actors.Coordinator.CoordinatorDecision;
using static Reloc.Actors.Coordinator.RelocationPhase;
using static Reloc.Actors.Coordinator.RelocationProtocol;

namespace Reloc.Actors.Coordinator;

/// <summary>The reconcile round: what the sites show, judged against the flows this coordinator believes in.</summary>
public sealed partial class CoordinatorCore
{
    /// <summary>What the sites say, against what this coordinator believes: relocations it did not know (it just
    /// took over) are adopted; ones stuck in a phase for a while get their step again. Only flows unchanged since
    /// the round began are judged by it: its answers may be older than what they know.</summary>
    private void OnObserved(CoordinatorInput.Observed o)
    {
        _observing = false;
        var now = o.Now;
        ReconcileLinks(o.Lists);
        bool Stale(Flow f) => f.PhaseSince >= o.AskedAt || now - f.PhaseSince < interval * 2;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var derived = Reconciler.Derive(o.Lists);
        foreach (var id in _endedPastHandover.Where(e => e.Value.EndedAt < o.AskedAt).Select(e => e.Key).ToList()) _endedPastHandover.Remove(id);
        // A drop waiting for a stop the sites no longer call for (the source refused, or it is over) is forgotten.
        var wanted = derived.Select(d => d.Step).OfType<StopOutgoing>().Select(s => s.Relocation).ToHashSet(StringComparer.Ordinal);
        foreach (var id in _dropsAfterStop.Keys.Where(id => !wanted.Contains(id)).ToList()) _dropsAfterStop.Remove(id);
        foreach (var d in derived)
        {
            seen.Add(d.Info.Disk);
            var shown = RelocationPhases.Parse(d.Info.Phase);
            if (d.Anomaly is not null) { Log(CoreLogLevel.Warning, $"relocation of {d.Info.Disk}: {d.Anomaly}"); continue; }
            if (_flows.TryGetValue(d.Info.Disk, out var f) && f.Relocation != d.Relocation && !Stale(f))
            {
                // The sites are on another attempt (a coordinator that was cut off ran this one): theirs wins.
                Log(CoreLogLevel.Warning, $"relocation of {f.Disk}: the sites show attempt {d.Relocation}, not {f.Relocation}; following the sites", CoordinatorEvent.SitesWin);
                Move(f, FlowEvent.OtherAttempt, now);
                f = null;
            }
            if (f is null && AlreadyEnded(d, shown))
            {
                Log(CoreLogLevel.Debug, $"relocation of {d.Info.Disk}: a round asked before it ended shows it {d.Info.Phase}; not adopted again", CoordinatorEvent.StaleRoundNotJudged);
                continue;
            }
            if (f is null)
            {
                f = new Flow(d.Info.Disk, d.Info.FromSite, d.Info.ToSite, d.Info.Epoch, d.Size, d.SourceUri, d.Relocation, FlowEvent.Adopted, shown, now, OnMoved);
                _flows[f.Disk] = f;
                Moved(f, null, FlowEvent.Adopted, now);
                Log(CoreLogLevel.Debug, $"relocation of {f.Disk} from {f.From} to {f.To} picked up from the sites: {f.Phase.Name()}");
            }
            else if (f.Relocation != d.Relocation || Stale(f))
            {
                if (f.Relocation == d.Relocation && f.Phase != shown && f.PhaseSince >= o.AskedAt)
                    Log(CoreLogLevel.Debug, $"relocation of {f.Disk}: a round older than its last change ({f.Phase.Name()}) shows {d.Info.Phase}", CoordinatorEvent.StaleRoundNotJudged);
                continue; // moving along by itself
            }
            else if (!FlowTransitions.Allows(f.Phase, FlowEvent.SitesShow, shown))
            {
                // Only a cancel does not follow the sites: they show it before the handover, so its stop got lost.
                f.MoveTo(FlowEvent.StepResent, Cancelling, now);
                Tell(f.From, new StopOutgoing(f.Disk, f.Epoch, f.Relocation));
                continue;
            }
            else f.MoveTo(FlowEvent.SitesShow, shown, now);
            Resume(f, d, o.AskedAt, now);
        }
        foreach (var f in _flows.Values.Where(f => !seen.Contains(f.Disk))) f.IdleSince = null;
        // A cancel whose destination left the cluster: without that site's list the sites show nothing of it, so
        // the source alone says whether it still sends the disk (its stop got lost) or has stopped.
        foreach (var f in _flows.Values.Where(f => f.Phase == Cancelling && Gone(f.To) && !seen.Contains(f.Disk) && !Stale(f)).ToList())
        {
            if (o.Lists.FirstOrDefault(l => l.Site == f.From) is not { } source) continue;
            var copy = source.Disks.FirstOrDefault(d => d.Name == f.Disk);
            if (copy is { Phase: SiteDisk.Outgoing } && copy.Relocation == f.Relocation)
            {
                f.MoveTo(FlowEvent.StepResent, Cancelling, now);
                Tell(f.From, new StopOutgoing(f.Disk, f.Epoch, f.Relocation));
            }
            else if (copy is not { Phase: SiteDisk.Fenced } || copy.Relocation != f.Relocation)
                CancelledWithoutDestination(f, FlowEvent.SitesShowOver, now);
            // Fenced by this relocation: the handover won the race with the cancel; it goes on when the destination is back.
        }
        // Relocations no site shows any more (finished, or cancelled) while both sites answered.
        var answered = o.Lists.Select(l => l.Site).ToHashSet(StringComparer.Ordinal);
        foreach (var f in _flows.Values.Where(f => !seen.Contains(f.Disk) && FlowTransitions.Allows(f.Phase, FlowEvent.SitesShowOver)
                     && answered.Contains(f.From) && answered.Contains(f.To) && !Stale(f)).ToList())
        {
            Move(f, FlowEvent.SitesShowOver, now);
            _out.Add(new Ended(f.Disk, f.Relocation, Cancelled: f.Phase == Cancelling));
            if (f.CancelledBy is { } by) Answer(by, new RelocationCancelled(f.Disk));
            Log(CoreLogLevel.Debug, $"relocation of {f.Disk}: the sites show it over ({f.Phase.Name()})");
        }
        // A relocation whose first step got lost: the source never began tracking.
        foreach (var f in _flows.Values.Where(f => f.Phase == Starting && !Stale(f)))
        {
            f.MoveTo(FlowEvent.StepResent, Starting, now);
            Tell(f.From, new StartOutgoing(f.Disk, f.To, f.Epoch, TrackingBlockSize, f.Relocation));
        }
    }

    private void Resume(Flow f, Reconciler.Derived d, DateTime askedAt, DateTime now)
    {
        if (d is { Step: StopOutgoing stop, DropAt: { } dropAt })
            _dropsAfterStop[stop.Relocation] = (stop.Disk, stop.Epoch, dropAt);
        if (f.Phase == Serving && d.SourceIdle) f.IdleSince ??= askedAt;
        else f.IdleSince = null;
        switch (f.Phase)
        {
            case Preparing when d.Step is not null && d.StepTo is not null:
                Tell(d.StepTo, d.Step); // another attempt's copy first
                break;
            case Preparing:
                SendPrepare(f);
                break;
            case Serving when d.Trigger is { } trigger:
                BeginHandover(f, trigger, $"seen at the sites: {trigger.Describe()}", now);
                break;
            case Serving when f.IdleSince is { } since && askedAt - since >= interval * IdleRounds:
                BeginHandover(f, HandoverTrigger.SourceIdle, $"the source has had no guest since {since:HH:mm:ss}", now, CoordinatorEvent.IdleHandover);
                break;
            case Fencing or Releasing or Cancelling when d.Step is not null && d.StepTo is not null:
                Tell(d.StepTo, d.Step);
                break;
        }
    }
}
