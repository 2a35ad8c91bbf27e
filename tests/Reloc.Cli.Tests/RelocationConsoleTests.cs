using System.Text.Json.Nodes;
using Reloc.Nbd.Client;
using Reloc.Testing;
using Xunit;

namespace Reloc.Cli.Tests;

/// <summary>Relocations driven from the console against the live cluster, checked byte for byte.</summary>
[Collection(ClusterCollection.Name)]
public sealed class RelocationConsoleTests(SiteCluster cluster)
{
    private Site A => cluster.A;

    private async Task<byte[]> SeedAsync(Site site, string name, int size, int seed)
    {
        var content = Tool.RandomBytes(size, seed);
        Array.Clear(content, size / 2, size / 8); // zeros: skipped, not sent
        var file = Path.Combine(cluster.Dir, name + "-seed.img");
        await File.WriteAllBytesAsync(file, content);
        await Cli.OkAsync(A.Node, "disk", "create", name, "--site", site.Name, "--from", file);
        File.Delete(file);
        return content;
    }

    private static async Task<string> PhaseAsync(Site at, string disk) =>
        (await SiteCluster.CallAsync(at, c => c.RelocationsAsync())).Where(r => r.Disk == disk).Select(r => r.Phase).FirstOrDefault() ?? "";

    [Fact]
    public async Task A_relocation_is_driven_step_by_step_list_status_rate_handover_watch()
    {
        var content = await SeedAsync(cluster.A, "step1", 8 << 20, 61);
        // A guest on the source: no idle handover, the operator decides.
        await using var guest = await NbdClient.ConnectAsync(NbdClientOptions.FromUri(cluster.A.Uri("step1")));
        await guest.ReadAsync(0, new byte[512]);

        var accepted = await Cli.OkAsync(cluster.B.Node, "relocate", "step1", "--to", "site-b", "--mode", "hybrid", "--rate", "4MB/s");
        Assert.StartsWith("relocating step1 from site-a to site-b (hybrid, background copy 4.0 MB/s, epoch 1 → 2)", accepted);
        await Cli.FailsAsync(A.Node, 1, "disk 'step1' is already relocating", "relocate", "step1", "--to", "site-c");
        await SiteCluster.UntilAsync(async () => await PhaseAsync(A, "step1") == "serving", "the destination to serve");

        var list = await Cli.OkAsync(cluster.C.Node, "relocation", "list");
        Assert.Matches(@"step1\s*│\s*site-a\s*│\s*site-b\s*│\s*1 → 2\s*│\s*serving", list);
        var listed = Assert.Single(await Cli.JsonAsync(A.Node, "relocation", "list") as JsonArray ?? [], r => J.Str(r, "disk") == "step1");
        Assert.Equal(("site-a", "site-b", 1L, "serving"), (J.Str(listed, "fromSite"), J.Str(listed, "toSite"), J.Long(listed, "epoch"), J.Str(listed, "phase")));

        var status = await Cli.OkAsync(A.Node, "relocation", "status", "step1");
        Assert.StartsWith("step1: site-a → site-b, phase serving (epoch 1 → 2)", status);
        Assert.Contains("of 8 MiB", status);
        Assert.Contains("on-demand misses", status);
        var statusJson = await Cli.JsonAsync(A.Node, "relocation", "status", "step1");
        Assert.Equal(("step1", "serving"), (J.Str(statusJson["info"], "disk"), J.Str(statusJson["info"], "phase")));
        Assert.Equal(8L << 20, J.Long(statusJson["progress"], "totalBytes"));

        Assert.Equal("step1: background copy capped at 20.0 MB/s (phase serving)", (await Cli.OkAsync(A.Node, "relocation", "rate", "step1", "20MB/s")).Trim());
        var unlimited = await Cli.JsonAsync(A.Node, "relocation", "rate", "step1", "0");
        Assert.Equal(("step1", "site-b"), (J.Str(unlimited, "disk"), J.Str(unlimited, "toSite")));

        // The guest writes at the source while the destination pre-copies; then the VM stops and the operator hands over.
        var w = Tool.RandomBytes(100_000, 62);
        await guest.WriteAsync(3 << 20, w);
        await guest.FlushAsync();
        w.CopyTo(content, 3 << 20);
        // The watch follows the relocation from before the handover: started after it, it could find the
        // relocation over already (an 8 MiB disk copied at full speed).
        var watching = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var watch = Cli.RunAsync(cluster.B.Node, ["relocation", "status", "step1", "--watch"], firstLine: watching);
        await watching.Task.WaitAsync(TimeSpan.FromSeconds(60));
        var handover = await Cli.OkAsync(A.Node, "relocation", "handover", "step1");
        Assert.StartsWith("step1: handover to site-b begun (phase fencing, epoch 1 → 2)", handover);

        var watched = await watch;
        Assert.True(watched.ExitCode == 0, watched.ToString());
        var lines = watched.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Matches(@"^step1: relocated in [0-9.]+s: site-b owns it at epoch 2, nbd://127\.0\.0\.1:\d+/step1(; fetched .*, skipped 1 MiB, \d+ on-demand misses)?$", lines[^1]);
        Assert.All(lines[..^1], l => Assert.Matches(@"^\[ *[0-9.]+s\] step1 site-a→site-b \w+ ", l)); // plain lines: not a terminal

        Assert.Equal(Tool.Sha256Of(content), Tool.Sha256Of(await ConsoleCommandTests.ReadAllAsync(cluster.B.Uri("step1"), content.Length)));
        await Cli.FailsAsync(A.Node, 1, "disk 'step1' is not relocating (site-b owns it at epoch 2)", "relocation", "status", "step1");
        await Cli.OkAsync(A.Node, "disk", "delete", "step1");
    }

