using Reloc.Actors.Coordinator;
using Reloc.Actors.Site;
using static Reloc.Actors.Coordinator.Reconciler;
using static Reloc.Actors.Coordinator.RelocationProtocol;

namespace Reloc.Actors.Tests.Model;

/// <summary>
/// Mirrors <see cref="MigrationCoordinator"/>: flows in memory only (a fail-over loses them), steps sent to
/// sites, and every reconcile interval the sites' disk lists read back and fed to the real
/// <see cref="Reconciler.Derive"/>, which adopts unknown relocations and resends the step of stuck ones.
/// One instance per incarnation of the singleton, each on its own node (for partitions).
/// </summary>
internal sealed class CoordinatorModel(Sim sim, int incarnation)
{
    /// <summary>MigrationCoordinator.Flow</summary>
    public sealed class Flow(string disk, string from, string to, long epoch, long size, string sourceUri, string relocation, long now)
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
        public bool Prefetch { get; init; } = true;
        public string Phase { get; private set; } = Starting;
        public long PhaseSince { get; private set; } = now;
        public int SourceClients { get; set; } = -1;
        public bool DestinationHadClients { get; set; }
        public string? EarlyHandover { get; set; }
        public Addr? CancelledBy { get; set; }

        public void MoveTo(string phase, long now)
        {
            Phase = phase;
            PhaseSince = now;
        }

