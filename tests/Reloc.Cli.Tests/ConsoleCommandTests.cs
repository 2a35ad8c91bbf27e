using System.Text.Json.Nodes;
using Reloc.Nbd.Client;
using Reloc.Testing;
using Xunit;

namespace Reloc.Cli.Tests;

/// <summary>Every console command against a live three-process cluster: the text for people, the JSON for
/// scripts, and every failure the console must report as one line and a non-zero exit code.</summary>
[Collection(ClusterCollection.Name)]
public sealed class ConsoleCommandTests(SiteCluster cluster)
{
    private Site A => cluster.A;

    [Fact]
    public async Task Cluster_show_lists_every_site_up_in_text_and_json()
    {
        var text = await Cli.OkAsync(A.Node, "cluster", "show");
        Assert.Contains("3 members, 3 up, 0 unreachable", text);
        foreach (var site in new[] { cluster.A, cluster.B, cluster.C })
            Assert.Contains($"akka.tcp://reloc@127.0.0.1:{site.ClusterPort}", text);
        Assert.Contains("coordinator", text);
        Assert.Contains("this node", text);

        var json = await Cli.JsonAsync(cluster.B.Node, "cluster", "show");
        var members = J.Arr(json, "members");
        Assert.Equal(["site-a", "site-b", "site-c"], members.Select(m => J.Str(m, "site")).Order());
        Assert.All(members, m => Assert.Equal("Up", J.Str(m, "status")));
        Assert.All(members, m => Assert.True(J.Bool(m, "reachable")));
        Assert.Equal($"akka.tcp://reloc@127.0.0.1:{cluster.B.ClusterPort}", J.Str(json, "self"));
        Assert.Contains(J.Str(json, "coordinator"), members.Select(m => J.Str(m, "address")));
        Assert.False(string.IsNullOrEmpty(J.Str(json, "leader")));
    }

    [Fact]
    public async Task The_node_comes_from_the_option_else_RELOC_NODE_else_the_default_port()
    {
        var viaEnv = await Cli.RunAsync(null, ["--json", "cluster", "show"], env: new Dictionary<string, string> { ["RELOC_NODE"] = cluster.C.Node });
        Assert.Equal(0, viaEnv.ExitCode);
        Assert.Equal($"akka.tcp://reloc@127.0.0.1:{cluster.C.ClusterPort}", J.Str(JsonNode.Parse(viaEnv.StdOut), "self"));
        // Nobody listens on the default port in the tests (the sites use free ports): the reason names it.
        // (A node of someone's own may listen there; if not, the reason names the default address.)
        var none = await Cli.RunAsync(null, ["disk", "list"]);
        if (none.ExitCode != 0) Assert.Contains("cannot reach a reloc node at 127.0.0.1:9110", none.StdErr);
        var help = await Cli.RunAsync(null, ["--help"]);
        Assert.Equal(0, help.ExitCode);
        Assert.Contains("$RELOC_NODE, else 127.0.0.1:9110", help.StdOut);
    }