    [Fact]
    public async Task A_relocation_cancelled_before_the_handover_leaves_the_disk_where_it_was()
    {
        await Cli.OkAsync(A.Node, "disk", "create", "cancel1", "--site", "site-c", "--size", "4MiB");
        await using var guest = await NbdClient.ConnectAsync(NbdClientOptions.FromUri(cluster.C.Uri("cancel1")));
        await guest.ReadAsync(0, new byte[512]);

        var accepted = await Cli.JsonAsync(A.Node, "relocate", "cancel1", "--to", "site-a");
        Assert.Equal(("cancel1", "site-c", "site-a", 1L), (J.Str(accepted, "disk"), J.Str(accepted, "fromSite"), J.Str(accepted, "toSite"), J.Long(accepted, "epoch")));
        await SiteCluster.UntilAsync(async () => await PhaseAsync(A, "cancel1") == "serving", "the destination to serve");
        Assert.Equal("cancel1: relocation cancelled; site-c owns it at epoch 1", (await Cli.OkAsync(A.Node, "relocation", "cancel", "cancel1")).Trim());

        var shown = await Cli.JsonAsync(A.Node, "disk", "show", "cancel1");
        Assert.Equal(("site-c", 1L, "owned"), (J.Str(shown, "owner"), J.Long(shown, "epoch"), J.Str(shown, "phase")));
        Assert.Single(J.Arr(shown, "copies"));
        await guest.WriteAsync(0, new byte[4096]); // still the owner: writes land
        await Cli.FailsAsync(A.Node, 1, "disk 'cancel1' is not relocating", "--json", "relocation", "cancel", "cancel1");

        // Cancel as JSON too, on a second attempt.
        await Cli.OkAsync(A.Node, "relocate", "cancel1", "--to", "site-b", "--no-prefetch");
        var cancelled = await Cli.JsonAsync(A.Node, "relocation", "cancel", "cancel1");
        Assert.Equal("cancel1", J.Str(cancelled, "disk"));
        await guest.DisposeAsync();
        await Cli.OkAsync(A.Node, "disk", "delete", "cancel1");
    }

