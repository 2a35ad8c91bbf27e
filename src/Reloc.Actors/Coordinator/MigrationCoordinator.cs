using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Reloc.Actors.Site;
using static Reloc.Actors.Coordinator.Reconciler;
using static Reloc.Actors.Coordinator.RelocationProtocol;

namespace Reloc.Actors.Coordinator;

/// <summary>
/// Cluster singleton that runs relocations as message flows between sites. It holds no authority of its
/// own: which site owns a disk, at which epoch, and how far a relocation got lives with the disk at its
/// sites (persisted there). The coordinator sequences the steps, each of which a site checks against its
/// own state, and every few seconds reads the sites back (<see cref="Reconciler"/>): a new coordinator
/// after a fail-over picks up every relocation under way, and a step lost in transit is sent again.
/// </summary>
/// <remarks>
/// Per relocation:  Starting --(OutgoingStarted)--> Preparing --(IncomingPrepared)--> Serving
///   Serving --(idle source | source's guest gone to the destination | write at destination | operator)--> Fencing
///   Fencing --(Fenced)--> Transferring --(OwnershipMoved)--> Postcopy --(RelocationDone)--> Releasing --(Released)--> done
///   Starting/Preparing/Serving --(operator cancel)--> Cancelling --(OutgoingStopped, IncomingDropped)--> done
/// </remarks>
public sealed class MigrationCoordinator : ReceiveActor, IWithTimers
{
    private sealed class Flow(string disk, string from, string to, long epoch, long size, string sourceUri, string relocation)
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
        public long Rate { get; set; }
        public bool Prefetch { get; init; } = true;
        public string Phase { get; private set; } = Starting;
        public DateTime PhaseSince { get; private set; } = DateTime.UtcNow;
        public int SourceClients { get; set; } = -1;
        public bool DestinationHadClients { get; set; }
        /// <summary>A trigger that fired before the destination was serving.</summary>
        public string? EarlyHandover { get; set; }
        public IActorRef? CancelledBy { get; set; }

        public void MoveTo(string phase)
        {
            Phase = phase;
            PhaseSince = DateTime.UtcNow;
        }

