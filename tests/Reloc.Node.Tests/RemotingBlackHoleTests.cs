using Akka.Configuration;
using Reloc.Actors.Site;
using Reloc.Testing;
using Xunit;

namespace Reloc.Node.Tests;

/// <summary>
/// reloc.site.fault-injection.remoting-black-hole (fault campaigns only): with it on, SIGUSR1 cuts a site's cluster
/// traffic (the others see it unreachable, the process keeps running) and SIGUSR2 lets it through again (it is
/// reachable again, without a restart).
/// </summary>
public sealed class RemotingBlackHoleTests
{
    [Fact]
    public void The_switch_applies_the_throttler_and_rewrites_the_seeds_to_its_scheme()
    {
        var site = ConfigurationFactory.ParseString("""
            reloc.site { name = site-a, data-dir = "/tmp/x", nbd.listen = "127.0.0.1:0", fault-injection.remoting-black-hole = on }
            akka.cluster.seed-nodes = ["akka.tcp://reloc@127.0.0.1:1", "akka.trttl.tcp://reloc@127.0.0.1:2"]
            """);
        var config = SiteNode.Configure(site);
        Assert.Equal(["trttl"], config.GetStringList("akka.remote.dot-netty.tcp.applied-adapters"));
        Assert.Equal(["akka.trttl.tcp://reloc@127.0.0.1:1", "akka.trttl.tcp://reloc@127.0.0.1:2"], config.GetStringList("akka.cluster.seed-nodes"));

        var off = SiteNode.Configure(ConfigurationFactory.ParseString("reloc.site.fault-injection.remoting-black-hole = off").WithFallback(site));
        Assert.Empty(off.GetStringList("akka.remote.dot-netty.tcp.applied-adapters", []));
        Assert.Equal("akka.tcp://reloc@127.0.0.1:1", off.GetStringList("akka.cluster.seed-nodes")[0]);
    }

    [Fact]
    public void With_tls_the_seeds_read_trttl_ssl_tcp()
    {
        var node = ConfigurationFactory.ParseString("""akka.cluster.seed-nodes = ["akka.ssl.tcp://reloc@127.0.0.1:1"]""");
        Assert.Equal("akka.trttl.ssl.tcp://reloc@127.0.0.1:1", RemotingBlackHole.Configure(node).GetStringList("akka.cluster.seed-nodes")[0]);
    }

    [Fact]
    public async Task A_black_holed_site_becomes_unreachable_and_reachable_again_once_it_is_lifted()
    {
        // The split-brain resolver waits longer than the test: what is seen is the black hole, not a downing.
        await using var c = new SiteCluster(extra: _ => """
            reloc.site.fault-injection.remoting-black-hole = on
            akka.cluster.split-brain-resolver.stable-after = 120s
            """);
        await c.StartAllAsync();
        var view = await c.CallAsync('a', m => m.ClusterAsync());
        Assert.All(view.Members, m => Assert.StartsWith("akka.trttl.tcp://", m.Address));

        await c.Node('c').SignalAsync("USR1");
        await SiteCluster.WaitAsync(async () => await ReachableAsync(c, 'a', "site-c") == false, TimeSpan.FromSeconds(60), "site-c unreachable as site-a sees it");
        await SiteCluster.WaitAsync(async () => await ReachableAsync(c, 'c', "site-a") == false, TimeSpan.FromSeconds(60), "site-a unreachable as site-c sees it");
        Assert.Contains(c.Node('c').LogLines, l => l.StartsWith("reloc-node: cluster traffic black-holed (SIGUSR1)", StringComparison.Ordinal));

        await c.Node('c').SignalAsync("USR2");
        foreach (var s in SiteCluster.Sites) await c.WaitUpAsync(s, 3);
        Assert.False(c.Node('c').HasExited);
    }

    private static async Task<bool?> ReachableAsync(SiteCluster c, char via, string site) =>
        (await c.TryAsync(via, m => m.ClusterAsync()))?.Members.FirstOrDefault(m => m.Site == site)?.Reachable;
}
