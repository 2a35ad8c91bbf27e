using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Reloc.Actors.Coordinator;

namespace Reloc.Actors.Site;

/// <summary>
/// Keeps <see cref="PeerConnections"/> in step with the cluster: the sites of the Up members other than this one, each
/// asked where its NBD server is (<see cref="SiteProtocol.GetNbdAddress"/>); a site that leaves loses its pool, one that
/// comes back (perhaps elsewhere) is asked again.
/// </summary>
public sealed class PeerWatcher : ReceiveActor, IWithTimers
{
    private sealed record Tick;
    private sealed record NotAnswered(string Site);

    /// <summary>How often the member list is looked at again, and sites that did not answer are asked again.</summary>
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(5);

    private readonly string _self;
    private readonly PeerConnections _pools;
    private readonly Dictionary<string, string> _addresses = new(StringComparer.Ordinal);
    private readonly HashSet<string> _asking = new(StringComparer.Ordinal);
    private readonly ILoggingAdapter _log = Context.GetLogger();

    public PeerWatcher(string self, PeerConnections pools)
    {
        _self = self;
        _pools = pools;
        Receive<ClusterEvent.IMemberEvent>(e =>
        {
            // A site's member gone, or a new one up: what it said before may be stale.
            if (e is ClusterEvent.MemberRemoved or ClusterEvent.MemberUp)
                foreach (var role in e.Member.Roles) _addresses.Remove(role);
            Refresh();
        });
        Receive<Tick>(_ => Refresh());
        Receive<SiteProtocol.NbdAddress>(a =>
        {
            _asking.Remove(a.Site);
            if (_addresses.TryGetValue(a.Site, out var before) && before == a.BaseUri) return;
            _log.Info("site {0} serves NBD at {1}: keeping connections to it warm", a.Site, a.BaseUri);
            _addresses[a.Site] = a.BaseUri;
            Refresh();
        });
        Receive<NotAnswered>(n => _asking.Remove(n.Site));
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(string self, PeerConnections pools) => Akka.Actor.Props.Create(() => new PeerWatcher(self, pools));

    protected override void PreStart()
    {
        Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents, typeof(ClusterEvent.IMemberEvent));
        Timers.StartPeriodicTimer("tick", new Tick(), Interval);
    }

    protected override void PostStop() => Cluster.Get(Context.System).Unsubscribe(Self);

    private void Refresh()
    {
        var peers = SiteDirectory.Sites(Context.System).Where(s => s != _self).ToHashSet(StringComparer.Ordinal);
        foreach (var gone in _addresses.Keys.Where(s => !peers.Contains(s)).ToList()) _addresses.Remove(gone);
        _pools.Keep(_addresses);
        foreach (var site in peers.Where(s => !_addresses.ContainsKey(s) && _asking.Add(s)))
            SiteDirectory.SiteOf(Context.System, site).Ask<SiteProtocol.NbdAddress>(new SiteProtocol.GetNbdAddress(), AskTimeout)
                .PipeTo(Self, failure: _ => new NotAnswered(site));
    }
}