        public RelocationInfo Info => new(Disk, From, To, Epoch, Phase);
    }

    private sealed record Found(Relocate Request, IActorRef ReplyTo, List<SiteProtocol.DiskList> Lists);
    /// <param name="Asked">When the round began: what changed since is newer than its answers.</param>
    private sealed record Observed(List<SiteProtocol.DiskList> Lists, DateTime Asked);
    private sealed record Reconcile
    {
        public static readonly Reconcile Instance = new();
    }

    private readonly Dictionary<string, Flow> _flows = new(StringComparer.Ordinal);
    /// <summary>Copies to drop once their source confirms it no longer sends them (relocation id → where).</summary>
    private readonly Dictionary<string, (string Disk, long Epoch, string Site)> _dropsAfterStop = new(StringComparer.Ordinal);
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly TimeSpan _askTimeout = TimeSpan.FromSeconds(10);
    private readonly TimeSpan _interval;
    private bool _observing;

    public ITimerScheduler Timers { get; set; } = null!;

    public MigrationCoordinator(TimeSpan reconcileInterval)
    {
        _interval = reconcileInterval;
        Receive<Relocate>(OnRelocate);
        Receive<Found>(OnFound);
        Receive<GetRelocations>(_ => Sender.Tell(new RelocationList(_flows.Values.OrderBy(f => f.Disk).Select(f => f.Info).ToList())));
        Receive<GetRelocationStatus>(m =>
        {
            if (!_flows.TryGetValue(m.Disk, out var f)) { Sender.Tell(new RelocationRefused($"disk '{m.Disk}' is not relocating")); return; }
            var info = f.Info;
            SiteOf(f.To).Ask<object>(new GetProgress(f.Disk), _askTimeout).PipeTo(Sender,
                success: r => r is DiskProgress p ? new RelocationStatus(info, p) : new RelocationRefused($"site {f.To} did not report progress: {r}"),
                failure: ex => new RelocationRefused($"site {f.To} did not report progress: {ex.Message}"));
        });
        Receive<SetRelocationRate>(m =>
        {
            if (!_flows.TryGetValue(m.Disk, out var f)) { Sender.Tell(new RelocationRefused($"disk '{m.Disk}' is not relocating")); return; }
            if (m.RateBytesPerSecond < 0) { Sender.Tell(new RelocationRefused($"rate must not be negative, not {m.RateBytesPerSecond}")); return; }
            f.Rate = m.RateBytesPerSecond;
            SiteOf(f.To).Tell(new SetRate(f.Disk, f.Rate));
            Sender.Tell(f.Info);
        });
        Receive<CancelRelocation>(m =>
        {
            if (!_flows.TryGetValue(m.Disk, out var f)) { Sender.Tell(new RelocationRefused($"disk '{m.Disk}' is not relocating")); return; }
            if (f.Phase is not (Starting or Preparing or Serving or Cancelling))
            { Sender.Tell(new RelocationRefused($"disk '{m.Disk}' is {f.Phase}: past the handover a relocation only goes forward (relocate it back instead)")); return; }
            f.CancelledBy = Sender;
            f.MoveTo(Cancelling);
            SiteOf(f.From).Tell(new StopOutgoing(f.Disk, f.Epoch, f.Relocation));
        });
        Receive<OutgoingStarted>(m => Step(m.Disk, m.Relocation, Starting, f =>
        {
            f.SourceClients = m.SourceClients;
            f.MoveTo(Preparing);
            SendPrepare(f);
        }));
        Receive<IncomingPrepared>(m => Step(m.Disk, m.Relocation, Preparing, f =>
        {
            f.MoveTo(Serving);
            if (f.SourceClients == 0) BeginHandover(f, "the source has no clients"); // an idle disk moves at once
            else if (f.EarlyHandover is not null) BeginHandover(f, f.EarlyHandover);
        }));
        Receive<HandoverRequested>(m =>
        {
            var why = $"a write arrived at {Sender.Path.Address}";
            if (!_flows.TryGetValue(m.Disk, out var f) || f.Relocation != m.Relocation) return;
            if (f.Phase is Starting or Preparing) f.EarlyHandover = why;
            else if (f.Phase == Serving) BeginHandover(f, why);
        });
        Receive<GuestClients>(OnGuestClients);
        Receive<RequestHandover>(m =>
        {
            if (!_flows.TryGetValue(m.Disk, out var f)) { Sender.Tell(new RelocationRefused($"disk '{m.Disk}' is not relocating")); return; }
            if (f.Phase != Serving) { Sender.Tell(new RelocationRefused($"disk '{m.Disk}' is {f.Phase}, not waiting for a handover")); return; }
            BeginHandover(f, "operator");
            Sender.Tell(f.Info);
        });
        Receive<Fenced>(m => Step(m.Disk, m.Relocation, Fencing, f =>
        {
            if (m.NewEpoch != f.NewEpoch) return;
            f.MoveTo(Transferring);
            SiteOf(f.To).Tell(new TakeOwnershipAt(f.Disk, f.NewEpoch, m.FinalDirty, f.Relocation));
        }));
        Receive<OwnershipMoved>(m => Step(m.Disk, m.Relocation, Transferring, f =>
        {
            if (m.NewEpoch == f.NewEpoch) f.MoveTo(Postcopy);
        }));
        Receive<RelocationDone>(m =>
        {
            // Also from Transferring: a disk pre-copied in full completes the moment it is owned.
            if (_flows.TryGetValue(m.Disk, out var f) && f.Relocation == m.Relocation && f.Phase is Transferring or Postcopy && m.Epoch == f.NewEpoch)
            {
                f.MoveTo(Releasing);
                SiteOf(f.From).Tell(new Release(f.Disk, f.NewEpoch, f.Relocation));
            }
        });
        Receive<Released>(m => Step(m.Disk, m.Relocation, Releasing, f =>
        {
            _flows.Remove(f.Disk);
            _log.Info("relocation of {0} from {1} to {2} finished at epoch {3}", f.Disk, f.From, f.To, f.NewEpoch);
        }));
        Receive<OutgoingStopped>(m =>
        {
            if (_dropsAfterStop.Remove(m.Relocation, out var drop))
                SiteOf(drop.Site).Tell(new DropIncoming(drop.Disk, drop.Epoch, m.Relocation));
            else Step(m.Disk, m.Relocation, Cancelling, f => SiteOf(f.To).Tell(new DropIncoming(f.Disk, f.Epoch, f.Relocation)));
        });
        Receive<IncomingDropped>(m => Step(m.Disk, m.Relocation, Cancelling, f =>
        {
            _flows.Remove(f.Disk);
            f.CancelledBy?.Tell(new RelocationCancelled(f.Disk));
            _log.Info("relocation of {0} from {1} to {2} cancelled; {1} owns it at epoch {3}", f.Disk, f.From, f.To, f.Epoch);
        }));
        Receive<SiteProtocol.Refused>(m => _log.Warning("a site refused a relocation step: {0}", m.Reason));
        Receive<Reconcile>(_ =>
        {
            if (_observing) return;
            _observing = true;
            var sites = Sites();
            var asked = DateTime.UtcNow;
            Task.WhenAll(sites.Select(s => SiteOf(s).Ask<SiteProtocol.DiskList>(new SiteProtocol.ListDisks(), _askTimeout)
                    .ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : null, TaskScheduler.Default)))
                .PipeTo(Self, success: lists => new Observed(lists.OfType<SiteProtocol.DiskList>().ToList(), asked));
        });
        Receive<Observed>(OnObserved);
    }

    protected override void PreStart() =>
        // At once: a coordinator that just took over learns what is under way before anything else.
        Timers.StartPeriodicTimer("reconcile", Reconcile.Instance, TimeSpan.Zero, _interval);

    public static Props Props(TimeSpan? reconcileInterval = null) =>
        Akka.Actor.Props.Create(() => new MigrationCoordinator(reconcileInterval ?? TimeSpan.FromSeconds(2)));

    private void OnRelocate(Relocate m)
    {
        if (_flows.ContainsKey(m.Disk)) { Sender.Tell(new RelocationRefused($"disk '{m.Disk}' is already relocating")); return; }
        var sites = Sites();
        if (!sites.Contains(m.ToSite)) { Sender.Tell(new RelocationRefused($"unknown site '{m.ToSite}' (sites: {string.Join(", ", sites)})")); return; }
        if (m.RateBytesPerSecond < 0) { Sender.Tell(new RelocationRefused($"rate must not be negative, not {m.RateBytesPerSecond}")); return; }
        var replyTo = Sender;
        // Where the disk is lives with the sites: ask them all.
        Task.WhenAll(sites.Select(s => SiteOf(s).Ask<SiteProtocol.DiskList>(new SiteProtocol.ListDisks(), _askTimeout)))
            .PipeTo(Self, success: lists => new Found(m, replyTo, lists.ToList()),
                failure: _ => new Found(m, replyTo, []));
    }

    private void OnFound(Found f)
    {
        var m = f.Request;
        if (f.Lists.Count == 0) { f.ReplyTo.Tell(new RelocationRefused("could not reach every site to find the disk")); return; }
        var copies = f.Lists.SelectMany(l => l.Disks).Where(d => d.Name == m.Disk).ToList();
        var owner = copies.FirstOrDefault(d => d.Phase == SiteDisk.Owned);
        if (owner is null)
        {
            f.ReplyTo.Tell(new RelocationRefused(copies.Count == 0 ? $"unknown disk '{m.Disk}'" : $"disk '{m.Disk}' is already relocating"));
            return;
        }
        if (owner.Site == m.ToSite) { f.ReplyTo.Tell(new RelocationRefused($"disk '{m.Disk}' is already at {m.ToSite}")); return; }
        // A copy left elsewhere (a fenced source not yet released, a dropped copy not yet removed) goes first:
        // the reconciler follows one relocation per disk.
        var leftover = copies.FirstOrDefault(d => d.Site != owner.Site);
        if (leftover is not null)
        { f.ReplyTo.Tell(new RelocationRefused($"site {leftover.Site} still holds a {leftover.Phase} copy of '{m.Disk}' from an earlier relocation; it is released first, try again shortly")); return; }
        if (_flows.ContainsKey(m.Disk)) { f.ReplyTo.Tell(new RelocationRefused($"disk '{m.Disk}' is already relocating")); return; }
        var flow = new Flow(m.Disk, owner.Site, m.ToSite, owner.Epoch, owner.Size, owner.NbdUri, Guid.NewGuid().ToString("N"))
        {
            Hybrid = m.Hybrid, Rate = m.RateBytesPerSecond, Prefetch = m.Prefetch,
        };
        _flows[m.Disk] = flow;
        f.ReplyTo.Tell(new RelocationAccepted(m.Disk, flow.From, flow.To, flow.Epoch));
        // The source tracks writes before the destination copies anything, so no write escapes the invalidations.
        SiteOf(flow.From).Tell(new StartOutgoing(flow.Disk, flow.To, flow.Epoch, TrackingBlockSize, flow.Relocation));
    }

    private void SendPrepare(Flow f)
    {
        // The destination fetches through the source's peer export: its connections are not the guest's.
        var sourceUri = f.SourceUri[..(f.SourceUri.LastIndexOf('/') + 1)] + SiteActor.PeerExport(f.Disk);
        SiteOf(f.To).Tell(new PrepareIncoming(f.Disk, f.Size, f.From, sourceUri, f.Epoch, f.Hybrid, f.Rate, f.Prefetch, f.Relocation));
    }

    private void OnGuestClients(GuestClients m)
    {
        if (!_flows.TryGetValue(m.Disk, out var f)) return;
        if (m.Site == f.To && m.Count > 0) f.DestinationHadClients = true;
        if (m.Site == f.From) f.SourceClients = m.Count;
        // The source's last guest left after one arrived at the destination: the VM moved.
        if (f.Phase == Serving && f.SourceClients == 0 && f.DestinationHadClients)
            BeginHandover(f, "the source's last client left after a client connected at the destination");
    }

    private void BeginHandover(Flow f, string why)
    {
        _log.Info("handover of {0} from {1} to {2} at epoch {3}: {4}", f.Disk, f.From, f.To, f.NewEpoch, why);
        f.MoveTo(Fencing);
        SiteOf(f.From).Tell(new Fence(f.Disk, f.NewEpoch, f.Relocation));
    }

    /// <summary>What the sites say, against what this coordinator believes: relocations it did not know
    /// (it just took over) are adopted; ones stuck in a phase for a while get their step again. Only flows
    /// unchanged since the round began are judged by it: its answers may be older than what they know.</summary>
    private void OnObserved(Observed o)
    {
        _observing = false;
        var now = DateTime.UtcNow;
        bool Stale(Flow f) => f.PhaseSince >= o.Asked || now - f.PhaseSince < _interval * 2;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var derived = Derive(o.Lists);
        // A drop waiting for a stop the sites no longer call for (the source refused, or it is over) is forgotten.
        var wanted = derived.Select(d => d.Step).OfType<StopOutgoing>().Select(s => s.Relocation).ToHashSet(StringComparer.Ordinal);
        foreach (var id in _dropsAfterStop.Keys.Where(id => !wanted.Contains(id)).ToList()) _dropsAfterStop.Remove(id);
        foreach (var d in derived)
        {
            seen.Add(d.Info.Disk);
            if (d.Anomaly is not null) { _log.Warning("relocation of {0}: {1}", d.Info.Disk, d.Anomaly); continue; }
            if (_flows.TryGetValue(d.Info.Disk, out var f) && f.Relocation != d.Relocation && !Stale(f))
            {
                // The sites are on another attempt (a coordinator that was cut off ran this one): theirs wins.
                _log.Warning("relocation of {0}: the sites show attempt {1}, not {2}; following the sites", f.Disk, d.Relocation, f.Relocation);
                _flows.Remove(f.Disk);
                f = null;
            }
            if (f is null)
            {
                f = new Flow(d.Info.Disk, d.Info.FromSite, d.Info.ToSite, d.Info.Epoch, d.Size, d.SourceUri, d.Relocation);
                _flows[f.Disk] = f;
                f.MoveTo(d.Info.Phase);
                _log.Info("relocation of {0} from {1} to {2} picked up from the sites: {3}", f.Disk, f.From, f.To, f.Phase);
            }
            else if (f.Relocation != d.Relocation || Stale(f)) continue; // moving along by itself
            else if (f.Phase == Cancelling && d.Info.Phase is Preparing or Serving)
            {
                SiteOf(f.From).Tell(new StopOutgoing(f.Disk, f.Epoch, f.Relocation)); // the cancel's first step got lost
                f.MoveTo(Cancelling);
                continue;
            }
            else f.MoveTo(d.Info.Phase);
            Resume(f, d);
        }
        // Relocations no site shows any more (finished, or cancelled) while both sites answered.
        var answered = o.Lists.Select(l => l.Site).ToHashSet(StringComparer.Ordinal);
        foreach (var f in _flows.Values.Where(f => !seen.Contains(f.Disk) && f.Phase != Starting
                     && answered.Contains(f.From) && answered.Contains(f.To) && !Stale(f)).ToList())
        {
            _flows.Remove(f.Disk);
            f.CancelledBy?.Tell(new RelocationCancelled(f.Disk));
            _log.Info("relocation of {0}: the sites show it over ({1})", f.Disk, f.Phase);
        }
        // A relocation whose first step got lost: the source never began tracking.
        foreach (var f in _flows.Values.Where(f => f.Phase == Starting && !Stale(f)))
        {
            f.MoveTo(Starting);
            SiteOf(f.From).Tell(new StartOutgoing(f.Disk, f.To, f.Epoch, TrackingBlockSize, f.Relocation));
        }
    }

    private void Resume(Flow f, Derived d)
    {
        if (d is { Step: StopOutgoing stop, DropAt: { } dropAt })
            _dropsAfterStop[stop.Relocation] = (stop.Disk, stop.Epoch, dropAt);
        switch (f.Phase)
        {
            case Preparing when d.Step is not null && d.StepTo is not null:
                SiteOf(d.StepTo).Tell(d.Step); // another attempt's copy first
                break;
            case Preparing:
                SendPrepare(f);
                break;
            case Serving when d.Handover:
                BeginHandover(f, "a handover trigger seen at the sites");
                break;
            case Fencing or Releasing or Cancelling when d.Step is not null && d.StepTo is not null:
                SiteOf(d.StepTo).Tell(d.Step);
                break;
        }
    }

    /// <summary>Runs a step only for this relocation in the expected phase (duplicates, strays and answers
    /// to an earlier attempt are ignored).</summary>
    private void Step(string disk, string relocation, string phase, Action<Flow> action)
    {
        if (_flows.TryGetValue(disk, out var f) && f.Relocation == relocation && f.Phase == phase) action(f);
        else _log.Debug("ignored a {0} step for {1}", phase, disk);
    }

    private List<string> Sites() => Cluster.Get(Context.System).State.Members
        .Where(mem => mem.Status == MemberStatus.Up).SelectMany(mem => mem.Roles).Distinct().Order().ToList();

    private ActorSelection SiteOf(string site) => Context.ActorSelection(SiteNode.SitePath(Context.System, site));
}