    [Fact]
    public async Task A_disk_is_created_listed_shown_and_deleted_in_text_and_json()
    {
        var created = await Cli.OkAsync(A.Node, "disk", "create", "life1", "--site", "site-b", "--size", "8MiB");
        Assert.Equal($"created life1 on site-b: 8 MiB, epoch 1, {cluster.B.Uri("life1")}", created.Trim());

        var json = await Cli.JsonAsync(A.Node, "disk", "create", "life2", "--site", "site-c", "--size", "1.5MiB");
        Assert.Equal(("life2", "site-c", 1_572_864L, 1L, "owned", cluster.C.Uri("life2")),
            (J.Str(json, "name"), J.Str(json, "site"), J.Long(json, "size"), J.Long(json, "epoch"), J.Str(json, "phase"), J.Str(json, "nbdUri")));

        // Without --site: the site of the node asked.
        var here = await Cli.JsonAsync(cluster.C.Node, "disk", "create", "life3", "--size", "64KiB");
        Assert.Equal("site-c", J.Str(here, "site"));

        var list = await Cli.OkAsync(cluster.B.Node, "disk", "list");
        Assert.Matches(@"life1\s*│\s*site-b\s*│\s*owned\s*│\s*1\s*│\s*8 MiB\s*│\s*100.0%", list);
        Assert.Contains(cluster.C.Uri("life2"), list);
        var listed = await Cli.JsonAsync(cluster.B.Node, "disk", "list");
        var life1 = Assert.Single(J.Arr(listed, "disks"), d => J.Str(d, "name") == "life1");
        Assert.Equal(("site-b", 8L << 20, 8L << 20, 0L), (J.Str(life1, "site"), J.Long(life1, "size"), J.Long(life1, "localBytes"), J.Long(life1, "clients")));
        Assert.Empty(J.Arr(listed, "unreachableSites"));

        var shown = await Cli.OkAsync(A.Node, "disk", "show", "life1");
        Assert.StartsWith("life1\n", shown);
        Assert.Contains("site-b (epoch 1, owned)", shown);
        Assert.Contains("8 MiB (8388608 bytes)", shown);
        Assert.Contains($"-drive file={cluster.B.Uri("life1")},format=raw", shown);
        var shownJson = await Cli.JsonAsync(A.Node, "disk", "show", "life1");
        Assert.Equal(("life1", "site-b", 1L, "owned", 8L << 20, cluster.B.Uri("life1")),
            (J.Str(shownJson, "name"), J.Str(shownJson, "owner"), J.Long(shownJson, "epoch"), J.Str(shownJson, "phase"), J.Long(shownJson, "size"), J.Str(shownJson, "nbdUri")));
        Assert.Single(J.Arr(shownJson, "copies"));
        Assert.Null(shownJson["relocation"]);

        // The disk is really served where the console says.
        var info = await Tool.RunAsync("nbdinfo", "--size", cluster.B.Uri("life1"));
        Assert.Equal("8388608", info.StdOut.Trim());

        Assert.Equal("deleted life1 (was on site-b)", (await Cli.OkAsync(A.Node, "disk", "delete", "life1")).Trim());
        var deleted = await Cli.JsonAsync(A.Node, "disk", "delete", "life2");
        Assert.Equal(("life2", "site-c"), (J.Str(deleted, "name"), J.Str(deleted, "site")));
        await Cli.OkAsync(A.Node, "disk", "delete", "life3");
        await Cli.FailsAsync(A.Node, 1, "unknown disk 'life1'", "disk", "show", "life1");
        Assert.DoesNotContain(J.Arr(await Cli.JsonAsync(A.Node, "disk", "list"), "disks"), d => J.Str(d, "name").StartsWith("life"));
    }

    [Fact]
    public async Task Disks_created_from_a_file_and_imported_from_an_nbd_uri_hold_its_content()
    {
        var content = Tool.RandomBytes(4 << 20, 51);
        Array.Clear(content, 1 << 20, 1 << 20); // a run of zeros too
        var file = Path.Combine(cluster.Dir, "import-seed.img");
        await File.WriteAllBytesAsync(file, content);

        var fromFile = await Cli.JsonAsync(A.Node, "disk", "create", "img1", "--site", "site-a", "--from", file);
        Assert.Equal(content.Length, J.Long(fromFile, "size"));
        Assert.Equal(Tool.Sha256Of(content), Tool.Sha256Of(await ReadAllAsync(cluster.A.Uri("img1"), content.Length)));

        var imported = await Cli.OkAsync(A.Node, "disk", "create", "img2", "--site", "site-c", "--from", cluster.A.Uri("img1"));
        Assert.StartsWith($"created img2 on site-c: 4 MiB, epoch 1, {cluster.C.Uri("img2")}", imported);
        // Served at once (missing blocks come from the source), and complete in the end.
        Assert.Equal(Tool.Sha256Of(content), Tool.Sha256Of(await ReadAllAsync(cluster.C.Uri("img2"), content.Length)));
        await SiteCluster.UntilAsync(async () => (await SiteCluster.CallAsync(A, c => c.DiskAsync("img2"))).Phase == "owned", "the import to finish");
        await Cli.OkAsync(A.Node, "disk", "delete", "img2");
        await Cli.OkAsync(A.Node, "disk", "delete", "img1");
    }

