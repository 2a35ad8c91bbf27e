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
    // site-c copies in 1 MiB blocks while sources report 64 KiB ones: invalidations must be converted.
    private readonly InProcessSites _sites = new(3, "reloc-site-test-", i => "reloc.management.listen = \"127.0.0.1:0\"\n"
        + (i == 2 ? "reloc.disk { block-size = 1MiB, prefetch-chunk = 1MiB }" : ""));
    private List<SiteNode> _nodes => _sites.Nodes;
    private string _dir => _sites.Dir;

    public Task InitializeAsync() => _sites.InitializeAsync();

    public Task DisposeAsync() => _sites.DisposeAsync();

    private static ActorSelection SiteOf(SiteNode from, SiteNode to) =>
        from.System.ActorSelection(new RootActorPath(Cluster.Get(to.System).SelfAddress) / "user" / "site");

    [Fact]
    public async Task Sites_join_with_their_names_as_roles()
    {
        var members = Cluster.Get(_nodes[0].System).State.Members;
        await Task.CompletedTask;
        Assert.Equal(3, members.Count(m => m.Status == MemberStatus.Up));
        Assert.Equal(["site-a", "site-b", "site-c"], members.SelectMany(m => m.Roles).Order());
        // Their SQLite journals wait for a locked database in SQLite (SqliteBusyTimeoutTests), not in 150 ms sleeps.
        Assert.All(_nodes, n => Assert.True(n.System.Settings.Setup.Get<Akka.Persistence.Sql.Config.DataOptionsSetup>().HasValue));
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
        _nodes[2] = SiteNode.Start(_sites.SiteConfig(2));
        var list = Assert.IsType<DiskList>(await _nodes[2].Site.Ask<object>(new ListDisks(), TimeSpan.FromSeconds(20)));
        var disk = Assert.Single(list.Disks);
        var copy = Path.Combine(_dir, "copy.img");
        await Tool.CheckAsync("nbdcopy", disk.NbdUri, copy);
        Assert.Equal(Tool.Sha256(file), Tool.Sha256(copy));
    }

    private async Task<DiskList> ListAsync(SiteNode node) =>
        Assert.IsType<DiskList>(await node.Site.Ask<object>(new ListDisks(), TimeSpan.FromSeconds(20)));

    private async Task<DiskInfo> SeedDiskAsync(SiteNode node, string name, byte[] content)
    {
        var file = Path.Combine(_dir, name + "-seed.img");
        File.WriteAllBytes(file, content);
        return Assert.IsType<DiskInfo>(await node.Site.Ask<object>(new CreateDisk(name, 0, file), TimeSpan.FromSeconds(20)));
    }

    [Fact]
    public async Task An_idle_disk_relocates_postcopy_and_the_source_is_released()
    {
        var content = Tool.RandomBytes(8 << 20, 21);
        var a = _nodes[0];
        var created = await SeedDiskAsync(a, "vm1", content);
        await Tool.CheckAsync("qemu-io", "-f", "raw", created.NbdUri, "-c", "write -P 0x33 100k 200k", "-c", "flush");
        Array.Fill(content, (byte)0x33, 100 * 1024, 200 * 1024);

        var accepted = await _nodes[2].Coordinator.Ask<object>(new Coordinator.RelocationProtocol.Relocate("vm1", "site-b"), TimeSpan.FromSeconds(20));
        Assert.Equal(new Coordinator.RelocationProtocol.RelocationAccepted("vm1", "site-a", "site-b", 1), accepted);
        Assert.IsType<Coordinator.RelocationProtocol.RelocationRefused>(
            await _nodes[1].Coordinator.Ask<object>(new Coordinator.RelocationProtocol.Relocate("vm1", "site-c"), TimeSpan.FromSeconds(20)));

        // Idle source: handover at once, then post-copy to the end, then the source lets go.
        await AwaitAsync(async () => (await ListAsync(_nodes[1])).Disks.Any(d => d.Name == "vm1" && d.Phase == "owned" && d.Epoch == 2));
        await AwaitAsync(async () => (await ListAsync(a)).Disks.Count == 0);
        var moved = (await ListAsync(_nodes[1])).Disks.Single();
        var copy = Path.Combine(_dir, "moved.img");
        await Tool.CheckAsync("nbdcopy", moved.NbdUri, copy);
        Assert.Equal(Tool.Sha256Of(content), Tool.Sha256(copy));
    }

    [Fact]
    public async Task Relocation_requests_that_make_no_sense_are_refused_with_a_reason()
    {
        await SeedDiskAsync(_nodes[0], "vm2", new byte[1 << 20]);
        async Task<string> Refusal(Coordinator.RelocationProtocol.Relocate r) =>
            Assert.IsType<Coordinator.RelocationProtocol.RelocationRefused>(await _nodes[1].Coordinator.Ask<object>(r, TimeSpan.FromSeconds(20))).Reason;
        Assert.Contains("unknown disk", await Refusal(new("nope", "site-b")));
        Assert.Contains("unknown site", await Refusal(new("vm2", "site-x")));
        Assert.Contains("already at", await Refusal(new("vm2", "site-a")));
    }

    [Fact]
    public async Task A_guest_moves_with_its_disk_through_an_operator_handover_and_loses_no_flushed_write()
    {
        var content = Tool.RandomBytes(8 << 20, 22);
        var a = _nodes[0];
        var created = await SeedDiskAsync(a, "vm3", content);
        await using var atSource = await GuestAtAsync(created.NbdUri);
        var accepted = await _nodes[1].Coordinator.Ask<object>(new Coordinator.RelocationProtocol.Relocate("vm3", "site-c", Hybrid: true), TimeSpan.FromSeconds(20));
        Assert.True(accepted is Coordinator.RelocationProtocol.RelocationAccepted, $"refused: {accepted}");
        var destUri = $"nbd://127.0.0.1:{_nodes[2].NbdEndPoint.Port}/vm3";
        await AwaitAsync(async () => (await ListAsync(_nodes[2])).Disks.Any(d => d.Name == "vm3" && d.Phase == "incoming"));

        // The guest keeps writing at the source while the destination pre-copies and serves reads.
        await using var atDest = await Nbd.Client.NbdClient.ConnectAsync(Nbd.Client.NbdClientOptions.FromUri(destUri));
        var early = new byte[65536];
        await atDest.ReadAsync(0, early);
        Assert.Equal(content.AsSpan(0, 65536).ToArray(), early);
        var w1 = Tool.RandomBytes(65536, 1);
        await atSource.WriteAsync(0, w1);           // a block the destination already copied
        await atSource.WriteAsync(3 << 20, Tool.RandomBytes(1000, 2).AsMemory());
        await atSource.FlushAsync();
        w1.CopyTo(content, 0);
        Tool.RandomBytes(1000, 2).CopyTo(content, 3 << 20);

        // The VM pauses; the operator hands the disk over; the source now refuses writes.
        var handover = await _nodes[0].Coordinator.Ask<object>(new Coordinator.RelocationProtocol.RequestHandover("vm3"), TimeSpan.FromSeconds(20));
        Assert.IsType<Coordinator.RelocationProtocol.RelocationInfo>(handover);
        await AwaitAsync(async () =>
        {
            // Writing back what is there: until the fence is up these writes land (and are harmless).
            try { await atSource.WriteAsync(5 << 20, content.AsMemory(5 << 20, 512)); return false; }
            catch (Nbd.Client.NbdClientException e) { return e.Error == Nbd.Protocol.NbdError.Perm; }
        });
        await atSource.FlushAsync(); // a leaving QEMU's last FLUSH still succeeds
        var w2 = Tool.RandomBytes(70000, 3);
        await atDest.WriteAsync(1 << 20, w2);       // the VM resumes at the destination
        await atDest.FlushAsync();
        w2.CopyTo(content, 1 << 20);
        var back = new byte[65536];
        await atDest.ReadAsync(0, back);
        Assert.Equal(w1, back);                     // the invalidated block came back fresh

        await AwaitAsync(async () => (await ListAsync(_nodes[2])).Disks.Any(d => d.Name == "vm3" && d.Phase == "owned"));
        var copy = Path.Combine(_dir, "vm3.img");
        await Tool.CheckAsync("nbdcopy", destUri, copy);
        Assert.Equal(Tool.Sha256Of(content), Tool.Sha256(copy));
    }

    [Fact]
    public async Task A_read_at_the_destination_before_handover_sees_the_sources_latest_write()
    {
        var content = Tool.RandomBytes(4 << 20, 31);
        var created = await SeedDiskAsync(_nodes[0], "vm4", content);
        await using var atSource = await GuestAtAsync(created.NbdUri);
        Assert.IsType<Coordinator.RelocationProtocol.RelocationAccepted>(
            await _nodes[1].Coordinator.Ask<object>(new Coordinator.RelocationProtocol.Relocate("vm4", "site-b", Hybrid: true), TimeSpan.FromSeconds(20)));
        // Pre-copy until the destination holds every block, while the source still owns the disk.
        await AwaitAsync(async () => (await ListAsync(_nodes[1])).Disks.Any(d => d.Name == "vm4" && d.LocalBytes == content.Length));
        await using var atDest = await Nbd.Client.NbdClient.ConnectAsync(Nbd.Client.NbdClientOptions.FromUri($"nbd://127.0.0.1:{_nodes[1].NbdEndPoint.Port}/vm4"));
        for (int i = 0; i < 8; i++)
        {
            // The invalidation of this block is at most 200 ms away; the read must not need it.
            var fresh = Tool.RandomBytes(4096, 100 + i);
            long offset = (long)i * 300_000 / 4096 * 4096;
            await atSource.WriteAsync(offset, fresh);
            await atSource.FlushAsync();
            var seen = new byte[4096];
            await atDest.ReadAsync(offset, seen);
            Assert.Equal(fresh, seen);
        }
    }

    [Fact]
    public async Task A_relocation_cancelled_before_handover_leaves_the_source_the_owner_and_can_run_again()
    {
        var content = Tool.RandomBytes(4 << 20, 32);
        var a = _nodes[0];
        var created = await SeedDiskAsync(a, "vm5", content);
        await using var atSource = await GuestAtAsync(created.NbdUri);
        var coordinator = _nodes[1].Coordinator;
        Assert.IsType<Coordinator.RelocationProtocol.RelocationAccepted>(await coordinator.Ask<object>(
            new Coordinator.RelocationProtocol.Relocate("vm5", "site-c", Hybrid: true, RateBytesPerSecond: 1_000_000), TimeSpan.FromSeconds(20)));
        await AwaitAsync(async () => (await ListAsync(_nodes[2])).Disks.Any(d => d.Name == "vm5" && d.Phase == "incoming" && d.LocalBytes > 0));
        var w1 = Tool.RandomBytes(65536, 5);
        await atSource.WriteAsync(1 << 20, w1);
        await atSource.FlushAsync();
        w1.CopyTo(content, 1 << 20);

        var cancelled = await coordinator.Ask<object>(new Coordinator.RelocationProtocol.CancelRelocation("vm5"), TimeSpan.FromSeconds(30));
        Assert.Equal(new Coordinator.RelocationProtocol.RelocationCancelled("vm5"), cancelled);
        Assert.DoesNotContain((await ListAsync(_nodes[2])).Disks, d => d.Name == "vm5");
        var atA = Assert.Single((await ListAsync(a)).Disks, d => d.Name == "vm5");
        Assert.Equal(("owned", 1L), (atA.Phase, atA.Epoch));
        var w2 = Tool.RandomBytes(5000, 6);
        await atSource.WriteAsync(2 << 20, w2);     // still the owner: writes go on
        await atSource.FlushAsync();
        w2.CopyTo(content, 2 << 20);
        Assert.IsType<Coordinator.RelocationProtocol.RelocationRefused>(
            await coordinator.Ask<object>(new Coordinator.RelocationProtocol.CancelRelocation("vm5"), TimeSpan.FromSeconds(20)));

        // Again, to the same site: nothing of the cancelled copy may come back.
        Assert.IsType<Coordinator.RelocationProtocol.RelocationAccepted>(await coordinator.Ask<object>(
            new Coordinator.RelocationProtocol.Relocate("vm5", "site-c", Hybrid: true), TimeSpan.FromSeconds(20)));
        await AwaitAsync(async () => (await ListAsync(_nodes[2])).Disks.Any(d => d.Name == "vm5" && d.Phase == "incoming"));
        await AwaitAsync(async () => await coordinator.Ask<object>(new Coordinator.RelocationProtocol.RequestHandover("vm5"), TimeSpan.FromSeconds(20))
            is Coordinator.RelocationProtocol.RelocationInfo);
        Assert.IsType<Coordinator.RelocationProtocol.RelocationRefused>( // past the handover: forward only
            await coordinator.Ask<object>(new Coordinator.RelocationProtocol.CancelRelocation("vm5"), TimeSpan.FromSeconds(20)));
        await AwaitAsync(async () => (await ListAsync(_nodes[2])).Disks.Any(d => d.Name == "vm5" && d.Phase == "owned" && d.Epoch == 2));
        var copy = Path.Combine(_dir, "vm5.img");
        await Tool.CheckAsync("nbdcopy", $"nbd://127.0.0.1:{_nodes[2].NbdEndPoint.Port}/vm5", copy);
        Assert.Equal(Tool.Sha256Of(content), Tool.Sha256(copy));
    }

    [Fact]
    public async Task A_disk_imported_from_a_foreign_nbd_server_is_served_at_once_and_copied_in()
    {
        var content = Tool.RandomBytes(6 << 20, 33);
        Array.Clear(content, 2 << 20, 2 << 20); // a hole the copy skips
        var file = Path.Combine(_dir, "foreign.img");
        File.WriteAllBytes(file, content);
        await using var foreign = await ExternalServer.StartNbdkitAsync("file", $"file={file}");
        var site = _nodes[1];
        var created = Assert.IsType<DiskInfo>(await site.Site.Ask<object>(new CreateDisk("imp", 0, foreign.Uri()), TimeSpan.FromSeconds(20)));
        Assert.Equal((content.Length, "incoming", true), (created.Size, created.Phase, created.Writable));
        // Served (and writable) while it is copied in.
        await Tool.CheckAsync("qemu-io", "-f", "raw", created.NbdUri, "-c", "write -P 0x5a 1m 100k", "-c", "flush", "-c", "read -P 0x5a 1m 100k");
        Array.Fill(content, (byte)0x5a, 1 << 20, 100 * 1024);
        await AwaitAsync(async () => (await ListAsync(site)).Disks.Any(d => d.Name == "imp" && d.Phase == "owned"));
        var copy = Path.Combine(_dir, "imp.img");
        await Tool.CheckAsync("nbdcopy", created.NbdUri, copy);
        Assert.Equal(Tool.Sha256Of(content), Tool.Sha256(copy));
        Assert.Equal(Tool.Sha256Of(File.ReadAllBytes(file)), Tool.Sha256(file)); // the foreign copy is only read
        var refused = await site.Site.Ask<object>(new CreateDisk("imp2", 0, "nbd://127.0.0.1:1/none"), TimeSpan.FromSeconds(30));
        Assert.Contains("cannot import", Assert.IsType<Refused>(refused).Reason);
    }

    /// <summary>A guest connected and past the handshake: the disk has a client, so it is not idle (no immediate handover).</summary>
    private static async Task<Nbd.Client.NbdClient> GuestAtAsync(string uri)
    {
        var client = await Nbd.Client.NbdClient.ConnectAsync(Nbd.Client.NbdClientOptions.FromUri(uri));
        await client.ReadAsync(0, new byte[512]);
        return client;
    }

    private static Task AwaitAsync(Func<Task<bool>> condition) => InProcessSites.AwaitAsync(condition);
}
