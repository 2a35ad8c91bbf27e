using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Reloc.Actors.Site;
using static Reloc.Actors.Coordinator.RelocationProtocol;

namespace Reloc.Actors.Coordinator;

/// <summary>
/// Cluster singleton that runs relocations as message flows between sites. It holds no authority of its
/// own: which site owns a disk, and at which epoch, lives with the disk at its sites; the coordinator
/// only sequences the steps, each of which a site checks against its own epoch.
/// </summary>
/// <remarks>
/// Per relocation:  Preparing --(IncomingPrepared)--> Starting --(OutgoingStarted)--> Serving
///   Serving --(source idle | write at destination | operator)--> Fencing --(Fenced)--> Transferring
///   Transferring --(OwnershipMoved)--> Postcopy --(RelocationDone)--> Releasing --(Released)--> done
/// </remarks>
public sealed class MigrationCoordinator : ReceiveActor
{
    private sealed class Flow(string disk, string from, string to, long epoch, bool hybrid, long rate)
    {
        public string Disk { get; } = disk;
        public string From { get; } = from;
        public string To { get; } = to;
        public long Epoch { get; } = epoch;
        public long NewEpoch => Epoch + 1;
        public bool Hybrid { get; } = hybrid;
        public long Rate { get; } = rate;
        public string Phase { get; set; } = "preparing";
        /// <summary>A trigger that fired before the source reported in (it may come by another path).</summary>
        public string? EarlyHandover { get; set; }
    }

    private sealed record Found(Relocate Request, IActorRef ReplyTo, List<SiteProtocol.DiskList> Lists);

    private readonly Dictionary<string, Flow> _flows = new(StringComparer.Ordinal);
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly TimeSpan _askTimeout = TimeSpan.FromSeconds(10);

    public MigrationCoordinator()
    {
        Receive<Relocate>(OnRelocate);
        Receive<Found>(OnFound);
        Receive<GetRelocations>(_ => Sender.Tell(new RelocationList(
            _flows.Values.Select(f => new RelocationInfo(f.Disk, f.From, f.To, f.Epoch, f.Phase)).ToList())));
        Receive<IncomingPrepared>(m => Step(m.Disk, "preparing", f =>
        {
            f.Phase = "starting";
            SiteOf(f.From).Tell(new StartOutgoing(f.Disk, SitePath(f.To).ToStringWithAddress(), f.Epoch, 65536));
        }));
        Receive<OutgoingStarted>(m => Step(m.Disk, "starting", f =>
        {
            f.Phase = "serving";
            if (m.SourceClients == 0) BeginHandover(f, "the source has no clients"); // an idle disk moves at once
            else if (f.EarlyHandover is not null) BeginHandover(f, f.EarlyHandover);
        }));
        Receive<HandoverRequested>(m =>
        {
            var why = $"requested by {Sender.Path.Address}";
            if (_flows.TryGetValue(m.Disk, out var f) && f.Phase is "preparing" or "starting") f.EarlyHandover = why;
            else Step(m.Disk, "serving", flow => BeginHandover(flow, why));
        });
        Receive<RequestHandover>(m =>
        {
            if (!_flows.TryGetValue(m.Disk, out var f)) { Sender.Tell(new RelocationRefused($"disk '{m.Disk}' is not relocating")); return; }
            if (f.Phase != "serving") { Sender.Tell(new RelocationRefused($"disk '{m.Disk}' is {f.Phase}, not waiting for a handover")); return; }
            BeginHandover(f, "operator");
            Sender.Tell(new RelocationInfo(f.Disk, f.From, f.To, f.Epoch, f.Phase));
        });
        Receive<Fenced>(m => Step(m.Disk, "fencing", f =>
        {
            if (m.NewEpoch != f.NewEpoch) return;
            f.Phase = "transferring";
            SiteOf(f.To).Tell(new TakeOwnershipAt(f.Disk, f.NewEpoch, m.FinalDirty));
        }));
        Receive<OwnershipMoved>(m => Step(m.Disk, "transferring", f =>
        {
            if (m.NewEpoch == f.NewEpoch) f.Phase = "postcopy";
        }));
        Receive<RelocationDone>(m => Step(m.Disk, "postcopy", f =>
        {
            f.Phase = "releasing";
            SiteOf(f.From).Tell(new Release(f.Disk, f.NewEpoch));
        }));
        Receive<Released>(m => Step(m.Disk, "releasing", f =>
        {
            _flows.Remove(f.Disk);
            _log.Info("relocation of {0} from {1} to {2} finished at epoch {3}", f.Disk, f.From, f.To, f.NewEpoch);
        }));
        Receive<SiteProtocol.Refused>(m => _log.Warning("a site refused a relocation step: {0}", m.Reason));
    }

