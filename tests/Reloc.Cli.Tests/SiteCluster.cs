using System.Text.Json.Nodes;
using Reloc.Management;
using Reloc.Testing;
using Xunit;

namespace Reloc.Cli.Tests;

/// <summary>One reloc-node process of a test cluster, with the ports it was given.</summary>
/// <param name="Options">The credentials (and CA) the test's own calls use; null: none (auth off).</param>
public sealed record Site(string Name, NodeProcess Process, int ManagementPort, int NbdPort, int ClusterPort, bool Https = false,
    ManagementClientOptions? Options = null)
{
    public string Node => Https ? $"https://127.0.0.1:{ManagementPort}" : $"127.0.0.1:{ManagementPort}";
    public string Uri(string disk) => $"nbd://127.0.0.1:{NbdPort}/{disk}";
}

/// <summary>
/// A live cluster of reloc-node processes (site-a, site-b, site-c) from generated HOCON files: free ports,
/// data in a temporary directory. Ready when every node's management endpoint shows all sites Up and the
/// coordinator answers. More sites can join it (and are killed at the end).
/// </summary>
public class SiteCluster : IAsyncLifetime
{
    /// <summary>HOCON appended to each site's file (a secured cluster's TLS and auth).</summary>
    protected virtual string ExtraConfig(string site) => "";

    /// <summary>Whether the management API is served over HTTPS (ExtraConfig sets reloc.management.tls).</summary>
    protected virtual bool Https => false;

    /// <summary>What the fixture's own calls (waiting for the cluster) authenticate with.</summary>
    protected virtual ManagementClientOptions? Options => null;

    private readonly List<Site> _sites = [];
    private int _seedA, _seedB;

    public string Dir { get; } = Directory.CreateTempSubdirectory("reloc-cli-test-").FullName;
    public Site A => _sites[0];
    public Site B => _sites[1];
    public Site C => _sites[2];

    public virtual async Task InitializeAsync()
    {
        _seedA = Ports.Free();
        _seedB = Ports.Free();
        var started = await Task.WhenAll(StartSiteAsync("site-a", _seedA), StartSiteAsync("site-b", _seedB), StartSiteAsync("site-c", Ports.Free()));
        _sites.AddRange(started);
        await WaitUntilAllUpAsync(3);
    }

    /// <summary>Starts more sites (at once) that join the cluster; waits until the cluster shows them Up.</summary>
    public async Task<Site[]> JoinAsync(params string[] names)
    {
        var sites = await Task.WhenAll(names.Select(n => StartSiteAsync(n, Ports.Free())));
        _sites.AddRange(sites);
        await WaitForAsync(A.Node, members => names.All(n => members.Any(m => m.Site == n && m.Status == "Up")), TimeSpan.FromSeconds(60), Options);
        return sites;
    }

    private async Task<Site> StartSiteAsync(string name, int clusterPort)
    {
        int mgmt = Ports.Free(), nbd = Ports.Free();
        var config = Path.Combine(Dir, name + ".conf");
        await File.WriteAllTextAsync(config, $$"""
            reloc.site { name = {{name}}, data-dir = "{{Path.Combine(Dir, name)}}", import-dir = "{{Dir}}", nbd.listen = "127.0.0.1:{{nbd}}" }
            reloc.management.listen = "127.0.0.1:{{mgmt}}"
            akka {
              loglevel = WARNING
              actor.provider = cluster
              remote.dot-netty.tcp { hostname = "127.0.0.1", port = {{clusterPort}} }
              cluster {
                seed-nodes = ["akka.tcp://reloc@127.0.0.1:{{_seedA}}", "akka.tcp://reloc@127.0.0.1:{{_seedB}}"]
                roles = [{{name}}]
              }
            }
            {{ExtraConfig(name)}}
            """);
        var process = NodeProcess.Start("--config", config);
        try { await process.WaitForLineAsync(l => l.StartsWith("reloc-node: site ", StringComparison.Ordinal), TimeSpan.FromSeconds(60)); }
        catch
        {
            await process.DisposeAsync(); // not in the cluster's list yet: nobody else would stop it
            throw;
        }
        return new Site(name, process, mgmt, nbd, clusterPort, Https, Options);
    }

    private async Task WaitUntilAllUpAsync(int count)
    {
        foreach (var site in _sites)
        {
            await WaitForAsync(site.Node, members => members.Count(m => m.Status == "Up") == count, TimeSpan.FromSeconds(90), Options);
            // The coordinator singleton answers through this node's proxy.
            await CallAsync(site, c => c.RelocationsAsync());
        }
    }

    /// <summary>Polls the cluster's members on <paramref name="node"/> until they satisfy <paramref name="done"/>.</summary>
    public static async Task WaitForAsync(string node, Func<IReadOnlyList<MemberView>, bool> done, TimeSpan timeout, ManagementClientOptions? options = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        using var client = new ManagementClient(node, TimeSpan.FromSeconds(10), options);
        while (true)
        {
            var members = (await client.ClusterAsync()).Members;
            if (done(members)) return;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"cluster at {node} not as expected: {string.Join(", ", members)}");
            await Task.Delay(100);
        }
    }

    /// <summary>Calls the management API directly (for waiting on conditions, not for what is under test).</summary>
    public static async Task<T> CallAsync<T>(Site site, Func<ManagementClient, Task<T>> call)
    {
        using var client = new ManagementClient(site.Node, TimeSpan.FromSeconds(10), site.Options);
        return await call(client);
    }

    /// <summary>Polls until <paramref name="condition"/> holds (bounded).</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"timed out waiting for {what}");
            await Task.Delay(100);
        }
    }

    public virtual async Task DisposeAsync()
    {
        foreach (var site in _sites) await site.Process.DisposeAsync();
        try { Directory.Delete(Dir, recursive: true); }
        catch (IOException) { }
    }
}

[CollectionDefinition(Name)]
public sealed class ClusterCollection : ICollectionFixture<SiteCluster>
{
    public const string Name = "site cluster";
}
