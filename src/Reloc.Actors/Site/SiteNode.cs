using System.Net;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Tools.Singleton;
using Reloc.Actors.Coordinator;
using Akka.Configuration;
using Akka.Hosting;
using Akka.Pattern;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Hosting.Systemd;
using Microsoft.Extensions.Logging;
using Reloc.Actors.Management;
using Reloc.Actors.Telemetry;
using Reloc.Nbd.Server;

namespace Reloc.Actors.Site;

/// <summary>
/// A running site: an ActorSystem that joins the cluster through its seed nodes (with the site's name
/// as its role), the <see cref="SiteActor"/> under a backoff supervisor at /user/site (see
/// <see cref="SupervisedSiteProps"/>), and an NBD server exporting the site's disks.
/// </summary>
public sealed class SiteNode : IAsyncDisposable
{
    public const string SystemName = "reloc";

    private readonly IHost _host;

    private readonly PeerConnections _peers;

    private SiteNode(IHost host, ActorSystem system, SiteSettings settings, NbdServer nbd, IActorRef site, IActorRef coordinator,
        IPEndPoint nbdEndPoint, IPEndPoint? management, PeerConnections peers)
    {
        _peers = peers;
        Coordinator = coordinator;
        _host = host;
        Management = management;
        System = system;
        Settings = settings;
        Nbd = nbd;
        Site = site;
        NbdEndPoint = nbdEndPoint;
    }

    public ActorSystem System { get; }
    public SiteSettings Settings { get; }
    public NbdServer Nbd { get; }
    /// <summary>/user/site: the site actor's backoff supervisor; what is sent to it reaches the current site actor.</summary>
    public IActorRef Site { get; }

    /// <summary>The migration coordinator (through this node's singleton proxy).</summary>
    public IActorRef Coordinator { get; }
    public IPEndPoint NbdEndPoint { get; }

    /// <summary>Where the management API listens (null when reloc.management.listen = off).</summary>
    public IPEndPoint? Management { get; }

    /// <summary>This build's version (from git, see Directory.Build.props): in <c>--version</c>, the API and the cluster's member list.</summary>
    public static string Version { get; } = typeof(SiteNode).Assembly
        .GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
        .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion ?? "0.0.0";

    /// <summary>A version as Akka's AppVersion takes it: without the build metadata (+sha), and with no dot in the
    /// pre-release part (Akka allows three dot-separated parts): 0.1.0-alpha.0.3+abc → 0.1.0-alpha-0-3.</summary>
    public static string AppVersion(string informational)
    {
        int plus = informational.IndexOf('+');
        var version = plus < 0 ? informational : informational[..plus];
        int dash = version.IndexOf('-');
        return dash < 0 ? version : version[..dash] + version[dash..].Replace('.', '-');
    }

    /// <summary>The full configuration of a site: its own file, persistence chosen by reloc.persistence
    /// (SQLite under the data directory unless configured), then the defaults.</summary>
    public static Config Configure(Config site)
    {
        var withDefaults = site.WithFallback(RelocConfig.Reference);
        var settings = SiteSettings.From(withDefaults);
        if (withDefaults.GetBoolean("akka.remote.use-passive-connections", false))
            throw new ArgumentException("akka.remote.use-passive-connections = on: a site restarted on the same address can then " +
                                        "be left unable to rejoin the cluster (its seed's replies dropped); keep it off on every site");
        var provider = withDefaults.GetString("reloc.persistence.provider", "sqlite");
        var connection = withDefaults.GetString("reloc.persistence.connection-string", "");
        Config persistence = provider switch
        {
            "sqlite" => DefaultSqliteFile(withDefaults, settings) is { } file
                ? RelocConfig.Sqlite(file)
                : RelocConfig.Persistence(connection, "SQLite.MS"),
            "postgresql" => RelocConfig.Persistence(connection, "PostgreSQL.15"),
            _ => throw new ArgumentException($"reloc.persistence.provider = '{provider}': expected sqlite or postgresql"),
        };
        // Each member's build shows in the cluster's member list (reloc cluster show) unless the site sets its own.
        var appVersion = ConfigurationFactory.ParseString($"akka.cluster.app-version = \"{AppVersion(Version)}\"");
        var node = RelocConfig.Node(persistence, site.WithFallback(appVersion)).WithFallback(ClusterSingleton.DefaultConfig());
        node = Security.SiteTlsSettings.From(withDefaults).Enabled ? Security.RemotingTls.Configure(node) : node;
        return settings.FaultRemotingBlackHole ? RemotingBlackHole.Configure(node) : node;
    }