    public static Props Props() => Akka.Actor.Props.Create(() => new MigrationCoordinator());

    private void OnRelocate(Relocate m)
    {
        if (_flows.ContainsKey(m.Disk)) { Sender.Tell(new RelocationRefused($"disk '{m.Disk}' is already relocating")); return; }
        var sites = Sites();
        if (!sites.Contains(m.ToSite)) { Sender.Tell(new RelocationRefused($"unknown site '{m.ToSite}' (sites: {string.Join(", ", sites)})")); return; }
        var replyTo = Sender;
        // Where the disk is lives with the sites: ask them all.
        Task.WhenAll(sites.Select(s => SiteOf(s).Ask<SiteProtocol.DiskList>(new SiteProtocol.ListDisks(), _askTimeout)))
            .PipeTo(Self, success: lists => new Found(m, replyTo, lists.ToList()),
                failure: ex => new Found(m, replyTo, []));
    }

    private void OnFound(Found f)
    {
        var m = f.Request;
        if (f.Lists.Count == 0) { f.ReplyTo.Tell(new RelocationRefused("could not reach every site to find the disk")); return; }
        var owner = f.Lists.SelectMany(l => l.Disks).FirstOrDefault(d => d.Name == m.Disk && d.Phase == "owned");
        if (owner is null) { f.ReplyTo.Tell(new RelocationRefused($"unknown disk '{m.Disk}'")); return; }
        if (owner.Site == m.ToSite) { f.ReplyTo.Tell(new RelocationRefused($"disk '{m.Disk}' is already at {m.ToSite}")); return; }
        if (_flows.ContainsKey(m.Disk)) { f.ReplyTo.Tell(new RelocationRefused($"disk '{m.Disk}' is already relocating")); return; }
        var flow = new Flow(m.Disk, owner.Site, m.ToSite, owner.Epoch, m.Hybrid, m.RateBytesPerSecond);
        _flows[m.Disk] = flow;
        f.ReplyTo.Tell(new RelocationAccepted(m.Disk, flow.From, flow.To, flow.Epoch));
        // The destination fetches through the source's peer export: its connections are not the guest's.
        var sourceUri = owner.NbdUri[..(owner.NbdUri.LastIndexOf('/') + 1)] + SiteActor.PeerExport(m.Disk);
        SiteOf(flow.To).Tell(new PrepareIncoming(m.Disk, owner.Size, flow.From, sourceUri, flow.Epoch, m.Hybrid, m.RateBytesPerSecond));
    }

    private void BeginHandover(Flow f, string why)
    {
        _log.Info("handover of {0} from {1} to {2} at epoch {3}: {4}", f.Disk, f.From, f.To, f.NewEpoch, why);
        f.Phase = "fencing";
        SiteOf(f.From).Tell(new Fence(f.Disk, f.NewEpoch));
    }

    /// <summary>Runs a step only for a relocation in the expected phase (duplicates and strays are ignored).</summary>
    private void Step(string disk, string phase, Action<Flow> action)
    {
        if (_flows.TryGetValue(disk, out var f) && f.Phase == phase) action(f);
        else _log.Debug("ignored a {0} step for {1}", phase, disk);
    }

    private List<string> Sites() => Cluster.Get(Context.System).State.Members
        .Where(mem => mem.Status == MemberStatus.Up).SelectMany(mem => mem.Roles).Distinct().Order().ToList();

    private ActorPath SitePath(string site)
    {
        var member = Cluster.Get(Context.System).State.Members.First(mem => mem.HasRole(site));
        return new RootActorPath(member.Address) / "user" / "site";
    }

    private ActorSelection SiteOf(string site) => Context.ActorSelection(SitePath(site));
}
