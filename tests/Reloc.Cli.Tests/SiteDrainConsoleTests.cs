using System.Text.Json.Nodes;
using Reloc.Testing;
using Xunit;

namespace Reloc.Cli.Tests;

/// <summary><c>reloc site drain</c> against the live cluster: every disk of a site moves, the console follows it to the end.</summary>
[Collection(ClusterCollection.Name)]
public sealed class SiteDrainConsoleTests(SiteCluster cluster)
{
    [Fact]
    public async Task A_site_is_drained_and_followed_to_the_end_and_nonsense_is_refused()
    {
        await Cli.FailsAsync(cluster.A.Node, 2, "cannot drain site-c into itself", "site", "drain", "site-c", "--to", "site-c");
        await Cli.FailsAsync(cluster.A.Node, 1, "unknown site 'site-x'", "site", "drain", "site-c", "--to", "site-x");
        await Cli.FailsAsync(cluster.A.Node, 2, "--rate", "site", "drain", "site-c", "--to", "site-b", "--rate", "fast");

        var contents = new List<byte[]>();
        for (int i = 0; i < 2; i++)
        {
            var content = Tool.RandomBytes(1 << 20, 90 + i);
            var file = Path.Combine(cluster.Dir, $"drain{i}-seed.img");
            await File.WriteAllBytesAsync(file, content);
            await Cli.OkAsync(cluster.A.Node, "disk", "create", $"drain{i}", "--site", "site-c", "--from", file);
            contents.Add(content);
        }

        var output = await Cli.OkAsync(cluster.B.Node, "site", "drain", "site-c", "--to", "site-b", "--wait");
        Assert.Contains("draining site-c into site-b:", output);
        Assert.Matches(@"drain0\s*│", output);
        Assert.Matches(@"done \d+, running 0, queued 0", output); // the last count, once nothing of it runs or waits
        for (int i = 0; i < 2; i++)
        {
            var disk = await Cli.JsonAsync(cluster.A.Node, "disk", "show", $"drain{i}");
            Assert.Equal(("site-b", "owned"), (J.Str(disk, "owner"), J.Str(disk, "phase")));
            Assert.Equal(Tool.Sha256Of(contents[i]), Tool.Sha256Of(await ConsoleCommandTests.ReadAllAsync(cluster.B.Uri($"drain{i}"), 1 << 20)));
        }

        // Nothing left at site-c to take: an empty drain, in JSON.
        var again = await Cli.JsonAsync(cluster.A.Node, "site", "drain", "site-c", "--to", "site-b");
        Assert.Equal(("site-c", "site-b"), (J.Str(again, "fromSite"), J.Str(again, "toSite")));
        Assert.Empty(again["relocations"] as JsonArray ?? []);
    }
}