    [Fact]
    public async Task Every_failure_is_one_line_on_stderr_with_a_non_zero_exit_code()
    {
        await Cli.OkAsync(A.Node, "disk", "create", "err1", "--site", "site-a", "--size", "1MiB");

        // Unknown disk.
        await Cli.FailsAsync(A.Node, 1, "unknown disk 'nope'", "disk", "show", "nope");
        await Cli.FailsAsync(A.Node, 1, "unknown disk 'nope'", "disk", "delete", "nope");
        await Cli.FailsAsync(A.Node, 1, "unknown disk 'nope'", "relocate", "nope", "--to", "site-b");
        await Cli.FailsAsync(A.Node, 1, "unknown disk 'nope'", "relocation", "status", "nope");
        await Cli.FailsAsync(A.Node, 1, "disk 'nope' is not relocating", "relocation", "cancel", "nope");
        await Cli.FailsAsync(A.Node, 1, "disk 'nope' is not relocating", "relocation", "handover", "nope");
        await Cli.FailsAsync(A.Node, 1, "disk 'nope' is not relocating", "--json", "relocation", "rate", "nope", "10MB/s");
        await Cli.FailsAsync(A.Node, 1, "disk 'err1' is not relocating (site-a owns it at epoch 1)", "relocation", "status", "err1");

        // Unknown site, and relocation to the site that owns the disk.
        await Cli.FailsAsync(A.Node, 1, "unknown site 'site-x' (sites: site-a, site-b, site-c)", "disk", "create", "err2", "--site", "site-x", "--size", "1MiB");
        await Cli.FailsAsync(A.Node, 1, "unknown site 'site-x'", "relocate", "err1", "--to", "site-x");
        await Cli.FailsAsync(A.Node, 1, "disk 'err1' is already at site-a", "--json", "relocate", "err1", "--to", "site-a");
        await Cli.FailsAsync(A.Node, 1, "disk 'err1' already exists", "disk", "create", "err1", "--site", "site-b", "--size", "1MiB");
        await Cli.FailsAsync(A.Node, 1, "no cluster member 'site-x'", "cluster", "leave", "site-x");
        await Cli.FailsAsync(A.Node, 1, "no cluster member 'akka.tcp://reloc@127.0.0.1:1'", "cluster", "down", "akka.tcp://reloc@127.0.0.1:1");

        // No node there: the reason names the address tried.
        int closed = Ports.Free();
        await Cli.FailsAsync($"127.0.0.1:{closed}", 3, $"cannot reach a reloc node at 127.0.0.1:{closed}", "disk", "list");
        await Cli.FailsAsync($"127.0.0.1:{closed}", 3, $"cannot reach a reloc node at 127.0.0.1:{closed}", "--json", "cluster", "show");
        await Cli.FailsAsync("localhost", 2, "node address 'localhost': expected HOST:PORT", "disk", "list");

        // Bad sizes and rates are caught before connecting (the node given does not exist).
        var nowhere = $"127.0.0.1:{closed}";
        await Cli.FailsAsync(nowhere, 2, "--size: '10QB' is not a size: unknown unit 'QB'", "disk", "create", "x", "--site", "site-a", "--size", "10QB");
        await Cli.FailsAsync(nowhere, 2, "--size: 'ten' is not a size", "disk", "create", "x", "--site", "site-a", "--size", "ten");
        await Cli.FailsAsync(nowhere, 2, "--size: '0' is not a size: it must be above 0", "disk", "create", "x", "--site", "site-a", "--size", "0");
        await Cli.FailsAsync(nowhere, 2, "give --size", "disk", "create", "x", "--site", "site-a");
        await Cli.FailsAsync(nowhere, 2, "--rate: '40MBs' is not a rate: unknown unit 'MBs'", "relocate", "x", "--to", "site-b", "--rate", "40MBs");
        await Cli.FailsAsync(nowhere, 2, "--rate: '-5MB/s' is not a rate: it must not be negative", "relocate", "x", "--to", "site-b", "--rate", "-5MB/s");
        await Cli.FailsAsync(nowhere, 2, "relocation rate: 'fast' is not a rate", "relocation", "rate", "x", "fast");
        await Cli.FailsAsync(nowhere, 2, "'warp'", "relocate", "x", "--to", "site-b", "--mode", "warp");
        await Cli.FailsAsync(nowhere, 2, "--to", "relocate", "x");
        await Cli.FailsAsync(nowhere, 2, "'frobnicate'", "frobnicate");

        await Cli.OkAsync(A.Node, "disk", "delete", "err1");
    }

