using RelocationMode = Reloc.Management.RelocationMode;
using Reloc.Actors.Site;
using Reloc.Nbd.Client;
using static Reloc.Actors.Coordinator.CoordinatorDecision;
using static Reloc.Actors.Coordinator.RelocationPhase;
using static Reloc.Actors.Coordinator.RelocationProtocol;

namespace Reloc.Actors.Coordinator;

/// <summary>
/// The coordinator's decisions, without an actor system: the relocations under way (flows), the drops that wait
/// for their source's stop, and the reconcile rules over <see cref="Reconciler.Derive"/>. Deterministic: the same
/// inputs in the same order give the same decisions. <see cref="MigrationCoordinator"/> and the protocol model
/// are its shells.
/// </summary>
/// <remarks>A flow's phase moves only by <see cref="FlowTransitions.Table"/> (README draws it).</remarks>
/// <param name="interval">The reconcile interval (a round judges only flows unchanged for two of them).</param>
/// <param name="newRelocationId">A fresh attempt id, unique across coordinators.</param>
/// <param name="links">The link budgets of reloc.links (none: no budget on any pair).</param>
/// <param name="admission">Relocations per site at once (none: no limit); the rest wait in the admission queue.</param>
public sealed partial class CoordinatorCore(TimeSpan interval, Func<string> newRelocationId, LinkSettings? links = null, AdmissionSettings? admission = null)
{
    private readonly AdmissionSettings _admission = admission ?? AdmissionSettings.Unlimited;

    /// <summary>A serving relocation whose source every judged round, for this many reconcile intervals, showed
    /// without guests hands over: the idle trigger whose first signal (OutgoingStarted with no clients) got lost.
    /// Not one round: a source that just restarted has no guest until its VM reconnects (commit e8cd63f); a round
    /// without the source's answer, or a guest reported there, starts the count again.</summary>
    public const int IdleRounds = 3;

    private sealed class Flow(string disk, string from, string to, long epoch, long size, string sourceUri, string relocation,
        FlowEvent begun, RelocationPhase phase, DateTime now, Action<Flow, RelocationPhase?, FlowEvent, DateTime> moved)
    {
        /// <summary>This attempt's id: every step carries it, every answer must name it.</summary>
        public string Relocation { get; } = relocation;
        public string Disk { get; } = disk;
        public string From { get; } = from;
        public string To { get; } = to;
        public long Epoch { get; } = epoch;
        public long NewEpoch => Epoch + 1;
        public long Size { get; } = size;
        public string SourceUri { get; } = sourceUri;
        public bool Hybrid { get; init; }
        /// <summary>The operator's cap on the background copy (0: none).</summary>
        public long Rate { get; set; }
        /// <summary>Whether <see cref="Rate"/> is the operator's: an adopted flow does not learn it from the sites.</summary>
        public bool RateKnown { get; set; }
        /// <summary>Its part of its link's budget against the others on that link.</summary>
        public int Weight { get; set; } = 1;
        /// <summary>The rate the destination was last told (null: none yet, by this coordinator).</summary>
        public long? Sent { get; set; }
        public LinkDirection Direction => new(From, To);
        public bool Prefetch { get; init; } = true;
        public RelocationPhase Phase { get; private set; } = FlowTransitions.Allows(null, begun, phase) ? phase
            : throw new InvalidOperationException($"a relocation does not begin {phase.Name()} on {begun}");
        public DateTime PhaseSince { get; private set; } = now;
        /// <summary>When this coordinator began (or adopted) the flow: its lifecycle's durations count from here.</summary>
        public DateTime Began { get; } = now;
        /// <summary>Null when adopted: the sites do not say.</summary>
        public RelocationMode? Mode { get; init; }
        /// <summary>What began the handover, once it has (for its lifecycle event).</summary>
        public HandoverTrigger? Trigger { get; set; }
        public int SourceClients { get; set; } = -1;
        public bool DestinationHadClients { get; set; }
        /// <summary>A write arrived at the destination (kept until the destination serves, if it came earlier).</summary>
        public string? WriteAtDestination { get; set; }
        /// <summary>The first judged round of the current run of rounds that saw the source without guests.</summary>
        public DateTime? IdleSince { get; set; }
        public object? CancelledBy { get; set; }
        /// <summary>What the log last said of its destination not being in the cluster (said again if it leaves
        /// again, or if what it means changes: the handover came meanwhile).</summary>
        public string? GoneReported { get; set; }

        /// <summary>The one way a flow's phase changes: only by a transition of the table.</summary>
        public void MoveTo(FlowEvent e, RelocationPhase phase, DateTime now)
        {
            if (!FlowTransitions.Allows(Phase, e, phase))
                throw new InvalidOperationException($"relocation {Relocation} of {Disk}: {Phase.Name()} --{e}--> {phase.Name()} is not a transition");
            var before = Phase;
            Phase = phase;
            PhaseSince = now;
            moved(this, before, e, now);
        }

        public RelocationInfo Info => new(Disk, From, To, Epoch, Phase.Name());
        public FlowView View => new(Disk, From, To, Epoch, Relocation, Phase, WriteAtDestination is not null);
    }

