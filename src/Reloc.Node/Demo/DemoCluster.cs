using System.Net;
using System.Net.Sockets;
using Akka.Cluster;
using Akka.Configuration;
using Reloc.Actors.Site;
using Reloc.Wan;

namespace Reloc.Node.Demo;

/// <summary>
/// Two sites in this process on loopback, each with its own SQLite database under a temporary
/// directory, and the WAN link emulator in front of site A's NBD server: site A advertises the link's
/// address, so site B's fetches from A (on-demand and background) cross the emulated WAN, while the
/// guest at each site talks to its own site directly.
/// </summary>
internal sealed class DemoCluster : IAsyncDisposable
{
    private DemoCluster(string dir, WanLink link, SiteNode a, SiteNode b)
    {
        Dir = dir;
        Link = link;
        A = a;
        B = b;
    }

    public string Dir { get; }
    public WanLink Link { get; }
    public SiteNode A { get; }
    public SiteNode B { get; }
    public string ManagementAddress => $"127.0.0.1:{A.Management!.Port}";

    public static async Task<DemoCluster> StartAsync(string dir, WanLinkSettings link, CancellationToken ct)
    {
        int clusterA = FreePort(), clusterB = FreePort(), nbdA = FreePort();
        // Not stopped by ct: after Ctrl-C the sites still need their link until they have stopped (cleanup stops it last).
        var wan = await WanLink.StartAsync(new IPEndPoint(IPAddress.Loopback, 0), new IPEndPoint(IPAddress.Loopback, nbdA), link, CancellationToken.None);
        SiteNode? a = null, b = null;
        try
        {
            a = SiteNode.Start(Config("site-a", clusterA, clusterA, Path.Combine(dir, "site-a"), $"127.0.0.1:{nbdA}", $"127.0.0.1:{wan.LocalEndPoint.Port}", "127.0.0.1:0"));
            b = SiteNode.Start(Config("site-b", clusterB, clusterA, Path.Combine(dir, "site-b"), "127.0.0.1:0", "", "off"));
            var cluster = new DemoCluster(dir, wan, a, b);
            await Task.WhenAll(a.WhenUpAsync(), b.WhenUpAsync()).WaitAsync(TimeSpan.FromSeconds(60), ct);
            // Both must see both sites Up: the coordinator judges sites by its own node's view.
            while (!new[] { a, b }.All(n => Cluster.Get(n.System).State.Members.Count(m => m.Status == MemberStatus.Up) == 2))
                await Task.Delay(50, ct);
            return cluster;
        }
        catch
        {
            await StopAsync(a, b, wan);
            throw;
        }
    }

    private static Config Config(string site, int port, int seedPort, string dataDir, string nbdListen, string advertise, string management) =>
        ConfigurationFactory.ParseString($$"""
            akka.loglevel = ERROR
            akka.stdout-loglevel = ERROR
            akka.actor.provider = cluster
            akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = {{port}} }
            akka.cluster.seed-nodes = ["akka.tcp://reloc@127.0.0.1:{{seedPort}}"]
            akka.cluster.roles = [{{site}}]
            akka.coordinated-shutdown.run-by-clr-shutdown-hook = off
            reloc.site { name = {{site}}, data-dir = "{{dataDir}}", import-dir = "{{Path.GetDirectoryName(dataDir)}}", nbd.listen = "{{nbdListen}}", nbd.advertise = "{{advertise}}" }
            reloc.management.listen = "{{management}}"
            """);

    private static int FreePort()
    {
        using var l = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        l.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)l.LocalEndPoint!).Port;
    }

    private static async Task StopAsync(SiteNode? a, SiteNode? b, WanLink link)
    {
        // One after the other: two members leaving at once wait for each other (about 10 s).
        try { if (b is not null) await b.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(20)); }
        catch (Exception) { /* leaving the cluster took too long or failed: the process is ending anyway */ }
        try { if (a is not null) await a.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(20)); }
        catch (Exception) { /* leaving the cluster took too long or failed: the process is ending anyway */ }
        await link.DisposeAsync();
    }

    public ValueTask DisposeAsync() => new(StopAsync(A, B, Link));
}
