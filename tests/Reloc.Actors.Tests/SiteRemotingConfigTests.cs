using Akka.Configuration;
using Reloc.Actors.Site;
using Xunit;

namespace Reloc.Actors.Tests;

/// <summary>Remoting settings a site needs to rejoin after a restart on the same address.</summary>
public sealed class SiteRemotingConfigTests
{
    private static Config Site(string extra = "") => ConfigurationFactory.ParseString($$"""
        reloc.site { name = site-a, data-dir = "/tmp/reloc-config-test", nbd.listen = "127.0.0.1:0" }
        {{extra}}
        """);

    [Fact]
    public void Sites_answer_only_on_connections_they_opened()
    {
        // Passive connections let a restarted site end up reading an orphaned connection while its seed
        // answers on the other one: it never joins (akka/akka-core#24393, bench/rejoin-loop.sh).
        Assert.False(SiteNode.Configure(Site()).GetBoolean("akka.remote.use-passive-connections", true));
    }

    [Fact]
    public void A_site_configured_with_passive_connections_refuses_to_start()
    {
        var e = Assert.Throws<ArgumentException>(() => SiteNode.Configure(Site("akka.remote.use-passive-connections = on")));
        Assert.Contains("use-passive-connections", e.Message);
    }
}