    /// <summary>A flow as the shells show it.</summary>
    public sealed record FlowView(string Disk, string From, string To, long Epoch, string Relocation, RelocationPhase Phase, bool WriteAtDestination)
    {
        public override string ToString() => $"{Disk} {From}->{To} e{Epoch} #{Relocation} {Phase.Name()}";
    }

    private readonly Dictionary<string, Flow> _flows = new(StringComparer.Ordinal);
    /// <summary>Budgets set at run time (over reloc.links; 0: none), by this coordinator or adopted from the sites,
    /// which remember them (<see cref="LinkMemory"/>).</summary>
    private readonly Dictionary<LinkPair, RememberedBudget> _linksSet = [];
    /// <summary>The highest stamp seen: a new set's stamp is above it (<see cref="LinkMemory.NextStamp"/>).</summary>
    private long _highestStamp;
    /// <summary>Sets waiting for the sites of their pair to store them: who waits, and the sites that failed so far.</summary>
    private readonly Dictionary<RememberedBudget, (object ReplyTo, List<string> Failed)> _storing = [];
    private readonly IReadOnlyDictionary<LinkPair, long> _linksConfigured = (links ?? LinkSettings.None).Budgets;
    /// <summary>Copies to drop once their source confirms it no longer sends them (relocation id → where).</summary>
    private readonly Dictionary<string, (string Disk, long Epoch, string Site)> _dropsAfterStop = new(StringComparer.Ordinal);
    private bool _observing;
    /// <summary>The sites the shell last said it knows (null: not told; every site counts as present).</summary>
    private HashSet<string>? _sites;
    private List<CoordinatorDecision> _out = [];

    public IReadOnlyList<FlowView> Flows => _flows.Values.Select(f => f.View).ToList();

    public FlowView? FlowOf(string disk) => _flows.TryGetValue(disk, out var f) ? f.View : null;

    public IReadOnlyList<CoordinatorDecision> Handle(CoordinatorInput input)
    {
        _out = [];
        switch (input)
        {
            case CoordinatorInput.Relocate r: Know(r.Sites); OnRelocate(r); break;
            case CoordinatorInput.Found f: LearnLinks(f.Lists); OnFound(f); break;
            case CoordinatorInput.Command c: Know(c.Sites); OnCommand(c); break;
            case CoordinatorInput.FromSite s: OnSite(s.Message, s.From, s.Now); break;
            case CoordinatorInput.Tick t:
                Know(t.Sites);
                ReportGoneDestinations(t.Now);
                if (_observing) break;
                _observing = true;
                _out.Add(new AskAllSites(t.Now));
                break;
            case CoordinatorInput.Observed o: OnObserved(o); ObserveQueue(o); break;
            case CoordinatorInput.DrainFound d: LearnLinks(d.Lists); OnDrainFound(d); break;
            case CoordinatorInput.LinkStored l: OnLinkStored(l); break;
            default: throw new ArgumentException($"not a coordinator input: {input}", nameof(input));
        }
        // A slot freed (or a queued relocation became durable): the queue moves before the shares are set.
        if (NowOf(input) is { } now) AdmitQueued(now);
        Rebalance();
        return _out;
    }