    /// <summary>The SQLite file in the data folder when the site keeps its journal there (the default), else null.</summary>
    private static string? DefaultSqliteFile(Config withDefaults, SiteSettings settings) =>
        withDefaults.GetString("reloc.persistence.provider", "sqlite") == "sqlite"
        && string.IsNullOrEmpty(withDefaults.GetString("reloc.persistence.connection-string", ""))
            ? Path.Combine(settings.DataDir, "reloc.db")
            : null;

    /// <param name="loggers">the node's logging: when given, the host (Kestrel, the hosting lifetime) and Akka log through it,
    /// Akka at the most detailed level it lets through for the "Akka" category (<see cref="NodeLogging.AkkaLevel"/>);
    /// without it Akka keeps its own loggers and akka.loglevel.</param>
    public static SiteNode Start(Config site, ILoggerFactory? loggers = null)
    {
        var config = Configure(site);
        var settings = SiteSettings.From(config);
        // A bad reloc.disk section fails here, at start, not when the first disk arrives.
        RelocConfig.DiskSettings(config).Validate();
        var telemetrySettings = RelocTelemetrySettings.From(config);
        var tls = Security.SiteTlsSettings.From(config);
        Directory.CreateDirectory(settings.DataDir);
        if (DefaultSqliteFile(config, settings) is { } sqliteFile) RelocConfig.UseWriteAheadLog(sqliteFile);
        var catalog = new ExportCatalog();
        var telemetry = new RelocTelemetry(); // before the container: the NBD server starts first; the host disposes it
        var nbdSettings = new NbdServerSettings
        {
            Tls = settings.Tls.Nbd,
            ExportAccess = new Security.SiteExportAccess(settings.Tls, Security.SiteExportAccess.GuestAcl(config)),
        };
        var nbd = new NbdServer(catalog, nbdSettings, loggers, telemetry.Nbd);
        IPEndPoint endPoint;
        try { endPoint = (IPEndPoint)nbd.ListenTcp(settings.NbdListen); }
        catch (System.Net.Sockets.SocketException ex)
        {
            nbd.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(10));
            throw new ArgumentException($"reloc.site.nbd.listen = {settings.NbdListen}: {ex.Message}", ex); // say which address
        }
        settings = settings.WithListenPort(endPoint.Port);
        // Off (reloc.site.peer-connections.enabled = off), it keeps no pool.
        var peers = new PeerConnections(settings.PeerConnections, settings.Tls, loggers);
        var reconcile = config.GetTimeSpan("reloc.coordinator.reconcile-interval", TimeSpan.FromSeconds(2));
        if (reconcile <= TimeSpan.Zero) throw new ArgumentException("reloc.coordinator.reconcile-interval must be positive");
        var siteSettings = settings;
        var links = LinkSettings.From(config); // a bad reloc.links fails at start, on every node (any may run the coordinator)
        var admission = AdmissionSettings.From(config); // likewise
        // Akka.Hosting owns the ActorSystem's lifecycle (start, CoordinatedShutdown on stop); the whole
        // configuration is still HOCON, the operator's language for Akka.NET.
        var builder = new HostBuilder()
            // Under systemd: its notifier (READY=1 and STOPPING=1, see NotifyReady). Elsewhere it changes nothing.
            .UseSystemd()
            .ConfigureServices(services =>
            {
                services.AddSingleton<IHostLifetime, NodeLifetime>(); // instead of the console's or systemd's: signals are the caller's
                if (loggers is null) return;
                // One pipeline: whatever the host resolves ILogger from is the node's factory (the caller owns it).
                services.AddSingleton(loggers);
                services.Configure<ConsoleLifetimeOptions>(o => o.SuppressStatusMessages = true);
            })
            .ConfigureServices(services => services.AddRelocTelemetry(telemetrySettings, telemetry).AddAkka(SystemName, builder => NodeLogging.Configure(
                WithPersistenceSetup(WithRemotingTls(builder.AddHocon(config, HoconAddMode.Replace), tls), config), loggers)
                .WithRelocHealthChecks()
                .WithActors((system, registry) =>
                {
                    // One coordinator in the cluster (on the oldest node, moving when it leaves); every node
                    // talks to it through its local proxy, handed to whoever talks to it (no path strings).
                    system.ActorOf(ClusterSingletonManager.Props(MigrationCoordinator.Props(reconcile, telemetry, links, admission), PoisonPill.Instance,
                        ClusterSingletonManagerSettings.Create(system)), "coordinator-singleton");
                    var coordinator = system.ActorOf(ClusterSingletonProxy.Props("/user/coordinator-singleton",
                        ClusterSingletonProxySettings.Create(system)), "coordinator");
                    registry.Register<MigrationCoordinator>(coordinator);
                    registry.Register<SiteActor>(system.ActorOf(SupervisedSiteProps(siteSettings, catalog, coordinator, telemetry, peers), "site"));
                    if (siteSettings.PeerConnections.Enabled) system.ActorOf(PeerWatcher.Props(siteSettings.Name, peers), "peer-connections");
                    // Every node keeps the relocation history (published by the coordinator) for queries and live feeds.
                    registry.Register<History.RelocationHistory>(system.ActorOf(
                        History.RelocationHistory.Props(siteSettings.Name, History.HistorySettings.From(config)), "relocation-history"));
                })));
        if (settings.ManagementListen is { } listen)
        {
            var security = ManagementSecuritySettings.From(config);
            if (security.ExposedWithoutAuth(listen))
                (loggers ?? Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance).CreateLogger("Reloc.Management").LogWarning(
                    "reloc.management.listen = {Listen} is not loopback and reloc.management.auth is off: anyone who reaches it can create, delete and relocate disks",
                    listen);
            builder.ConfigureWebHost(web => ManagementWeb.Configure(web, listen, Version, security, siteSettings.Name));
        }
        var host = builder.Build();
        // Off any caller's synchronisation context: the host's start-up must not need it.
        try
        {
            Task.Run(() => host.StartAsync()).GetAwaiter().GetResult();
        }
        catch (IOException ex) when (settings.ManagementListen is not null)
        {
            // Kestrel could not bind (address in use): the actor system is up already; stop it and say which key.
            Task.Run(() => host.StopAsync()).Wait(TimeSpan.FromSeconds(30));
            host.Dispose();
            nbd.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(10));
            peers.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(10));
            throw new ArgumentException($"reloc.management.listen = {settings.ManagementListen}: {ex.Message}", ex);
        }
        var system = host.Services.GetRequiredService<ActorSystem>();
        host.Services.GetRequiredService<RelocTelemetry>().Relocation.ObserveCluster(Cluster.Get(system));
        if (loggers is not null) NodeLogging.QuietAfterLoggersStop(system);
        var registry = host.Services.GetRequiredService<ActorRegistry>();
        var siteActor = registry.Get<SiteActor>();
        var coordinatorProxy = registry.Get<MigrationCoordinator>();
        var management = settings.ManagementListen is null ? null : ManagementWeb.BoundEndPoint(host.Services);
        return new SiteNode(host, system, settings, nbd, siteActor, coordinatorProxy, endPoint, management, peers);
    }

    /// <summary>The site certificate and its peers' validation for Akka.Remote, when the site has TLS.</summary>
    private static AkkaConfigurationBuilder WithRemotingTls(AkkaConfigurationBuilder builder, Security.SiteTlsSettings tls) =>
        tls.Enabled ? builder.AddSetup(Security.RemotingTls.Setup(tls)) : builder;

    /// <summary>SQLite's busy timeout on the journal's and snapshot store's connections (<see cref="RelocConfig.PersistenceSetup"/>).</summary>
    private static AkkaConfigurationBuilder WithPersistenceSetup(AkkaConfigurationBuilder builder, Config config) =>
        RelocConfig.PersistenceSetup(config) is { } setup ? builder.AddSetup(setup) : builder;

    /// <summary>The name of the <see cref="SiteActor"/> under its supervisor: /user/site/site.</summary>
    public const string SiteActorName = "site";

    /// <summary>
    /// The site actor under a backoff supervisor (what /user/site is). OnStop, not OnFailure: Akka.Persistence
    /// stops a persistent actor whose journal fails (a database outage, a full disk), and a stopped actor is
    /// what only an OnStop supervisor starts again; an exception still restarts it at once (the default
    /// strategy), and a Kill stops it, so it comes back too. Messages to /user/site are forwarded to the
    /// current site actor (sender kept), so SitePath and the registered ref keep working; while it is
    /// stopped they are dropped and askers time out and retry as they do for an unreachable site.
    /// </summary>
    public static Props SupervisedSiteProps(SiteSettings settings, ExportCatalog catalog, IActorRef coordinator, RelocTelemetry? telemetry = null,
        PeerConnections? peers = null) =>
        BackoffSupervisor.Props(Backoff.OnStop(SiteActor.Props(settings, catalog, coordinator, telemetry, peers), SiteActorName,
            settings.RestartMinBackoff, settings.RestartMaxBackoff, randomFactor: 0.2, maxNrOfRetries: -1)); // -1: no limit

    /// <summary>The site (its supervisor, which forwards to the site actor) of the (Up) member whose role is <paramref name="site"/>; a path on this node
    /// (which refuses everything) when no such member is known, so a message to it is logged as dead.</summary>
    public static ActorPath SitePath(ActorSystem system, string site)
    {
        var member = Cluster.Get(system).State.Members.FirstOrDefault(m => m.HasRole(site) && m.Status == MemberStatus.Up)
                     ?? Cluster.Get(system).State.Members.FirstOrDefault(m => m.HasRole(site));
        var address = member?.Address ?? Cluster.Get(system).SelfAddress;
        return new RootActorPath(address) / "user" / (member is null ? "no-such-site" : "site");
    }

    /// <summary>Completes when the site has recovered its disks and exports them (requests wait in the
    /// site actor's stash until then, so its first answer means recovery is over).</summary>
    public Task WhenReadyAsync(TimeSpan timeout) => Site.Ask<SiteProtocol.DiskList>(new SiteProtocol.ListDisks(), timeout);

    /// <summary>Completes when this node is an Up member of the cluster.</summary>
    public Task WhenUpAsync()
    {
        var up = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Cluster.Get(System).RegisterOnMemberUp(() => up.TrySetResult());
        return up.Task;
    }

    /// <summary>Tells systemd (Type=notify) that the site is ready: call it once its disks are served
    /// (<see cref="WhenReadyAsync"/>). Outside systemd it does nothing.</summary>
    public void NotifyReady() => _host.Services.GetService<ISystemdNotifier>()?.Notify(ServiceState.Ready);

    /// <summary>Fault injection, for fault campaigns only (reloc.site.fault-injection.remoting-black-hole = on): drops
    /// all of this node's cluster traffic (on) or lets it through again (off); returns the member addresses it applied to.</summary>
    public Task<IReadOnlyList<Address>> BlackHoleRemotingAsync(bool on) => Settings.FaultRemotingBlackHole
        ? (_blackHole ??= new RemotingBlackHole(System)).SetAsync(on)
        : throw new InvalidOperationException("reloc.site.fault-injection.remoting-black-hole is off");

    private RemotingBlackHole? _blackHole;

    /// <summary>Stops serving (in-flight NBD requests finish, exports flush), then leaves the cluster gracefully.</summary>
    public async ValueTask DisposeAsync()
    {
        _host.Services.GetService<ISystemdNotifier>()?.Notify(ServiceState.Stopping);
        await Nbd.DisposeAsync();
        await _host.StopAsync(); // Kestrel first (hosted services stop in reverse), then CoordinatedShutdown: leaves the cluster gracefully
        _host.Dispose();
        await _peers.DisposeAsync(); // after the actors: nothing takes from or refills the pools any more
    }
}
