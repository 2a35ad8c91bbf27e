using System.Diagnostics;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Reloc.Actors.Site;
using Reloc.Actors.Telemetry;
using static Reloc.Actors.Coordinator.RelocationProtocol;

namespace Reloc.Actors.Coordinator;

/// <summary>
/// Cluster singleton that runs relocations as message flows between sites: the actor shell of
/// <see cref="CoordinatorCore"/>, which decides everything. It turns messages into inputs and carries out the
/// decisions (tell a site, reply, ask every site and feed the answers back). It holds no authority of its own:
/// which site owns a disk, at which epoch, and how far a relocation got lives with the disk at its sites.
/// </summary>
public sealed class MigrationCoordinator : ReceiveActor, IWithTimers
{
    private sealed record Input(CoordinatorInput Value);
    private sealed record Reconcile
    {
        public static readonly Reconcile Instance = new();
    }

    private readonly CoordinatorCore _core;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly TimeSpan _askTimeout = TimeSpan.FromSeconds(10);
    /// <summary>How long a site may take to store a link budget (a journal write: milliseconds); below the management
    /// API's wait, so that the operator gets the coordinator's answer rather than a timeout.</summary>
    public static readonly TimeSpan StoreTimeout = TimeSpan.FromSeconds(5);
    private readonly TimeSpan _interval;
    private readonly RelocationEventPublisher _events;
    private readonly RelocationTracing? _tracing;
    private readonly RelocMetrics? _metrics;
    private long _roundAsked; // Stopwatch timestamp of the reconcile round's ask under way

    public ITimerScheduler Timers { get; set; } = null!;

    public MigrationCoordinator(TimeSpan reconcileInterval, RelocTelemetry? telemetry = null, LinkSettings? links = null, AdmissionSettings? admission = null)
    {
        _tracing = telemetry is null ? null : new RelocationTracing(telemetry);
        _metrics = telemetry?.Relocation;
        _interval = reconcileInterval;
        _core = new CoordinatorCore(reconcileInterval, () => Guid.NewGuid().ToString("N"), links, admission);
        _events = new RelocationEventPublisher(Context, _log, _askTimeout);
        Receive<RelocationEventPublisher.Ready>(m => _events.Publish(m.Event));
        Receive<Relocate>(m => Run(new CoordinatorInput.Relocate(m, Sender, Sites())));
        Receive<RequestHandover>(Command);
        Receive<CancelRelocation>(Command);
        Receive<SetRelocationRate>(Command);
        Receive<SetRelocationWeight>(Command);
        Receive<SetLinkBudget>(Command);
        Receive<GetLinks>(Command);
        Receive<GetRelocations>(Command);
        Receive<GetRelocationStatus>(Command);
        Receive<DrainSite>(Command);
        Receive<QueuedAt>(FromSite);
        Receive<QueueRefused>(FromSite);
        Receive<Unqueued>(FromSite);
        Receive<OutgoingStarted>(FromSite);
        Receive<IncomingPrepared>(FromSite);
        Receive<HandoverRequested>(FromSite);
        Receive<GuestClients>(FromSite);
        Receive<RelocationStalled>(FromSite);
        Receive<Fenced>(FromSite);
        Receive<OwnershipMoved>(FromSite);
        Receive<RelocationDone>(FromSite);
        Receive<Released>(FromSite);
        Receive<OutgoingStopped>(FromSite);
        Receive<IncomingDropped>(FromSite);
        Receive<SiteProtocol.Refused>(FromSite);
        Receive<LinkBudgetHeld>(FromSite);
        Receive<Reconcile>(_ => Run(new CoordinatorInput.Tick(DateTime.UtcNow, Sites())));
        Receive<Input>(m =>
        {
            if (m.Value is CoordinatorInput.Observed o) Judge(o);
            else
            {
                if (m.Value is CoordinatorInput.Found f) _metrics?.CoordinatorMessages(CoordinatorTraffic.DiskListReceived, f.Lists.Count);
                Run(m.Value);
            }
        });
    }

    protected override void PreStart() =>
        // At once: a coordinator that just took over learns what is under way before anything else.
        Timers.StartPeriodicTimer("reconcile", Reconcile.Instance, TimeSpan.Zero, _interval);

    public static Props Props(TimeSpan? reconcileInterval = null, RelocTelemetry? telemetry = null, LinkSettings? links = null, AdmissionSettings? admission = null) =>
        Akka.Actor.Props.Create(() => new MigrationCoordinator(reconcileInterval ?? TimeSpan.FromSeconds(2), telemetry, links, admission));

    protected override void PostStop() => _tracing?.Stop();

    private void Command(object request) => Run(new CoordinatorInput.Command(request, Sender, DateTime.UtcNow, Sites()));