    private void Know(IReadOnlyList<string>? sites)
    {
        if (sites is not null) _sites = sites.ToHashSet(StringComparer.Ordinal);
    }

    /// <summary>A site the cluster removed (not merely unreachable: that one still counts).</summary>
    private bool Gone(string site) => _sites is not null && !_sites.Contains(site);

    /// <summary>What a relocation whose destination left the cluster waits for, and what the operator can do.</summary>
    private static string DestinationGone(Flow f) => f.Phase switch
    {
        _ when FlowTransitions.BeforeHandover(f.Phase) =>
            $"site {f.To} is not in the cluster: cancel the relocation (the disk stays at {f.From}), or it goes on when {f.To} is back",
        Cancelling => $"site {f.To} is not in the cluster: the cancel ends once {f.From} has stopped sending the disk",
        _ => $"site {f.To} left the cluster after the handover: the disk is {f.To}'s (epoch {f.NewEpoch}) and {f.From} refuses its writes, "
             + $"so it cannot be written until {f.To} is back; the relocation finishes then (a handover cannot be cancelled)",
    };

    private void ReportGoneDestinations(DateTime now)
    {
        foreach (var f in _flows.Values)
        {
            if (!Gone(f.To)) f.GoneReported = null;
            else if (DestinationGone(f) is var said && said != f.GoneReported)
            {
                f.GoneReported = said;
                Log(CoreLogLevel.Warning, $"relocation of {f.Disk} from {f.From} to {f.To} ({f.Phase.Name()}): {said}", CoordinatorEvent.DestinationGone);
                _out.Add(LifecycleOf(f, RelocationEventKind.Stalled, f.Phase, now, detail: said));
            }
        }
    }

    private void Tell(string site, object message) => _out.Add(new SendToSite(site, message));
    private void Answer(object to, object message) => _out.Add(new Reply(to, message));
    private void Log(CoreLogLevel level, string text, CoordinatorEvent e = CoordinatorEvent.None) => _out.Add(new CoordinatorDecision.Log(level, text, e));
    private static RelocationRefused NotRelocating(string disk) => new($"disk '{disk}' is not relocating");

    private void OnRelocate(CoordinatorInput.Relocate r)
    {
        var m = r.Request;
        if (_flows.ContainsKey(m.Disk)) { Answer(r.ReplyTo, new RelocationRefused($"disk '{m.Disk}' is already relocating")); return; }
        if (QueuedOf(m.Disk) is { } queued) { Answer(r.ReplyTo, AlreadyQueued(queued)); return; }
        if (!r.Sites.Contains(m.ToSite)) { Answer(r.ReplyTo, new RelocationRefused($"unknown site '{m.ToSite}' (sites: {string.Join(", ", r.Sites)})")); return; }
        if (m.RateBytesPerSecond < 0) { Answer(r.ReplyTo, new RelocationRefused($"rate must not be negative, not {m.RateBytesPerSecond}")); return; }
        // Where the disk is lives with the sites: ask them all.
        _out.Add(new AskAllSites(default, m, r.ReplyTo));
    }

