using System.Text.Json.Nodes;
using Reloc.Cli;
using Reloc.Testing;
using Xunit;

namespace Reloc.Node.Tests;

/// <summary>Two in-process sites and a guest workload compete for two cores: no other test class beside them.</summary>
[CollectionDefinition(nameof(DemoTests), DisableParallelization = true)]
public sealed class DemoCollection;

/// <summary><c>reloc-node demo</c>, small: on its sparse disk (guest writes into holes before and after the handover)
/// it must pass its own byte-for-byte verification in both modes, and clean up.</summary>
[Collection(nameof(DemoTests))]
public sealed class DemoTests
{
    private static Task<ToolResult> Demo(IEnumerable<string> args, TimeSpan? timeout = null) =>
        Tool.RunAsync("dotnet", [NodeProcess.NodeDll, "demo", .. args], timeout ?? TimeSpan.FromSeconds(60));

    [Fact]
    public async Task The_demo_relocates_a_live_disk_and_verifies_it()
    {
        var before = TempDemoDirs();
        var r = await Demo(["--size", "16MiB", "--rtt", "5ms"], TimeSpan.FromSeconds(120));
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("demo: verification passed (16777216 bytes at site-b equal the guest's model;", r.StdOut);
        Assert.Contains("guest moved: connected at site-b, wrote 40 more blocks at site-a (its memory migrating), then flushed and disconnected at site-a", r.StdOut);
        Assert.Matches(@"disk\s+16 MiB: 4 MiB of random data \(25\.0%\) in \d+ extents?, 12 MiB of holes; site-a reported 4 MiB of data", r.StdOut);
        Assert.Matches(@"bytes\s+fetched [0-9.]+ MiB, skipped [0-9.]+ MiB \(hole elision: holes and zero blocks are not sent\)", r.StdOut);
        Assert.Matches(@"writes \(into holes: [1-9][0-9]* at site-a, [1-9][0-9]* at site-b\)", r.StdOut);
        Assert.Matches(@"relocation\s+[0-9.]+s from `relocate` to the source released = [0-9.]+ × the link's limit", r.StdOut);
        Assert.Contains("content           site-b's image equals the guest's model byte for byte", r.StdOut);
        Assert.Equal(before, TempDemoDirs()); // its temporary directory is gone
    }

    [Fact]
    public async Task The_hybrid_demo_reports_its_figures_as_json()
    {
        var r = await Demo(["--json", "--size", "16MiB", "--rtt", "5ms", "--rate", "80MB/s", "--mode", "hybrid"], TimeSpan.FromSeconds(120));
        Assert.True(r.ExitCode == 0, r.ToString());
        var s = JsonNode.Parse(r.StdOut)!;
        Assert.True(J.Bool(s, "verificationPassed"));
        Assert.Equal(("site-b", 2L, "hybrid", 0L, 0L), (J.Str(s, "owner"), J.Long(s, "epoch"), J.Str(s, "mode"), J.Long(s, "mismatchedBlocks"), J.Long(s["guest"], "readMismatches")));
        Assert.Equal((16L << 20, 4L << 20, 4L << 20), (J.Long(s, "sizeBytes"), J.Long(s, "allocatedBytes"), J.Long(s, "sourceDataBytes")));
        // The guest wrote into holes on both sides of the handover, and the holes were not sent.
        Assert.True(J.Long(s["guest"], "holeWritesAtSource") > 0 && J.Long(s["guest"], "holeWritesAtDestination") > 0, r.StdOut);
        Assert.True(J.Long(s, "skippedBytes") > 0, r.StdOut);
        Assert.True(J.Long(s["guest"], "atSource") > 0 && J.Long(s["guest"], "atDestination") > 0, r.StdOut);
        Assert.True(J.Double(s, "relocationSeconds") > 0);
        // Every block came over once at least: fetched, skipped (zeros) or written whole at the destination.
        Assert.True(J.Long(s, "fetchedBytes") + J.Long(s, "skippedBytes") + J.Long(s, "writtenAtDestinationBytes") >= 16L << 20, r.StdOut);
    }

    [Fact]
    public async Task Bad_demo_options_are_refused_before_anything_starts()
    {
        var r = await Demo(["--size", "3MiB+1"]);
        Assert.Equal(2, r.ExitCode);
        Assert.StartsWith("reloc-node demo: --size", r.StdErr);
        r = await Demo(["--rtt", "50"]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("is not a duration", r.StdErr);
        foreach (var bad in new[] { "120%", "0.5", "x%" })
        {
            r = await Demo(["--allocated", bad]);
            Assert.Equal(2, r.ExitCode);
            Assert.Equal($"reloc-node demo: --allocated: {bad} must be a percentage from 0% to 100%, e.g. 25%", r.StdErr.Trim());
        }
    }

    private static string[] TempDemoDirs() =>
        Directory.GetDirectories(Path.GetTempPath(), "reloc-demo-*").Order().ToArray();
}
