using Reloc.Actors.Security;
using Reloc.Actors.Site;
using Reloc.Nbd.Client;
using Reloc.Nbd.Tls;
using Reloc.Testing;
using Xunit;

namespace Reloc.Actors.Tests;

/// <summary>The site's pools of warm connections to its peers: one per peer that is up, replaced when its address
/// changes, found by exactly the options a relocation's source connection uses (TLS to peers included).</summary>
public sealed class PeerConnectionsTests : IDisposable
{
    private readonly string _certs = Directory.CreateTempSubdirectory("reloc-peer-certs-").FullName;

    public void Dispose() => Directory.Delete(_certs, recursive: true);

    private static NbdClientOptions At(int port) => new() { Host = "127.0.0.1", Port = port };

    [Theory]
    //          current (site:port)  wanted              close       open
    [InlineData("",                  "",                 "",         "")]
    [InlineData("",                  "b:1 c:2",          "",         "b c")]   // peers up: a pool each
    [InlineData("b:1 c:2",           "b:1 c:2",          "",         "")]      // nothing changed
    [InlineData("b:1 c:2",           "b:1",              "c",        "")]      // c left
    [InlineData("b:1",               "b:3",              "b",        "b")]     // b came back elsewhere: a new pool
    [InlineData("b:1 c:2",           "",                 "b c",      "")]
    public void Changes(string current, string wanted, string close, string open)
    {
        static Dictionary<string, NbdClientOptions> Parse(string s) => s.Length == 0
            ? []
            : s.Split(' ').Select(p => p.Split(':')).ToDictionary(p => p[0], p => At(int.Parse(p[1])));
        var (c, o) = PeerConnections.Changes(Parse(current), Parse(wanted));
        Assert.Equal(close, string.Join(' ', c));
        Assert.Equal(open, string.Join(' ', o));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_source_connection_finds_the_pool_of_its_site_with_the_same_tls(bool tls)
    {
        var siteTls = tls ? new SiteTlsSettings(NbdTlsMode.Require, _certs, false, ["*"]) : SiteTlsSettings.Off;
        await using var peers = new PeerConnections(new PeerConnectionSettings(), siteTls);
        var scheme = tls ? "nbds" : "nbd";
        int b = Ports.Free(), c = Ports.Free(), none = Ports.Free(); // nobody listens: the pools only try, and back off
        peers.Keep(new Dictionary<string, string> { ["site-b"] = $"{scheme}://127.0.0.1:{b}", ["site-c"] = $"{scheme}://127.0.0.1:{c}" });
        Assert.Equal(["site-b", "site-c"], peers.Pooled.Keys.Order());

        // What SiteDevices makes of the coordinator's source URI (the owner's disk address, with the peer export).
        var source = siteTls.ForPeer(NbdClientOptions.FromUri($"{scheme}://127.0.0.1:{c}/vm@peer"));
        var pool = peers.For(source);
        Assert.NotNull(pool);
        Assert.Equal(source with { Export = "" }, pool.Endpoint);
        Assert.Equal(tls, pool.Endpoint.Tls == NbdClientTlsMode.Require);
        Assert.Null(peers.For(NbdClientOptions.FromUri($"{scheme}://127.0.0.1:{none}/vm@peer"))); // no such peer

        peers.Keep(new Dictionary<string, string> { ["site-b"] = $"{scheme}://127.0.0.1:{b}" }); // site-c left
        Assert.Null(peers.For(source));
    }

    [Fact]
    public async Task Off_keeps_no_pool()
    {
        await using var peers = new PeerConnections(new PeerConnectionSettings(Enabled: false), SiteTlsSettings.Off);
        peers.Keep(new Dictionary<string, string> { ["site-b"] = "nbd://127.0.0.1:10812" });
        Assert.Empty(peers.Pooled);
        Assert.Null(peers.For(NbdClientOptions.FromUri("nbd://127.0.0.1:10812/vm@peer")));
    }

    [Theory]
    [InlineData("parked = 0")]
    [InlineData("parked = 17")]
    [InlineData("max-age = 0s")]
    [InlineData("max-age = 10s")]
    public void Bad_settings_fail_at_start_naming_the_key(string line)
    {
        var config = Akka.Configuration.ConfigurationFactory.ParseString($"peer-connections {{ {line} }}");
        var ex = Assert.Throws<ArgumentException>(() => PeerConnectionSettings.From(config));
        Assert.Contains("reloc.site.peer-connections." + line.Split(' ')[0], ex.Message);
    }

    [Fact]
    public void Defaults_from_the_reference_configuration()
    {
        var s = PeerConnectionSettings.From(RelocConfig.Reference.GetConfig("reloc.site"));
        Assert.Equal((true, 2, TimeSpan.FromSeconds(5)), (s.Enabled, s.Pool.Parked, s.Pool.MaxAge));
    }
}