    private void OnFound(CoordinatorInput.Found found)
    {
        var (m, replyTo) = (found.Request, found.ReplyTo);
        if (found.Lists.Count == 0) { Answer(replyTo, new RelocationRefused("could not reach every site to find the disk")); return; }
        var copies = found.Lists.SelectMany(l => l.Disks).Where(d => d.Name == m.Disk).ToList();
        var owner = Reconciler.OwnerOf(copies);
        if (owner is not { Phase: SiteDisk.Owned })
        {
            Answer(replyTo, new RelocationRefused(copies.Count == 0 ? $"unknown disk '{m.Disk}'" : $"disk '{m.Disk}' is already relocating"));
            return;
        }
        if (owner.Site == m.ToSite) { Answer(replyTo, new RelocationRefused($"disk '{m.Disk}' is already at {m.ToSite}")); return; }
        // A copy left elsewhere (a fenced source not yet released, a dropped copy not yet removed) goes first:
        // the reconciler follows one relocation per disk.
        var leftover = copies.FirstOrDefault(d => d.Site != owner.Site);
        if (leftover is not null)
        {
            Log(CoreLogLevel.Debug, $"relocation of {m.Disk} refused: {leftover.Site} holds a {leftover.Phase} copy", CoordinatorEvent.RefusedLeftoverCopy);
            Answer(replyTo, new RelocationRefused($"site {leftover.Site} still holds a {leftover.Phase} copy of '{m.Disk}' from an earlier relocation; it is released first, try again shortly"));
            return;
        }
        if (_flows.ContainsKey(m.Disk)) { Answer(replyTo, new RelocationRefused($"disk '{m.Disk}' is already relocating")); return; }
        if (QueuedOf(m.Disk) is { } queued) { Answer(replyTo, AlreadyQueued(queued)); return; }
        if (owner.Queued is { } kept) { Answer(replyTo, new RelocationRefused($"disk '{m.Disk}' is already queued for {kept.ToSite}")); return; }
        Admit(m.Disk, owner, m.ToSite, m.Hybrid, m.RateBytesPerSecond, m.Prefetch, replyTo, found.Now);
    }