        public override string ToString() => $"{Disk} {From}->{To} e{Epoch} #{Relocation} {Phase}";
    }

    /// <param name="Asked">When the round began: what changed since is newer than its answers.</param>
    private sealed record Observed(List<SiteProtocol.DiskList> Lists, long Asked);

    public int Incarnation { get; } = incarnation;
    public string Node => "k" + Incarnation;
    public bool Alive { get; private set; }
    public Dictionary<string, Flow> Flows { get; } = new(StringComparer.Ordinal);
    /// <summary>MigrationCoordinator._dropsAfterStop: copies to drop once their source confirms it no longer sends
    /// them (relocation id → where). In memory only, like the flows.</summary>
    private readonly Dictionary<string, (string Disk, long Epoch, string Site)> _dropsAfterStop = new(StringComparer.Ordinal);
    private Addr Self => new(Node, Incarnation);
    private bool _observing;
    private long Now => sim.Now;
    private const long Interval = Sim.ReconcileIntervalMs;

    /// <summary>PreStart: reconcile at once, then every interval.</summary>
    public void Start()
    {
        Alive = true;
        sim.Stats.Failovers++;
        void Fire()
        {
            if (!Alive) return;
            sim.After(Interval, Fire);
            OnReconcile();
        }
        sim.After(0, Fire);
    }

    public void Die()
    {
        Alive = false;
        sim.Trace($"coordinator k{Incarnation} stops");
    }

    public void Receive(object m, Addr sender)
    {
        if (!Alive) return;
        long? messageBase = SiteModel.EpochBase(m);
        Flow? flow = null;
        bool stale = messageBase is not null && Flows.TryGetValue(SiteModel.DiskOf(m), out flow) && messageBase < flow.Epoch;
        // An answer (or a handover request) of another relocation than the flow's must change nothing.
        var relocation = SiteModel.RelocationOf(m);
        var current = relocation is not null && Flows.TryGetValue(SiteModel.DiskOf(m) is { Length: > 0 } disk ? disk : (m as HandoverRequested)?.Disk ?? "", out var f) ? f.Relocation : null;
        bool foreign = current is not null && current != relocation;
        string before = stale || foreign ? Fingerprint() : "";
        Dispatch(m, sender);
        if (stale) sim.CheckStale($"coordinator k{Incarnation}", m, messageBase!.Value, flow!.Epoch, before, Fingerprint());
        if (foreign) sim.CheckForeign($"coordinator k{Incarnation}", m, relocation!, current!, before, Fingerprint());
    }

    private string Fingerprint() => string.Join(";", Flows.Values.Select(f => $"{f}{(f.EarlyHandover is not null ? " early handover" : "")}"));

    /// <summary>The Receive&lt;...&gt; handlers of MigrationCoordinator's constructor, one case each.</summary>
    private void Dispatch(object m, Addr sender)
    {
        switch (m)
        {
            case Relocate x: OnRelocate(x, sender); break;
            case RequestHandover x:
                {
                    if (!Flows.TryGetValue(x.Disk, out var f)) { Tell(sender, new RelocationRefused($"disk '{x.Disk}' is not relocating")); return; }
                    if (f.Phase != Serving) { Tell(sender, new RelocationRefused($"disk '{x.Disk}' is {f.Phase}, not waiting for a handover")); return; }
                    BeginHandover(f, "operator");
                    Tell(sender, new RelocationInfo(f.Disk, f.From, f.To, f.Epoch, f.Phase));
                    break;
                }
            case CancelRelocation x:
                {
                    if (!Flows.TryGetValue(x.Disk, out var f)) { Tell(sender, new RelocationRefused($"disk '{x.Disk}' is not relocating")); return; }
                    if (f.Phase is not (Starting or Preparing or Serving or Cancelling)) { Tell(sender, new RelocationRefused($"disk '{x.Disk}' is {f.Phase}: past the handover")); return; }
                    f.CancelledBy = sender;
                    f.MoveTo(Cancelling, Now);
                    SiteOf(f.From, new StopOutgoing(f.Disk, f.Epoch, f.Relocation));
                    break;
                }
            case OutgoingStarted x:
                Step(x.Disk, x.Relocation, Starting, f =>
                {
                    f.SourceClients = x.SourceClients;
                    f.MoveTo(Preparing, Now);
                    SendPrepare(f);
                });
                break;
            case IncomingPrepared x:
                Step(x.Disk, x.Relocation, Preparing, f =>
                {
                    f.MoveTo(Serving, Now);
                    if (f.SourceClients == 0) BeginHandover(f, "the source has no clients");
                    else if (f.EarlyHandover is not null) BeginHandover(f, f.EarlyHandover);
                });
                break;
            case HandoverRequested x:
                {
                    var why = $"a write arrived at {sender.Node}";
                    if (!Flows.TryGetValue(x.Disk, out var f) || f.Relocation != x.Relocation) return;
                    if (f.Phase is Starting or Preparing) f.EarlyHandover = why;
                    else if (f.Phase == Serving) BeginHandover(f, why);
                    break;
                }
            case GuestClients x: OnGuestClients(x); break;
            case Fenced x:
                Step(x.Disk, x.Relocation, Fencing, f =>
                {
                    if (x.NewEpoch != f.NewEpoch) return;
                    f.MoveTo(Transferring, Now);
                    SiteOf(f.To, new TakeOwnershipAt(f.Disk, f.NewEpoch, x.FinalDirty, f.Relocation));
                });
                break;
            case OwnershipMoved x:
                Step(x.Disk, x.Relocation, Transferring, f => { if (x.NewEpoch == f.NewEpoch) f.MoveTo(Postcopy, Now); });
                break;
            case RelocationDone x:
                // Also from Transferring: a disk pre-copied in full completes the moment it is owned.
                if (Flows.TryGetValue(x.Disk, out var done) && done.Relocation == x.Relocation && done.Phase is Transferring or Postcopy && x.Epoch == done.NewEpoch)
                {
                    done.MoveTo(Releasing, Now);
                    SiteOf(done.From, new Release(done.Disk, done.NewEpoch, done.Relocation));
                }
                break;
            case Released x:
                Step(x.Disk, x.Relocation, Releasing, f =>
                {
                    Flows.Remove(f.Disk);
                    sim.EndedRelocations.Add(f.Relocation);
                    sim.Trace($"  k{Incarnation}: relocation of {f.Disk} from {f.From} to {f.To} finished at epoch {f.NewEpoch}");
                });
                break;
            case OutgoingStopped x:
                // MigrationCoordinator: Receive<OutgoingStopped>: a reconciler's drop first, else the flow's cancel.
                if (_dropsAfterStop.Remove(x.Relocation, out var drop))
                {
                    sim.Stats.Hit(Paths.DropAfterStop);
                    SiteOf(drop.Site, new DropIncoming(drop.Disk, drop.Epoch, x.Relocation));
                }
                else Step(x.Disk, x.Relocation, Cancelling, f => SiteOf(f.To, new DropIncoming(f.Disk, f.Epoch, f.Relocation)));
                break;
            case IncomingDropped x:
                Step(x.Disk, x.Relocation, Cancelling, f =>
                {
                    Flows.Remove(f.Disk);
                    sim.EndedRelocations.Add(f.Relocation);
                    sim.Stats.Cancels++;
                    if (f.CancelledBy is { } by) Tell(by, new RelocationCancelled(f.Disk));
                    sim.Trace($"  k{Incarnation}: relocation of {f.Disk} cancelled; {f.From} owns it at epoch {f.Epoch}");
                });
                break;
            case SiteProtocol.Refused x:
                sim.Trace($"  k{Incarnation}: a site refused a relocation step: {x.Reason}");
                break;
            case Observed x: OnObserved(x); break;
            default:
                throw new InvalidOperationException($"coordinator got {m}");
        }
    }

    private void Tell(Addr to, object body) => sim.Reply(Self, to, body);
    private void SiteOf(string site, object body) => sim.ToSite(Node, site, body, Self);

    /// <summary>Ask every site for its disks (each ask times out on its own); then <paramref name="then"/> with
    /// the lists in site order (null where the ask failed), in this actor's mailbox.</summary>
    private void AskAllSites(Action<SiteProtocol.DiskList?[]> then)
    {
        var sites = sim.Sites.Select(s => s.Name).ToList(); // Sites(): every member with a site role
        var lists = new SiteProtocol.DiskList?[sites.Count];
        int remaining = sites.Count;
        for (int i = 0; i < sites.Count; i++)
        {
            int index = i;
            bool over = false;
            void Complete(SiteProtocol.DiskList? list)
            {
                if (over) return;
                over = true;
                lists[index] = list;
                if (--remaining == 0) sim.Local(Node, "coordinator", () => { if (Alive) then(lists); });
            }
            var ask = sim.NewAsk(Node, Incarnation, r => Complete(r as SiteProtocol.DiskList));
            sim.ToSite(Node, sites[i], new SiteProtocol.ListDisks(), ask);
            sim.After(Sim.CoordinatorAskTimeoutMs, () => Complete(null));
        }
    }

    /// <summary>MigrationCoordinator: Receive&lt;Reconcile&gt;</summary>
    private void OnReconcile()
    {
        if (_observing) return;
        _observing = true;
        long asked = Now;
        AskAllSites(lists => Receive(new Observed(lists.OfType<SiteProtocol.DiskList>().ToList(), asked), Self));
    }

    /// <summary>MigrationCoordinator.OnRelocate + OnFound</summary>
    private void OnRelocate(Relocate m, Addr replyTo)
    {
        if (Flows.ContainsKey(m.Disk)) { Tell(replyTo, new RelocationRefused($"disk '{m.Disk}' is already relocating")); return; }
        AskAllSites(answers =>
        {
            // Task.WhenAll fails if any ask failed: OnFound with no lists.
            var lists = answers.Any(a => a is null) ? [] : answers.Select(a => a!).ToList();
            OnFound(m, replyTo, lists);
        });
    }

    private void OnFound(Relocate m, Addr replyTo, List<SiteProtocol.DiskList> lists)
    {
        if (!Alive) return;
        if (lists.Count == 0) { Tell(replyTo, new RelocationRefused("could not reach every site to find the disk")); return; }
        var copies = lists.SelectMany(l => l.Disks).Where(d => d.Name == m.Disk).ToList();
        var owner = copies.FirstOrDefault(d => d.Phase == SiteDisk.Owned);
        if (owner is null) { Tell(replyTo, new RelocationRefused(copies.Count == 0 ? $"unknown disk '{m.Disk}'" : $"disk '{m.Disk}' is already relocating")); return; }
        if (owner.Site == m.ToSite) { Tell(replyTo, new RelocationRefused($"disk '{m.Disk}' is already at {m.ToSite}")); return; }
        // A copy left elsewhere (a fenced source not yet released, a dropped copy not yet removed) goes first (F13).
        var leftover = copies.FirstOrDefault(d => d.Site != owner.Site);
        if (leftover is not null)
        {
            sim.Stats.Hit(Paths.RefusedLeftoverCopy);
            Tell(replyTo, new RelocationRefused($"site {leftover.Site} still holds a {leftover.Phase} copy of '{m.Disk}' from an earlier relocation; it is released first, try again shortly"));
            return;
        }
        if (Flows.ContainsKey(m.Disk)) { Tell(replyTo, new RelocationRefused($"disk '{m.Disk}' is already relocating")); return; }
        var flow = new Flow(m.Disk, owner.Site, m.ToSite, owner.Epoch, owner.Size, owner.NbdUri, sim.NewRelocation(), Now) { Hybrid = m.Hybrid, Prefetch = m.Prefetch };
        Flows[m.Disk] = flow;
        sim.Trace($"  k{Incarnation}: relocation accepted: {flow}");
        Tell(replyTo, new RelocationAccepted(m.Disk, flow.From, flow.To, flow.Epoch));
        SiteOf(flow.From, new StartOutgoing(flow.Disk, flow.To, flow.Epoch, 65536, flow.Relocation));
    }

    /// <summary>MigrationCoordinator.SendPrepare</summary>
    private void SendPrepare(Flow f)
    {
        var sourceUri = f.SourceUri[..(f.SourceUri.LastIndexOf('/') + 1)] + SiteActor.PeerExport(f.Disk);
        SiteOf(f.To, new PrepareIncoming(f.Disk, f.Size, f.From, sourceUri, f.Epoch, f.Hybrid, 0, f.Prefetch, f.Relocation));
    }

    /// <summary>MigrationCoordinator.OnGuestClients</summary>
    private void OnGuestClients(GuestClients m)
    {
        if (!Flows.TryGetValue(m.Disk, out var f)) return;
        if (m.Site == f.To && m.Count > 0) f.DestinationHadClients = true;
        if (m.Site == f.From) f.SourceClients = m.Count;
        if (f.Phase == Serving && f.SourceClients == 0 && f.DestinationHadClients)
            BeginHandover(f, "the source's last client left after a client connected at the destination");
    }

    /// <summary>MigrationCoordinator.BeginHandover</summary>
    private void BeginHandover(Flow f, string why)
    {
        sim.Trace($"  k{Incarnation}: handover of {f.Disk} from {f.From} to {f.To} at epoch {f.NewEpoch}: {why}");
        f.MoveTo(Fencing, Now);
        SiteOf(f.From, new Fence(f.Disk, f.NewEpoch, f.Relocation));
    }

    /// <summary>MigrationCoordinator.OnObserved: only flows unchanged since the round began are judged by it.</summary>
    private void OnObserved(Observed o)
    {
        _observing = false;
        bool Stale(Flow f) => f.PhaseSince >= o.Asked || Now - f.PhaseSince < Interval * 2;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var d in Derive(o.Lists))
        {
            seen.Add(d.Info.Disk);
            if (d.Anomaly is not null) { sim.Trace($"  k{Incarnation}: relocation of {d.Info.Disk}: {d.Anomaly}"); continue; }
            NoteIfStale(d);
            if (Flows.TryGetValue(d.Info.Disk, out var f) && f.Relocation != d.Relocation && !Stale(f))
            {
                // The sites are on another attempt (a coordinator that was cut off ran this one): theirs wins.
                sim.Trace($"  k{Incarnation}: relocation of {f.Disk}: the sites show attempt {d.Relocation}, not {f.Relocation}; following the sites");
                sim.Stats.Hit(Paths.SitesWin);
                Flows.Remove(f.Disk);
                f = null;
            }
            if (f is null)
            {
                f = new Flow(d.Info.Disk, d.Info.FromSite, d.Info.ToSite, d.Info.Epoch, d.Size, d.SourceUri, d.Relocation, Now);
                Flows[f.Disk] = f;
                f.MoveTo(d.Info.Phase, Now);
                sim.Trace($"  k{Incarnation}: relocation picked up from the sites: {f}");
            }
            else if (f.Relocation != d.Relocation || Stale(f))
            {
                if (f.Relocation == d.Relocation && f.Phase != d.Info.Phase && f.PhaseSince >= o.Asked) sim.Stats.Hit(Paths.StaleRoundNotJudged);
                continue; // moving along by itself
            }
            else if (f.Phase == Cancelling && d.Info.Phase is Preparing or Serving)
            {
                SiteOf(f.From, new StopOutgoing(f.Disk, f.Epoch, f.Relocation)); // the cancel's first step got lost
                f.MoveTo(Cancelling, Now);
                continue;
            }
            else f.MoveTo(d.Info.Phase, Now);
            Resume(f, d);
        }
        // Relocations no site shows any more (finished, or cancelled) while both sites answered.
        var answered = o.Lists.Select(l => l.Site).ToHashSet(StringComparer.Ordinal);
        foreach (var f in Flows.Values.Where(f => !seen.Contains(f.Disk) && f.Phase != Starting
                     && answered.Contains(f.From) && answered.Contains(f.To) && !Stale(f)).ToList())
        {
            Flows.Remove(f.Disk);
            if (f.CancelledBy is { } by) Tell(by, new RelocationCancelled(f.Disk));
            sim.Trace($"  k{Incarnation}: relocation of {f.Disk}: the sites show it over ({f.Phase})");
        }
        // A relocation whose first step got lost: the source never began tracking.
        foreach (var f in Flows.Values.Where(f => f.Phase == Starting && !Stale(f)).ToList())
        {
            f.MoveTo(Starting, Now);
            SiteOf(f.From, new StartOutgoing(f.Disk, f.To, f.Epoch, 65536, f.Relocation));
        }
    }

    /// <summary>For the checks: the round's answers may be of different ages; note when what it derives is not
    /// what the sites show now (what the coordinator then does is based on the past).</summary>
    private void NoteIfStale(Derived d)
    {
        var lists = sim.Sites.Select(s => s.ListNow()).OfType<SiteProtocol.DiskList>().ToList();
        var now = Derive(lists).FirstOrDefault(x => x.Info.Disk == d.Info.Disk);
        if (now is null || now.Info != d.Info || now.Relocation != d.Relocation)
            sim.Note($"coordinator k{Incarnation} reconciles from a stale view: derived {d.Info.FromSite}->{d.Info.ToSite} e{d.Info.Epoch} #{d.Relocation} {d.Info.Phase}, the sites now show {(now is null ? "no relocation" : $"{now.Info.FromSite}->{now.Info.ToSite} e{now.Info.Epoch} #{now.Relocation} {now.Info.Phase}")}");
    }

    /// <summary>MigrationCoordinator.Resume</summary>
    private void Resume(Flow f, Derived d)
    {
        if (d is { Step: StopOutgoing stop, DropAt: { } dropAt })
            _dropsAfterStop[stop.Relocation] = (stop.Disk, stop.Epoch, dropAt);
        switch (f.Phase)
        {
            case Preparing when d.Step is not null && d.StepTo is not null:
                SiteOf(d.StepTo, d.Step); // another attempt's copy first
                break;
            case Preparing:
                SendPrepare(f);
                break;
            case Serving when d.Handover:
                BeginHandover(f, "a handover trigger seen at the sites");
                break;
            case Fencing or Releasing or Cancelling when d.Step is not null && d.StepTo is not null:
                SiteOf(d.StepTo, d.Step);
                break;
        }
    }

    /// <summary>MigrationCoordinator.Step: only for this relocation in the expected phase.</summary>
    private void Step(string disk, string relocation, string phase, Action<Flow> action)
    {
        if (Flows.TryGetValue(disk, out var f) && f.Relocation == relocation && f.Phase == phase) action(f);
        else if (f is not null && f.Relocation != relocation) sim.Stats.Hit(Paths.ForeignAnswerIgnored);
    }

    public string Describe() => $"k{Incarnation}: {(Flows.Count == 0 ? "no flows" : string.Join(", ", Flows.Values))}";
}
