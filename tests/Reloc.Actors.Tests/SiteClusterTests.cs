using Akka.Actor;
using Akka.Cluster;
using Akka.Configuration;
using Reloc.Actors.Site;
using Reloc.Testing;
using Xunit;
using static Reloc.Actors.Site.SiteProtocol;

namespace Reloc.Actors.Tests;

/// <summary>Three site nodes forming a real cluster over loopback TCP, driven across nodes.</summary>
public sealed class SiteClusterTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("reloc-site-test-").FullName;
    private readonly int[] _ports = [Ports.Free(), Ports.Free(), Ports.Free()];
    private readonly List<SiteNode> _nodes = [];

    private Config SiteConfig(int i) => ConfigurationFactory.ParseString($$"""
        akka.loglevel = WARNING
        akka.actor.provider = cluster
        akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = {{_ports[i]}} }
        akka.cluster.seed-nodes = ["akka.tcp://reloc@127.0.0.1:{{_ports[0]}}", "akka.tcp://reloc@127.0.0.1:{{_ports[1]}}"]
        akka.cluster.roles = [site-{{(char)('a' + i)}}]
        reloc.site { name = site-{{(char)('a' + i)}}, data-dir = "{{Path.Combine(_dir, "site-" + i)}}", nbd.listen = "127.0.0.1:0" }
        """);

    public async Task InitializeAsync()
    {
        for (int i = 0; i < 3; i++) _nodes.Add(SiteNode.Start(SiteConfig(i)));
        await Task.WhenAll(_nodes.Select(n => n.WhenUpAsync())).WaitAsync(TimeSpan.FromSeconds(60));
    }

    public async Task DisposeAsync()
    {
        foreach (var n in _nodes) await n.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private static ActorSelection SiteOf(SiteNode from, SiteNode to) =>
        from.System.ActorSelection(new RootActorPath(Cluster.Get(to.System).SelfAddress) / "user" / "site");

    [Fact]
    public async Task Sites_join_with_their_names_as_roles()
    {
        var members = Cluster.Get(_nodes[0].System).State.Members;
        await Task.CompletedTask;
        Assert.Equal(3, members.Count(m => m.Status == MemberStatus.Up));
        Assert.Equal(["site-a", "site-b", "site-c"], members.SelectMany(m => m.Roles).Order());
    }

    [Fact]
    public async Task A_disk_created_from_another_node_is_served_over_nbd_and_listed()
    {
        var a = _nodes[0];
        var info = await SiteOf(_nodes[1], a).Ask<object>(new CreateDisk("vm1", 8 << 20), TimeSpan.FromSeconds(20));
        var created = Assert.IsType<DiskInfo>(info);
        Assert.Equal(("vm1", "site-a", 1L), (created.Name, created.Site, created.Epoch));
        Assert.Equal($"nbd://127.0.0.1:{a.NbdEndPoint.Port}/vm1", created.NbdUri);

        await Tool.CheckAsync("qemu-io", "-f", "raw", created.NbdUri, "-c", "write -P 0x42 0 64k", "-c", "flush", "-c", "read -P 0x42 0 64k");
        var list = Assert.IsType<DiskList>(await SiteOf(_nodes[2], a).Ask<object>(new ListDisks(), TimeSpan.FromSeconds(20)));
        Assert.Equal(["vm1"], list.Disks.Select(d => d.Name));

        var refused = await SiteOf(_nodes[1], a).Ask<object>(new CreateDisk("vm1", 1 << 20), TimeSpan.FromSeconds(20));
        Assert.Contains("already exists", Assert.IsType<Refused>(refused).Reason);
        Assert.IsType<Refused>(await SiteOf(_nodes[1], a).Ask<object>(new CreateDisk("../etc", 1 << 20), TimeSpan.FromSeconds(20)));
        Assert.IsType<Refused>(await SiteOf(_nodes[1], a).Ask<object>(new DeleteDisk("nope"), TimeSpan.FromSeconds(20)));
        Assert.IsType<Deleted>(await SiteOf(_nodes[1], a).Ask<object>(new DeleteDisk("vm1"), TimeSpan.FromSeconds(20)));
        var gone = await Tool.RunAsync("nbdinfo", created.NbdUri);
        Assert.NotEqual(0, gone.ExitCode);
    }

    [Fact]
    public async Task A_disk_imported_from_a_file_survives_a_site_restart()
    {
        var file = Path.Combine(_dir, "seed.img");
        var content = Tool.RandomBytes(4 << 20, 3);
        Array.Clear(content, 1 << 20, 1 << 20);
        File.WriteAllBytes(file, content);
        var c = _nodes[2];
        var created = Assert.IsType<DiskInfo>(await c.Site.Ask<object>(new CreateDisk("base", 0, file), TimeSpan.FromSeconds(20)));
        Assert.Equal(content.Length, created.Size);

        await c.DisposeAsync();
        _nodes[2] = SiteNode.Start(SiteConfig(2));
        var list = Assert.IsType<DiskList>(await _nodes[2].Site.Ask<object>(new ListDisks(), TimeSpan.FromSeconds(20)));
        var disk = Assert.Single(list.Disks);
        var copy = Path.Combine(_dir, "copy.img");
        await Tool.CheckAsync("nbdcopy", disk.NbdUri, copy);
        Assert.Equal(Tool.Sha256(file), Tool.Sha256(copy));
    }
}