    [Fact]
    public async Task Link_budgets_are_set_and_shown_through_the_console()
    {
        Assert.Equal("link site-b ↔ site-c: 20.0 MB/s each way, 0 relocations on it",
            (await Cli.OkAsync(A.Node, "link", "set", "site-c", "site-b", "20MB/s")).Trim());
        var links = (await Cli.JsonAsync(A.Node, "link", "show"))["links"]!.AsArray();
        var bc = links.Single(l => (string?)l!["siteA"] == "site-b" && (string?)l["siteB"] == "site-c")!;
        Assert.Equal(20_000_000, J.Long(bc, "bandwidth"));
        Assert.True((bool)bc["setAtRunTime"]!);
        Assert.Contains("site-b ↔ site-c", await Cli.OkAsync(A.Node, "link", "show"));
        // 0 removes it (over reloc.links too, after a fail-over too: the pair's sites keep it).
        var none = await Cli.JsonAsync(A.Node, "link", "set", "site-b", "site-c", "0");
        Assert.Equal(0, J.Long(none, "bandwidth"));
        await Cli.FailsAsync(A.Node, 1, "unknown site 'site-x'", "link", "set", "site-a", "site-x", "1MB/s");
        await Cli.FailsAsync(A.Node, 1, "two different sites", "link", "set", "site-a", "site-a", "1MB/s");
        await Cli.FailsAsync(A.Node, 1, "disk 'nope' is not relocating", "relocation", "weight", "nope", "2");
        await Cli.FailsAsync(A.Node, 1, "weight must be from 1 to 1000, not 0", "relocation", "weight", "nope", "0");
        await Cli.FailsAsync($"127.0.0.1:{Ports.Free()}", 2, "link set: 'fast' is not a rate", "link", "set", "site-a", "site-b", "fast");
    }

    [Fact]
    public async Task Members_leave_and_are_downed_through_the_console()
    {
        var joined = await cluster.JoinAsync("site-d", "site-e");
        var (d, e) = (joined[0], joined[1]);
        var left = await Cli.OkAsync(A.Node, "cluster", "leave", "site-d");
        Assert.Equal($"akka.tcp://reloc@127.0.0.1:{d.ClusterPort} (site site-d): leaving", left.Trim());
        var downed = await Cli.JsonAsync(A.Node, "cluster", "down", $"akka.tcp://reloc@127.0.0.1:{e.ClusterPort}");
        Assert.Equal(("site-e", "downed"), (J.Str(downed, "site"), J.Str(downed, "action")));
        foreach (var site in new[] { cluster.A, cluster.B, cluster.C }) // gone from every view, not only A's
            await SiteCluster.WaitForAsync(site.Node, m => m.All(x => x.Site is not ("site-d" or "site-e")), TimeSpan.FromSeconds(60));
        var text = await Cli.OkAsync(A.Node, "cluster", "show");
        Assert.Contains("3 members, 3 up", text);
        Assert.DoesNotContain("site-d", text);
    }

    internal static async Task<byte[]> ReadAllAsync(string uri, int length)
    {
        await using var client = await NbdClient.ConnectAsync(NbdClientOptions.FromUri(uri));
        Assert.Equal(length, client.Size);
        var data = new byte[length];
        await client.ReadAsync(0, data);
        return data;
    }
}