    private void FromSite(object message)
    {
        _metrics?.CoordinatorMessages(CoordinatorTraffic.ReportReceived, 1);
        Run(new CoordinatorInput.FromSite(message, Sender.Path.Address.ToString(), DateTime.UtcNow));
    }

    /// <summary>A reconcile round's answers: judged, and measured (what the round costs as the cluster grows).</summary>
    private void Judge(CoordinatorInput.Observed o)
    {
        var start = Stopwatch.GetTimestamp();
        Run(o);
        if (_metrics is null) return;
        _metrics.CoordinatorMessages(CoordinatorTraffic.DiskListReceived, o.Lists.Count);
        _metrics.ReconcileRound(o.Lists.Sum(l => l.Disks.Count), Stopwatch.GetElapsedTime(_roundAsked), Stopwatch.GetElapsedTime(start));
    }

    private void Run(CoordinatorInput input)
    {
        foreach (var decision in _core.Handle(input)) Execute(decision);
        _tracing?.Observe(input, _core.Flows);
    }

    private void Execute(CoordinatorDecision decision)
    {
        switch (decision)
        {
            case CoordinatorDecision.SendToSite s:
                _metrics?.CoordinatorMessages(CoordinatorTraffic.StepSent, 1);
                SiteOf(s.Site).Tell(s.Message);
                break;
            case CoordinatorDecision.Reply r:
                ((IActorRef)r.To).Tell(r.Message);
                break;
            case CoordinatorDecision.AskAllSites { ForRelocate: null } a:
                // A reconcile round judges by whoever answered: a site that did not is unknown, not empty.
                _roundAsked = Stopwatch.GetTimestamp();
                _metrics?.CoordinatorMessages(CoordinatorTraffic.ListDisksSent, Sites().Count);
                SiteDirectory.ListDisks(Context.System, _askTimeout)
                    .PipeTo(Self, success: lists => new Input(new CoordinatorInput.Observed(lists.Answered, a.AskedAt, DateTime.UtcNow)));
                break;
            case CoordinatorDecision.AskAllSites { ForRelocate: { } request } a:
                // Every site must answer: where the disk is lives with them.
                _metrics?.CoordinatorMessages(CoordinatorTraffic.ListDisksSent, Sites().Count);
                SiteDirectory.ListDisks(Context.System, _askTimeout)
                    .PipeTo(Self, success: lists => new Input(new CoordinatorInput.Found(request, a.ReplyTo!, lists.All ?? [], DateTime.UtcNow)));
                break;
            case CoordinatorDecision.AskAllSitesForDrain d:
                SiteDirectory.ListDisks(Context.System, _askTimeout)
                    .PipeTo(Self, success: lists => new Input(new CoordinatorInput.DrainFound(d.Request, d.ReplyTo, lists.All ?? [], DateTime.UtcNow)));
                break;
            case CoordinatorDecision.AskProgress p:
                SiteOf(p.Site).Ask<object>(new GetProgress(p.Disk), _askTimeout).PipeTo((IActorRef)p.ReplyTo,
                    success: r => r is DiskProgress progress ? new RelocationStatus(p.Info, progress) : new RelocationRefused($"site {p.Site} did not report progress: {r}"),
                    failure: ex => new RelocationRefused($"site {p.Site} did not report progress: {ex.Message}"));
                break;
            case CoordinatorDecision.AskToRemember a:
                _metrics?.CoordinatorMessages(CoordinatorTraffic.StepSent, 1);
                SiteOf(a.Site).Ask<object>(new RememberLinkBudget(a.Budget), StoreTimeout).PipeTo(Self,
                    success: r => new Input(r is LinkBudgetHeld held
                        ? new CoordinatorInput.LinkStored(a.Site, a.Budget, held.Budget, null)
                        : new CoordinatorInput.LinkStored(a.Site, a.Budget, null, r is SiteProtocol.Refused refused ? refused.Reason : $"answered {r}")),
                    failure: ex => new Input(new CoordinatorInput.LinkStored(a.Site, a.Budget, null,
                        ex is AskTimeoutException ? $"no answer within {StoreTimeout.TotalSeconds:0} s" : ex.Message)));
                break;
            case CoordinatorDecision.Log l:
                _log.Write(l.Level, l.Text);
                break;
            case CoordinatorDecision.Lifecycle l:
                _events.Handle(l); // logged at Information and published to every node's history
                break;
            case CoordinatorDecision.Ended:
                break; // its log line says it
            default:
                throw new InvalidOperationException($"unknown coordinator decision {decision}");
        }
    }

    private List<string> Sites() => SiteDirectory.Sites(Context.System);

    private ActorSelection SiteOf(string site) => SiteDirectory.SiteOf(Context.System, site);
}