    [Fact]
    public async Task Relocate_with_wait_moves_the_disk_and_keeps_every_byte()
    {
        var content = await SeedAsync(cluster.A, "wait1", 16 << 20, 63);
        await using (var guest = await NbdClient.ConnectAsync(NbdClientOptions.FromUri(cluster.A.Uri("wait1"))))
        {
            var w = Tool.RandomBytes(70_000, 64);
            await guest.WriteAsync(5 << 20, w);
            await guest.FlushAsync();
            w.CopyTo(content, 5 << 20);
        } // the guest is gone: the idle source hands over at once

        var text = await Cli.RunAsync(cluster.B.Node, ["relocate", "wait1", "--to", "site-c", "--wait"], TimeSpan.FromSeconds(90));
        Assert.True(text.ExitCode == 0, text.ToString());
        var lines = text.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("relocating wait1 from site-a to site-c (postcopy, background copy unlimited, epoch 1 → 2)", lines[0]);
        Assert.True(System.Text.RegularExpressions.Regex.IsMatch(lines[^1],
            @"^wait1: relocated in [0-9.]+s: site-c owns it at epoch 2, nbd://127\.0\.0\.1:\d+/wait1(; fetched .*, skipped 2 MiB, \d+ on-demand misses)?$"), text.StdOut);
        Assert.Equal(Tool.Sha256Of(content), Tool.Sha256Of(await ConsoleCommandTests.ReadAllAsync(cluster.C.Uri("wait1"), content.Length)));
        Assert.Equal("", await Tool.CheckAsync("qemu-img", "compare", "-q", "-f", "raw", "-F", "raw", cluster.C.Uri("wait1"), WriteTemp(content)));

        // Its history, as any node recorded it: one completed relocation with what it moved.
        var history = await Cli.JsonAsync(cluster.C.Node, "disk", "history", "wait1");
        var row = Assert.Single(J.Arr(history, "relocations"));
        Assert.Equal(("site-a", "site-c", "postcopy", "completed", "source-idle"),
            (J.Str(row, "fromSite"), J.Str(row, "toSite"), J.Str(row, "mode"), J.Str(row, "outcome"), J.Str(row, "trigger")));
        Assert.Equal(16L << 20, J.Long(row, "fetchedBytes") + J.Long(row, "skippedBytes"));
        var table = await Cli.OkAsync(cluster.C.Node, "disk", "history", "wait1");
        Assert.Contains("completed", table);
        Assert.Contains("source-idle", table);
        await Cli.OkAsync(A.Node, "disk", "delete", "wait1");
    }

    [Fact]
    public async Task Events_lists_the_lifecycle_and_follow_prints_new_ones_as_they_happen()
    {
        await SeedAsync(cluster.B, "ev1", 4 << 20, 68);
        // Follow: recorded events first (all of them here), then live ones, with no gap between the two, so whenever
        // the console subscribes, every event of the relocation below is printed once.
        var psi = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { Cli.RelocDll, "--node", A.Node, "events", "--follow", "--json", "--limit", "1000" }) psi.ArgumentList.Add(a);
        using var follow = System.Diagnostics.Process.Start(psi)!;
        var seen = new List<JsonNode>();
        var completed = new TaskCompletionSource();
        var reader = Task.Run(async () =>
        {
            while (await follow.StandardOutput.ReadLineAsync() is { } line)
            {
                var e = JsonNode.Parse(line)!;
                lock (seen) seen.Add(e);
                if (J.Str(e, "disk") == "ev1" && J.Str(e, "kind") == "completed") completed.TrySetResult();
            }
        });
        await Cli.OkAsync(A.Node, "relocate", "ev1", "--to", "site-a", "--wait");
        await completed.Task.WaitAsync(TimeSpan.FromSeconds(60));
        follow.Kill();
        await reader;
        List<string> kinds;
        lock (seen) kinds = seen.Where(e => J.Str(e, "disk") == "ev1").Select(e => J.Str(e, "kind")).ToList();
        Assert.Equal("started", kinds[0]);
        Assert.Contains("handover", kinds);
        Assert.Equal("completed", kinds[^1]);
        List<long> seqs;
        lock (seen) seqs = seen.Select(e => J.Long(e, "seq")).ToList();
        Assert.Equal(seqs.Order(), seqs); // each once, in order: the recorded ones, then the live ones
        Assert.Equal(seqs.Count, seqs.Distinct().Count());