    private void OnCommand(CoordinatorInput.Command c)
    {
        var (replyTo, now) = (c.ReplyTo, c.Now);
        switch (c.Request)
        {
            case GetRelocations:
                // Under way first (by disk), then the queue in its order.
                Answer(replyTo, new RelocationList([.. _flows.Values.OrderBy(f => f.Disk, StringComparer.Ordinal).Select(f => f.Info), .. _queue.Select(InfoOf)]));
                break;
            case DrainSite m:
                OnDrain(m, replyTo);
                break;
            case GetRelocationStatus m when QueuedOf(m.Disk) is { } waiting:
                // Nothing copies yet: no destination to ask.
                Answer(replyTo, new RelocationStatus(InfoOf(waiting), new DiskProgress(waiting.Disk, QueuedPhase, 0, waiting.Size, 0, 0, 0, 0, 0, 0, false)));
                break;
            case CancelRelocation m when QueuedOf(m.Disk) is { } waiting:
                CancelQueued(waiting, replyTo, now);
                break;
            case SetRelocationRate or SetRelocationWeight or RequestHandover when QueuedOf(DiskOf(c.Request)) is { } waiting:
                Answer(replyTo, Waits(waiting));
                break;
            case GetRelocationStatus m:
                if (!_flows.TryGetValue(m.Disk, out var status)) { Answer(replyTo, NotRelocating(m.Disk)); return; }
                // Its progress lives at the destination: asked there, a gone one would only time out.
                if (Gone(status.To)) { Answer(replyTo, new RelocationRefused($"relocation of {status.Disk} from {status.From} to {status.To} is {status.Phase.Name()}: {DestinationGone(status)}")); return; }
                _out.Add(new AskProgress(status.To, status.Disk, status.Info, replyTo));
                break;
            case SetRelocationRate m:
                if (!_flows.TryGetValue(m.Disk, out var rated)) { Answer(replyTo, NotRelocating(m.Disk)); return; }
                if (m.RateBytesPerSecond < 0) { Answer(replyTo, new RelocationRefused($"rate must not be negative, not {m.RateBytesPerSecond}")); return; }
                rated.Rate = m.RateBytesPerSecond;
                rated.RateKnown = true;
                // Told at once, whatever the phase (as before budgets): a destination that does not have it yet ignores it.
                rated.Sent = RatesNow().GetValueOrDefault(rated.Disk);
                Tell(rated.To, new SetRate(rated.Disk, rated.Sent.Value));
                Answer(replyTo, rated.Info);
                break;
            case SetRelocationWeight m:
                if (!_flows.TryGetValue(m.Disk, out var weighed)) { Answer(replyTo, NotRelocating(m.Disk)); return; }
                if (m.Weight is < 1 or > LinkShares.MaxWeight) { Answer(replyTo, new RelocationRefused($"weight must be from 1 to {LinkShares.MaxWeight}, not {m.Weight}")); return; }
                weighed.Weight = m.Weight; // the shares follow at the end of this input
                Answer(replyTo, weighed.Info);
                break;
            case SetLinkBudget m:
                if (m.BandwidthBytesPerSecond < 0) { Answer(replyTo, new RelocationRefused($"a link's bandwidth must not be negative, not {m.BandwidthBytesPerSecond}")); return; }
                if (string.IsNullOrEmpty(m.SiteA) || string.IsNullOrEmpty(m.SiteB) || m.SiteA == m.SiteB)
                { Answer(replyTo, new RelocationRefused($"a link joins two different sites, not '{m.SiteA}' and '{m.SiteB}'")); return; }
                if (new[] { m.SiteA, m.SiteB }.FirstOrDefault(Gone) is { } unknown)
                { Answer(replyTo, new RelocationRefused($"unknown site '{unknown}' (sites: {string.Join(", ", _sites!.Order(StringComparer.Ordinal))})")); return; }
                // Applied once a site of the pair has it durably (OnLinkStored): an acknowledged budget outlives this coordinator.
                var set = new RememberedBudget(new LinkPair(m.SiteA, m.SiteB), m.BandwidthBytesPerSecond, LinkMemory.NextStamp(now, _highestStamp));
                _highestStamp = set.Stamp;
                _storing[set] = (replyTo, []);
                _out.Add(new AskToRemember(set.Pair.A, set));
                _out.Add(new AskToRemember(set.Pair.B, set));
                break;
            case GetLinks:
                var pairs = _linksConfigured.Keys.Concat(_linksSet.Keys).Concat(_flows.Values.Select(f => f.Direction.Pair)).Distinct()
                    .OrderBy(p => p.A, StringComparer.Ordinal).ThenBy(p => p.B, StringComparer.Ordinal);
                Answer(replyTo, new LinkList(pairs.Select(LinkInfoOf).ToList()));
                break;
            case CancelRelocation m:
                if (!_flows.TryGetValue(m.Disk, out var cancelled)) { Answer(replyTo, NotRelocating(m.Disk)); return; }
                if (!FlowTransitions.Allows(cancelled.Phase, FlowEvent.Cancel))
                {
                    Answer(replyTo, new RelocationRefused($"disk '{m.Disk}' is {cancelled.Phase.Name()}: past the handover a relocation only goes forward; "
                        + $"wait for it to finish, or relocate it back to {cancelled.From} once it has"
                        + (Gone(cancelled.To) ? $" ({cancelled.To} is not in the cluster: it finishes when {cancelled.To} is back)" : "")));
                    return;
                }
                cancelled.CancelledBy = replyTo;
                Move(cancelled, FlowEvent.Cancel, now);
                Tell(cancelled.From, new StopOutgoing(cancelled.Disk, cancelled.Epoch, cancelled.Relocation));
                break;
            case RequestHandover m:
                if (!_flows.TryGetValue(m.Disk, out var asked)) { Answer(replyTo, NotRelocating(m.Disk)); return; }
                if (!FlowTransitions.Allows(asked.Phase, FlowEvent.Handover)) { Answer(replyTo, new RelocationRefused($"disk '{m.Disk}' is {asked.Phase.Name()}, not waiting for a handover")); return; }
                BeginHandover(asked, HandoverTrigger.Operator, HandoverTrigger.Operator.Describe(), now);
                Answer(replyTo, asked.Info);
                break;
            default:
                throw new ArgumentException($"not an operator request: {c.Request}", nameof(c));
        }
    }

