using Akka.Actor;
using Akka.Configuration;
using Reloc.Actors.Site;
using Reloc.Testing;
using Xunit;
using static Reloc.Actors.Site.SiteProtocol;

namespace Reloc.Actors.Tests;

/// <summary>
/// The site actor runs under a backoff supervisor at /user/site: killed (a crash) or stopped (what
/// Akka.Persistence does to a persistent actor whose journal fails), it is started again, recovers its
/// disks from the journal and serves them; /user/site keeps answering throughout.
/// </summary>
public sealed class SiteSupervisionTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("reloc-site-supervision-").FullName;
    private readonly int _port = Ports.Free();
    private SiteNode _node = null!;

    private Config SiteConfig(string extra = "") => ConfigurationFactory.ParseString($$"""
        akka.loglevel = WARNING
        akka.actor.provider = cluster
        akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = {{_port}} }
        akka.cluster.seed-nodes = ["akka.tcp://reloc@127.0.0.1:{{_port}}"]
        akka.cluster.roles = [site-a]
        reloc.site { name = site-a, data-dir = "{{_dir}}", nbd.listen = "127.0.0.1:0" }
        reloc.site.restart-backoff { min = 100ms, max = 1s }
        reloc.management.listen = off
        {{extra}}
        """);

    public async Task InitializeAsync()
    {
        _node = SiteNode.Start(SiteConfig());
        await _node.WhenReadyAsync(TimeSpan.FromSeconds(60));
    }

    public async Task DisposeAsync()
    {
        await _node.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public Task A_killed_site_actor_is_started_again_and_serves_its_disks() =>
        RecoversAfterAsync(Kill.Instance);

    [Fact]
    public Task A_stopped_site_actor_is_started_again_and_serves_its_disks() =>
        RecoversAfterAsync(PoisonPill.Instance); // a journal failure stops a persistent actor the same way

    private async Task RecoversAfterAsync(object fatal)
    {
        var created = Assert.IsType<DiskInfo>(await _node.Site.Ask<object>(new CreateDisk("vm1", 4 << 20), TimeSpan.FromSeconds(20)));
        await Tool.CheckAsync("qemu-io", "-f", "raw", created.NbdUri, "-c", "write -P 0x42 0 64k", "-c", "flush");

        var siteActor = await SiteActorAsync();
        var stopped = siteActor.WatchAsync();
        siteActor.Tell(fatal);
        await stopped.WaitAsync(TimeSpan.FromSeconds(20));

        // Asked through /user/site as every caller does: dropped until the new site actor is up (after the
        // backoff), then answered by it once it has recovered (requests wait in its stash until then).
        var list = await AskUntilAnsweredAsync(new ListDisks());
        Assert.Equal(["vm1"], list.Disks.Select(d => d.Name));
        Assert.NotEqual(siteActor, await SiteActorAsync());
        // Served again by the new actor's export (the stopped one took its exports down and closed its image).
        await Tool.CheckAsync("qemu-io", "-f", "raw", created.NbdUri, "-c", "read -P 0x42 0 64k");
    }

    [Fact]
    public async Task A_site_actor_that_stops_again_keeps_coming_back()
    {
        for (int i = 0; i < 3; i++)
        {
            var siteActor = await SiteActorAsync();
            var stopped = siteActor.WatchAsync();
            siteActor.Tell(PoisonPill.Instance);
            await stopped.WaitAsync(TimeSpan.FromSeconds(20));
            Assert.Empty((await AskUntilAnsweredAsync(new ListDisks())).Disks);
        }
    }

    [Fact]
    public void Restart_backoff_settings_are_validated()
    {
        Assert.Equal((TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(1)),
            (_node.Settings.RestartMinBackoff, _node.Settings.RestartMaxBackoff));
        var defaults = SiteSettings.From(SiteNode.Configure(ConfigurationFactory.ParseString(
            $$"""reloc.site { name = x, data-dir = "{{_dir}}", nbd.listen = "127.0.0.1:0" }""")));
        Assert.Equal((TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30)), (defaults.RestartMinBackoff, defaults.RestartMaxBackoff));
        var tooLong = Assert.Throws<ArgumentException>(() => SiteSettings.From(SiteConfig("reloc.site.restart-backoff { min = 5s, max = 1s }")));
        Assert.Contains("restart-backoff.max", tooLong.Message);
        var zero = Assert.Throws<ArgumentException>(() => SiteSettings.From(SiteConfig("reloc.site.restart-backoff.min = 0s")));
        Assert.Contains("restart-backoff.min", zero.Message);
    }

    private Task<IActorRef> SiteActorAsync() =>
        _node.System.ActorSelection(_node.Site.Path / SiteNode.SiteActorName).ResolveOne(TimeSpan.FromSeconds(20));

    /// <summary>Asks /user/site until an answer comes (each ask waits up to 2 s; no sleeping in between).</summary>
    private async Task<DiskList> AskUntilAnsweredAsync(object request)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            try { return await _node.Site.Ask<DiskList>(request, TimeSpan.FromSeconds(2)); }
            catch (AskTimeoutException) when (DateTime.UtcNow < deadline) { }
        }
    }
}
