using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Microsoft.Extensions.Logging;
using Reloc.Actors.Coordinator;
using Reloc.Actors.Security;
using Reloc.Nbd.Client;

namespace Reloc.Actors.Site;

/// <summary>
/// A <see cref="PeerConnectionPool"/> per other site that is up (reloc.site.peer-connections): a relocation's source
/// connections to that site come out of it (<see cref="For"/>), finished in one round trip. Kept in step with the
/// cluster by <see cref="PeerWatcher"/>; owned by the <see cref="SiteNode"/>, which disposes it after the actor system.
/// </summary>
public sealed class PeerConnections(PeerConnectionSettings settings, SiteTlsSettings tls, ILoggerFactory? loggers = null) : IAsyncDisposable
{
    private readonly object _gate = new();
    private readonly Dictionary<string, PeerConnectionPool> _pools = new(StringComparer.Ordinal);
    private readonly List<Task> _closing = []; // pools of sites gone, being disposed
    private bool _disposed;

    /// <summary>How this site connects to a peer whose NBD server is at <paramref name="baseUri"/> (scheme://host:port): exactly
    /// as a relocation's source connection does (<see cref="SiteTlsSettings.ForPeer"/>), without the export.</summary>
    public NbdClientOptions EndpointOf(string baseUri) => tls.ForPeer(NbdClientOptions.FromUri(baseUri.TrimEnd('/') + "/")) with { Export = "" };

    /// <summary>The pool whose connections are what <paramref name="options"/> (a source connection, with its export) asks
    /// for, or null (no pool for that peer, or pools are off).</summary>
    public PeerConnectionPool? For(NbdClientOptions options)
    {
        var endpoint = options with { Export = "" };
        lock (_gate) return _pools.Values.FirstOrDefault(p => p.Endpoint == endpoint);
    }

    /// <summary>The peers pooled now, and where.</summary>
    public IReadOnlyDictionary<string, NbdClientOptions> Pooled
    {
        get { lock (_gate) return _pools.ToDictionary(p => p.Key, p => p.Value.Endpoint); }
    }

    /// <summary>Keeps one pool per site of <paramref name="peers"/> (site → its NBD base URI) and closes the others
    /// (<see cref="Changes"/> decides).</summary>
    public void Keep(IReadOnlyDictionary<string, string> peers)
    {
        if (!settings.Enabled) return;
        lock (_gate)
        {
            if (_disposed) return;
            _closing.RemoveAll(t => t.IsCompleted);
            var wanted = peers.ToDictionary(p => p.Key, p => EndpointOf(p.Value), StringComparer.Ordinal);
            var (close, open) = Changes(_pools.ToDictionary(p => p.Key, p => p.Value.Endpoint), wanted);
            foreach (var site in close)
            {
                _closing.Add(_pools[site].DisposeAsync().AsTask());
                _pools.Remove(site);
            }
            foreach (var site in open)
                _pools[site] = new PeerConnectionPool(wanted[site], settings.Pool, loggers?.CreateLogger($"Reloc.PeerConnections.{site}"));
        }
    }

    /// <summary>Which pools to close (their site is gone, or its address changed) and which to open.</summary>
    public static (IReadOnlyList<string> Close, IReadOnlyList<string> Open) Changes(
        IReadOnlyDictionary<string, NbdClientOptions> current, IReadOnlyDictionary<string, NbdClientOptions> wanted)
    {
        var close = current.Where(c => !wanted.TryGetValue(c.Key, out var w) || w != c.Value).Select(c => c.Key).Order(StringComparer.Ordinal).ToList();
        var open = wanted.Where(w => !current.TryGetValue(w.Key, out var c) || c != w.Value).Select(w => w.Key).Order(StringComparer.Ordinal).ToList();
        return (close, open);
    }

    public async ValueTask DisposeAsync()
    {
        List<Task> all;
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            all = [.. _closing, .. _pools.Values.Select(p => p.DisposeAsync().AsTask())];
            _pools.Clear();
        }
        await Task.WhenAll(all);
    }
}

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