    private void OnSite(object message, string from, DateTime now)
    {
        switch (message)
        {
            case QueuedAt m: OnQueuedAt(m, now); break;
            case QueueRefused m: OnQueueRefused(m); break;
            case Unqueued m:
                if (_unqueuing.TryGetValue(m.Disk, out var unqueuing) && unqueuing.Relocation == m.Relocation) _unqueuing.Remove(m.Disk);
                break;
            case OutgoingStarted m:
                if (Answered(m.Disk, m.Relocation, FlowEvent.OutgoingStarted) is { } started)
                {
                    started.SourceClients = m.SourceClients;
                    Move(started, FlowEvent.OutgoingStarted, now);
                    SendPrepare(started);
                }
                break;
            case IncomingPrepared m:
                if (Answered(m.Disk, m.Relocation, FlowEvent.IncomingPrepared) is { } prepared)
                {
                    Move(prepared, FlowEvent.IncomingPrepared, now);
                    // An idle disk moves at once: no guest at the source since it began tracking.
                    HandoverIfTriggered(prepared, idle: prepared.SourceClients == 0, now);
                }
                break;
            case HandoverRequested m:
                if (!_flows.TryGetValue(m.Disk, out var wanted) || wanted.Relocation != m.Relocation) return;
                if (FlowTransitions.BeforeHandover(wanted.Phase)) wanted.WriteAtDestination = $"a write arrived at {from}";
                HandoverIfTriggered(wanted, idle: false, now);
                break;
            case GuestClients m:
                if (!_flows.TryGetValue(m.Disk, out var f0)) return;
                if (m.Site == f0.To && m.Count > 0) f0.DestinationHadClients = true;
                if (m.Site == f0.From) f0.SourceClients = m.Count;
                if (m.Site == f0.From && m.Count > 0) f0.IdleSince = null;
                HandoverIfTriggered(f0, idle: false, now);
                break;
            case RelocationStalled m:
                if (!_flows.TryGetValue(m.Disk, out var stalled) || stalled.Relocation != m.Relocation) return;
                if (FlowTransitions.Allows(stalled.Phase, FlowEvent.Cancel))
                {
                    // Nothing is lost by stopping now: the source owns the disk and the destination's copy is dropped.
                    var said = $"{m.Reason}; cancelled before the handover: {stalled.From} keeps the disk and {m.Site}'s partial copy is dropped";
                    Log(CoreLogLevel.Warning, $"relocation of {stalled.Disk} from {stalled.From} to {stalled.To} ({stalled.Phase.Name()}): {said}", CoordinatorEvent.StalledCancelled);
                    _out.Add(LifecycleOf(stalled, RelocationEventKind.Stalled, stalled.Phase, now, detail: said));
                    Move(stalled, FlowEvent.Cancel, now);
                    Tell(stalled.From, new StopOutgoing(stalled.Disk, stalled.Epoch, stalled.Relocation));
                }
                else if (!FlowTransitions.BeforeHandover(stalled.Phase) && stalled.Phase != Cancelling)
                {
                    // Past the handover only forward: the source keeps every block not yet here (it is not released).
                    var said = $"{m.Reason}; past the handover the relocation waits for room at {m.Site} ({stalled.From} keeps the blocks not yet copied)";
                    Log(CoreLogLevel.Warning, $"relocation of {stalled.Disk} from {stalled.From} to {stalled.To} ({stalled.Phase.Name()}): {said}", CoordinatorEvent.StalledWaiting);
                    _out.Add(LifecycleOf(stalled, RelocationEventKind.Stalled, stalled.Phase, now, detail: said));
                }
                break;
            case Fenced m:
                if (Answered(m.Disk, m.Relocation, FlowEvent.Fenced) is { } fenced && m.NewEpoch == fenced.NewEpoch)
                {
                    Move(fenced, FlowEvent.Fenced, now);
                    Tell(fenced.To, new TakeOwnershipAt(fenced.Disk, fenced.NewEpoch, m.FinalDirty, fenced.Relocation));
                }
                break;
            case OwnershipMoved m:
                if (Answered(m.Disk, m.Relocation, FlowEvent.OwnershipMoved) is { } moved && m.NewEpoch == moved.NewEpoch)
                    Move(moved, FlowEvent.OwnershipMoved, now);
                break;
            case RelocationDone m:
                if (Answered(m.Disk, m.Relocation, FlowEvent.RelocationDone, log: false) is { } done && m.Epoch == done.NewEpoch)
                {
                    Move(done, FlowEvent.RelocationDone, now);
                    Tell(done.From, new Release(done.Disk, done.NewEpoch, done.Relocation));
                }
                break;
            case Released m:
                if (Answered(m.Disk, m.Relocation, FlowEvent.Released) is { } released)
                {
                    Move(released, FlowEvent.Released, now);
                    _out.Add(new Ended(released.Disk, released.Relocation, Cancelled: false));
                    Log(CoreLogLevel.Debug, $"relocation of {released.Disk} from {released.From} to {released.To} finished at epoch {released.NewEpoch}");
                }
                break;
            case OutgoingStopped m:
                // A reconciler's drop first (it waited for this confirmation), else the flow's cancel.
                if (_dropsAfterStop.Remove(m.Relocation, out var drop))
                {
                    Log(CoreLogLevel.Debug, $"{m.Disk}: the source stopped sending relocation {m.Relocation}: {drop.Site}'s copy is dropped", CoordinatorEvent.DropAfterStop);
                    Tell(drop.Site, new DropIncoming(drop.Disk, drop.Epoch, m.Relocation));
                }
                else if (Answered(m.Disk, m.Relocation, FlowEvent.OutgoingStopped) is { } stopped)
                {
                    if (Gone(stopped.To)) CancelledWithoutDestination(stopped, FlowEvent.OutgoingStoppedDestinationGone, now);
                    else
                    {
                        Move(stopped, FlowEvent.OutgoingStopped, now);
                        Tell(stopped.To, new DropIncoming(stopped.Disk, stopped.Epoch, stopped.Relocation));
                    }
                }
                break;
            case IncomingDropped m:
                if (Answered(m.Disk, m.Relocation, FlowEvent.IncomingDropped) is { } dropped)
                {
                    Move(dropped, FlowEvent.IncomingDropped, now);
                    _out.Add(new Ended(dropped.Disk, dropped.Relocation, Cancelled: true));
                    if (dropped.CancelledBy is { } by) Answer(by, new RelocationCancelled(dropped.Disk));
                    Log(CoreLogLevel.Debug, $"relocation of {dropped.Disk} from {dropped.From} to {dropped.To} cancelled; {dropped.From} owns it at epoch {dropped.Epoch}");
                }
                break;
            case LinkBudgetHeld m:
                Learn(m.Budget, m.Site); // a repair's answer (OnObserved)
                break;
            case SiteProtocol.Refused m:
                Log(CoreLogLevel.Warning, $"a site refused a relocation step: {m.Reason}");
                break;
            default:
                throw new ArgumentException($"not a site's message to the coordinator: {message}", nameof(message));
        }
    }

