using Akka.Actor;
using Akka.Cluster;
using Akka.Configuration;
using Reloc.Actors.Site;
using Reloc.Testing;
using Xunit;

namespace Reloc.Actors.Tests;

/// <summary>
/// Site nodes in this process forming a real cluster over loopback TCP (site-a, site-b, ...; the first two are the
/// seeds), each with its data directory under <see cref="Dir"/>. <see cref="InitializeAsync"/> returns once every
/// node sees every site Up (the coordinator judges sites by its own node's view) and every node's proxy reaches the
/// coordinator singleton.
/// </summary>
/// <param name="extra">HOCON added to node i's configuration (after the rest: its keys win).</param>
public sealed class InProcessSites(int count, string prefix, Func<int, string>? extra = null) : IAsyncLifetime
{
    private readonly int[] _ports = Enumerable.Range(0, count).Select(_ => Ports.Free()).ToArray();

    public string Dir { get; } = Directory.CreateTempSubdirectory(prefix).FullName;
    public List<SiteNode> Nodes { get; } = [];

    public Config SiteConfig(int i) => ConfigurationFactory.ParseString($$"""
        akka.loglevel = WARNING
        akka.actor.provider = cluster
        akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = {{_ports[i]}} }
        akka.cluster.seed-nodes = [{{string.Join(", ", _ports.Take(2).Select(p => $"\"akka.tcp://reloc@127.0.0.1:{p}\""))}}]
        akka.cluster.roles = [site-{{(char)('a' + i)}}]
        reloc.site { name = site-{{(char)('a' + i)}}, data-dir = "{{Path.Combine(Dir, "site-" + i)}}", import-dir = "{{Dir}}", nbd.listen = "127.0.0.1:0" }
        reloc.management.listen = off
        {{extra?.Invoke(i) ?? ""}}
        """);

    public async Task InitializeAsync()
    {
        for (int i = 0; i < count; i++) Nodes.Add(SiteNode.Start(SiteConfig(i)));
        await Task.WhenAll(Nodes.Select(n => n.WhenUpAsync())).WaitAsync(TimeSpan.FromSeconds(60));
        await AwaitAsync(() => Task.FromResult(Nodes.All(n => Cluster.Get(n.System).State.Members.Count(m => m.Status == MemberStatus.Up) == count)));
        // The coordinator singleton starts once the oldest node is up; wait until every proxy reaches it.
        foreach (var n in Nodes)
            await AwaitAsync(async () =>
            {
                try { return await n.Coordinator.Ask<object>(new Coordinator.RelocationProtocol.GetRelocations(), TimeSpan.FromSeconds(2)) is not null; }
                catch (AskTimeoutException) { return false; }
            });
    }

    /// <summary>The index of the node the coordinator singleton runs on: the oldest Up member, as node 0 sees it.</summary>
    public int CoordinatorIndex()
    {
        var oldest = Cluster.Get(Nodes[0].System).State.Members.Where(m => m.Status == MemberStatus.Up)
            .OrderBy(m => m, Member.AgeOrdering).First().Roles.First();
        return Nodes.FindIndex(n => n.Settings.Name == oldest);
    }

    public async Task DisposeAsync()
    {
        foreach (var n in Nodes) await n.DisposeAsync();
        Directory.Delete(Dir, recursive: true);
    }

    /// <summary>Polls a condition the cluster reaches by itself (bounded: 90 s).</summary>
    public static async Task AwaitAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(200));
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("condition not met within 90 s");
            await timer.WaitForNextTickAsync();
        }
    }
}
