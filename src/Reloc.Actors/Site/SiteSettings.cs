using System.Net;
using Akka.Configuration;
using Reloc.Nbd.Client;

namespace Reloc.Actors.Site;

/// <summary>Validated settings of one site node (HOCON section reloc.site).</summary>
public sealed record SiteSettings(string Name, string DataDir, IPEndPoint NbdListen, string NbdAdvertise, IPEndPoint? ManagementListen = null)
{
    /// <summary>reloc.site.restart-backoff.min: the first delay before a stopped site actor is started again.</summary>
    public TimeSpan RestartMinBackoff { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>reloc.site.restart-backoff.max: the longest delay between restarts (the delay doubles up to it).</summary>
    public TimeSpan RestartMaxBackoff { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>reloc.site.import-dir: the only directory <c>disk create --from FILE</c> reads from (null: none, imports
    /// from files are refused). See <see cref="Core.ImportPaths"/>.</summary>
    public string? ImportDir { get; init; }

    /// <summary>reloc.site.fault-injection.remoting-black-hole, for fault campaigns only: the remoting runs through the
    /// throttler adapter so that <see cref="RemotingBlackHole"/> can cut the node's cluster traffic.</summary>
    public bool FaultRemotingBlackHole { get; init; }

    /// <summary>reloc.site.warm-up.enabled: run the NBD code paths once at start (<see cref="Reloc.Nbd.NbdWarmUp"/>).</summary>
    public bool WarmUp { get; init; } = true;

    /// <summary>reloc.site.warm-up.timeout: the longest the warm-up may run; the site starts without it past this.</summary>
    public TimeSpan WarmUpTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>reloc.site.peer-connections: connections to the other sites' NBD servers kept warm (<see cref="PeerConnections"/>).</summary>
    public PeerConnectionSettings PeerConnections { get; init; } = new();

    public static SiteSettings From(Config config)
    {
        var c = config.GetConfig("reloc.site") ?? throw new ArgumentException("reloc.site is missing from the configuration");
        var name = c.GetString("name");
        if (string.IsNullOrWhiteSpace(name)) throw new ArgumentException("reloc.site.name must be set");
        var dataDir = c.GetString("data-dir");
        if (string.IsNullOrWhiteSpace(dataDir)) throw new ArgumentException("reloc.site.data-dir must be set");
        var listen = ParseEndPoint(c.GetString("nbd.listen"), "reloc.site.nbd.listen");
        var advertise = c.GetString("nbd.advertise");
        var management = config.GetString("reloc.management.listen", "off");
        var minBackoff = c.GetTimeSpan("restart-backoff.min", TimeSpan.FromSeconds(1));
        var maxBackoff = c.GetTimeSpan("restart-backoff.max", TimeSpan.FromSeconds(30));
        if (minBackoff <= TimeSpan.Zero)
            throw new ArgumentException($"reloc.site.restart-backoff.min = {minBackoff}: must be positive");
        if (maxBackoff < minBackoff)
            throw new ArgumentException($"reloc.site.restart-backoff.max = {maxBackoff}: must be at least restart-backoff.min ({minBackoff})");
        var warmUpTimeout = c.GetTimeSpan("warm-up.timeout", TimeSpan.FromSeconds(10));
        if (warmUpTimeout <= TimeSpan.Zero || warmUpTimeout > TimeSpan.FromMinutes(5))
            throw new ArgumentException($"reloc.site.warm-up.timeout = {warmUpTimeout}: must be more than 0 and at most 5m");
        var importDir = c.GetString("import-dir", "");
        if (!string.IsNullOrEmpty(importDir) && !Path.IsPathFullyQualified(importDir))
            throw new ArgumentException($"reloc.site.import-dir = \"{importDir}\": must be an absolute path (or empty: no imports from files)");
        return new SiteSettings(name, dataDir, listen, string.IsNullOrWhiteSpace(advertise) ? $"{listen.Address}:{listen.Port}" : advertise,
            management is "off" or "" ? null : ParseEndPoint(management, "reloc.management.listen"))
        {
            RestartMinBackoff = minBackoff,
            RestartMaxBackoff = maxBackoff,
            Tls = Security.SiteTlsSettings.From(config),
            ImportDir = string.IsNullOrEmpty(importDir) ? null : importDir,
            FaultRemotingBlackHole = c.GetBoolean("fault-injection.remoting-black-hole", false),
            WarmUp = c.GetBoolean("warm-up.enabled", true),
            WarmUpTimeout = warmUpTimeout,
            PeerConnections = PeerConnectionSettings.From(c),
        };
    }

    public SiteSettings WithListenPort(int port) => this with
    {
        NbdListen = new IPEndPoint(NbdListen.Address, port),
        NbdAdvertise = NbdAdvertise == $"{NbdListen.Address}:{NbdListen.Port}" ? $"{NbdListen.Address}:{port}" : NbdAdvertise,
    };

    /// <summary>reloc.tls: TLS of the NBD server, the site-to-site fetches and the cluster's remoting.</summary>
    public Security.SiteTlsSettings Tls { get; init; } = Security.SiteTlsSettings.Off;

    /// <summary>scheme://host:port of the site's disks as guests and other sites reach them.</summary>
    public string NbdBaseUri => $"{Tls.UriScheme}://{NbdAdvertise}";

    public string UriOf(string disk) => $"{NbdBaseUri}/{disk}";

    private static IPEndPoint ParseEndPoint(string? text, string key)
    {
        if (text is null || !IPEndPoint.TryParse(text, out var ep))
            throw new ArgumentException($"{key} = '{text}': expected IP:PORT");
        return ep;
    }
}

/// <summary>reloc.site.peer-connections, validated.</summary>
/// <param name="Enabled">Keep connections to the other sites parked (off: every source connection is new).</param>
public sealed record PeerConnectionSettings(bool Enabled = true, PeerPoolSettings? Pool = null)
{
    public PeerPoolSettings Pool { get; init; } = Pool ?? new PeerPoolSettings();

    /// <summary>The handshake timeout of a Reloc site's NBD server (NbdServerSettings' default): a parked connection must be retired before it.</summary>
    public static readonly TimeSpan PeerHandshakeTimeout = new Reloc.Nbd.Server.NbdServerSettings().HandshakeTimeout;

    /// <param name="site">The reloc.site section.</param>
    public static PeerConnectionSettings From(Config site)
    {
        const string key = "reloc.site.peer-connections";
        var parked = site.GetInt("peer-connections.parked", 2);
        if (parked is < 1 or > 16) throw new ArgumentException($"{key}.parked = {parked}: must be 1..16");
        var maxAge = site.GetTimeSpan("peer-connections.max-age", TimeSpan.FromSeconds(5));
        if (maxAge <= TimeSpan.Zero || maxAge >= PeerHandshakeTimeout)
            throw new ArgumentException($"{key}.max-age = {maxAge}: must be more than 0 and less than the peers' NBD handshake timeout ({PeerHandshakeTimeout.TotalSeconds:0} s)");
        return new PeerConnectionSettings(site.GetBoolean("peer-connections.enabled", true), new PeerPoolSettings { Parked = parked, MaxAge = maxAge }.Validate());
    }
}