    /// <summary>A cancel whose destination left the cluster ends once the source stopped: nothing can write at the
    /// destination, and its copy, never owned there, is dropped by the reconcile rules when that site is back (the
    /// sites show it as a cancel half done).</summary>
    private void CancelledWithoutDestination(Flow f, FlowEvent e, DateTime now)
    {
        Move(f, e, now);
        _out.Add(new Ended(f.Disk, f.Relocation, Cancelled: true));
        if (f.CancelledBy is { } by) Answer(by, new RelocationCancelled(f.Disk));
        Log(CoreLogLevel.Info, $"relocation of {f.Disk} from {f.From} to {f.To} cancelled; {f.From} owns it at epoch {f.Epoch}; "
            + $"{f.To} is not in the cluster: its copy is dropped when it is back", CoordinatorEvent.CancelledWithoutDestination);
    }

    private void SendPrepare(Flow f)
    {
        // The destination fetches through the source's peer export: its connections are not the guest's.
        var sourceUri = NbdUri.Parse(f.SourceUri) with { Export = SiteActor.PeerExport(f.Disk) };
        var rate = RatesNow().GetValueOrDefault(f.Disk, f.Rate);
        f.Sent = rate;
        Tell(f.To, new PrepareIncoming(f.Disk, f.Size, f.From, sourceUri.ToString(), f.Epoch, f.Hybrid, rate, f.Prefetch, f.Relocation));
    }