        // Listed afterwards, as text, one line each.
        var text = await Cli.OkAsync(A.Node, "events", "--limit", "1000");
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.Contains(" ev1 site-b→site-a ")).ToList();
        Assert.Contains(lines, l => l.Contains("started (postcopy, epoch 1)"));
        Assert.Contains(lines, l => l.Contains("handover (source-idle) at epoch 2"));
        Assert.Matches(@"completed in [0-9.]+s: fetched .*, skipped .*, \d+ misses", lines[^1]);
        await Cli.OkAsync(A.Node, "disk", "delete", "ev1");
    }

    [Fact]
    public async Task Relocate_with_wait_and_json_prints_one_document_at_the_end()
    {
        var content = await SeedAsync(cluster.C, "wait2", 8 << 20, 66);
        var json = await Cli.JsonAsync(A.Node, "relocate", "wait2", "--to", "site-b", "--mode", "hybrid", "--rate", "100MB/s", "--wait");
        Assert.True(J.Bool(json, "moved"));
        Assert.Equal(("site-c", "site-b", 1L), (J.Str(json["accepted"], "fromSite"), J.Str(json["accepted"], "toSite"), J.Long(json["accepted"], "epoch")));
        Assert.Equal(("site-b", 2L, "owned"), (J.Str(json["disk"], "owner"), J.Long(json["disk"], "epoch"), J.Str(json["disk"], "phase")));
        Assert.Single(J.Arr(json["disk"], "copies"));
        if (json["lastStatus"] is { } last) Assert.Equal(8L << 20, J.Long(last["progress"], "totalBytes")); // (none if it ended before the first look)
        Assert.True(J.Double(json, "seconds") > 0);
        Assert.Equal(Tool.Sha256Of(content), Tool.Sha256Of(await ConsoleCommandTests.ReadAllAsync(cluster.B.Uri("wait2"), content.Length)));
        await Cli.OkAsync(A.Node, "disk", "delete", "wait2");
    }

    [Fact]
    public async Task A_disk_relocated_to_a_site_can_move_on_from_there()
    {
        var content = await SeedAsync(cluster.A, "chain1", 4 << 20, 67);
        await Cli.OkAsync(A.Node, "relocate", "chain1", "--to", "site-b", "--wait");
        var r = await Cli.RunAsync(A.Node, ["relocate", "chain1", "--to", "site-c", "--wait"], TimeSpan.FromSeconds(60));
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal(Tool.Sha256Of(content), Tool.Sha256Of(await ConsoleCommandTests.ReadAllAsync(cluster.C.Uri("chain1"), content.Length)));
        await Cli.OkAsync(A.Node, "disk", "delete", "chain1");
    }

    [Fact]
    public async Task On_a_terminal_the_wait_is_a_live_spectre_progress_display()
    {
        Assert.True(File.Exists("/usr/bin/script"), "util-linux's script (bsdutils) gives the console a pseudo-terminal; install it");
        await SeedAsync(cluster.A, "tty1", 8 << 20, 65);
        var command = $"dotnet {Cli.RelocDll} --node {A.Node} relocate tty1 --to site-b --wait";
        var r = await Tool.RunAsync("script", ["-q", "-e", "-c", command, "/dev/null"], TimeSpan.FromSeconds(90));
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("\u001b[", r.StdOut);           // ANSI: redrawn in place, not plain lines
        Assert.Contains("100%", r.StdOut);               // the bar reached the end
        Assert.Contains("tty1: relocated in", r.StdOut);
        Assert.DoesNotContain("] tty1 site-a→site-b", r.StdOut); // no plain progress lines
        await Cli.OkAsync(A.Node, "disk", "delete", "tty1");
    }

    private string WriteTemp(byte[] content)
    {
        var path = Path.Combine(cluster.Dir, Guid.NewGuid().ToString("N") + ".img");
        File.WriteAllBytes(path, content);
        return path;
    }
}