    /// <summary>A serving flow hands over when the one trigger rule holds for what it heard.</summary>
    private void HandoverIfTriggered(Flow f, bool idle, DateTime now)
    {
        if (!FlowTransitions.Allows(f.Phase, FlowEvent.Handover)) return;
        if (Reconciler.TriggerOf(f.WriteAtDestination is not null, f.SourceClients, f.DestinationHadClients, idle) is { } trigger)
            BeginHandover(f, trigger, f.WriteAtDestination ?? trigger.Describe(), now);
    }

    private void BeginHandover(Flow f, HandoverTrigger trigger, string why, DateTime now, CoordinatorEvent e = CoordinatorEvent.None)
    {
        f.Trigger = trigger;
        // At Information: its lifecycle event (Handover, with its trigger); this line has the detail (which site).
        Log(CoreLogLevel.Debug, $"handover of {f.Disk} from {f.From} to {f.To} at epoch {f.NewEpoch}: {why}", e);
        Move(f, FlowEvent.Handover, now);
        Tell(f.From, new Fence(f.Disk, f.NewEpoch, f.Relocation));
    }

    /// <summary>The flow a site's answer moves on: this relocation's, in a phase the answer applies to (duplicates,
    /// strays and answers to an earlier attempt are ignored).</summary>
    private Flow? Answered(string disk, string relocation, FlowEvent e, bool log = true)
    {
        if (_flows.TryGetValue(disk, out var f) && f.Relocation == relocation && FlowTransitions.Allows(f.Phase, e)) return f;
        if (!log) return null;
        if (f is not null && f.Relocation != relocation)
            Log(CoreLogLevel.Debug, $"ignored {e} for {disk} of relocation {relocation} (the flow is {f.Relocation})", CoordinatorEvent.ForeignAnswerIgnored);
        else Log(CoreLogLevel.Debug, $"ignored {e} for {disk}{(f is null ? "" : $" ({f.Phase.Name()})")}");
        return null;
    }

    /// <summary>Every change of a flow's phase (its start and end too) passes here: the lifecycle event it is, if any.</summary>
    private void OnMoved(Flow f, RelocationPhase? before, FlowEvent e, DateTime now) => Moved(f, before, e, now);

    private void Moved(Flow f, RelocationPhase? before, FlowEvent e, DateTime now, bool ended = false)
    {
        RelocationPhase? from = ended ? f.Phase : before, to = ended ? null : f.Phase;
        if (RelocationEvents.KindOf(from, e, to) is not { } kind) return;
        var over = kind is RelocationEventKind.Completed or RelocationEventKind.Cancelled or RelocationEventKind.Superseded;
        _out.Add(LifecycleOf(f, kind, to, now, detail: kind == RelocationEventKind.Superseded ? "the sites show another attempt of this disk's relocation" : null,
            duration: over ? now - f.Began : null));
    }

    private static Lifecycle LifecycleOf(Flow f, RelocationEventKind kind, RelocationPhase? phase, DateTime now, string? detail = null, TimeSpan? duration = null) =>
        new(kind, f.Relocation, f.Disk, f.From, f.To, f.Mode, f.Epoch, phase, now,
            kind == RelocationEventKind.Handover ? f.Trigger : null, duration, detail);

    /// <summary>Moves a flow by an event whose target the table alone decides; a flow that ends leaves. An answer
    /// that keeps the phase does not restart its clock (the reconcile rounds judge by it).</summary>
    private void Move(Flow f, FlowEvent e, DateTime now)
    {
        var to = FlowTransitions.Next(f.Phase, e);
        if (to is not { } phase)
        {
            _flows.Remove(f.Disk);
            if (PastHandover(f.Phase)) _endedPastHandover[f.Relocation] = (f.Epoch, now);
            Moved(f, null, e, now, ended: true);
        }
        else if (phase != f.Phase || !FlowTransitions.IsSiteAnswer(e)) f.MoveTo(e, phase, now);
    }
}
