using Reloc.Actors.Site;
using Xunit;
using Xunit.Abstractions;

namespace Reloc.Actors.Tests;

/// <summary>README's state diagrams are generated from the cores' tables: a block between
/// <c>&lt;!-- diagram:NAME --&gt;</c> and <c>&lt;!-- /diagram:NAME --&gt;</c> must be what its table generates.</summary>
internal static class ReadmeDiagram
{
    public static void AssertShows(string name, string expected, string table, ITestOutputHelper output)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "README.md"))) dir = dir.Parent;
        var readme = File.ReadAllText(Path.Combine(dir?.FullName ?? throw new DirectoryNotFoundException("no README.md above the tests"), "README.md"));
        string begin = $"<!-- diagram:{name} -->\n", end = $"<!-- /diagram:{name} -->";
        int from = readme.IndexOf(begin, StringComparison.Ordinal), to = readme.IndexOf(end, StringComparison.Ordinal);
        var shown = from >= 0 && to > from ? readme[(from + begin.Length)..to] : null;
        if (shown != expected) output.WriteLine($"README.md should hold, between {begin.TrimEnd()} and {end}:\n{expected}");
        Assert.True(shown == expected, $"README's {name} diagram differs from {table} (the expected block is in the test output)");
    }
}

public sealed class SiteDiagramTests(Xunit.Abstractions.ITestOutputHelper output)
{
    /// <summary>The site's diagram: one arrow per transition of <see cref="SiteState.Transitions"/>, named by its step.</summary>
    public static string Expected => StateDiagram.Mermaid(SiteState.Transitions.Select(t => new StateDiagram.Transition(t.From?.Name(), t.Why, t.To?.Name())));

    [Fact]
    public void README_shows_the_diagram_the_table_generates()
    {
        ReadmeDiagram.AssertShows("site", Expected, "SiteState.Transitions", output);
    }
}

/// <summary>A block's states in the disk core: the model checks every change against <see cref="BlockTransitions.Table"/>
/// (invariant 6), a few hundred seeds reach every row of it, and README's diagram is generated from it.</summary>
public sealed class BlockDiagramTests(Xunit.Abstractions.ITestOutputHelper output)
{
    public static string Expected => StateDiagram.Mermaid(Reloc.Actors.Disk.BlockTransitions.Table.Select(t =>
        new StateDiagram.Transition(t.From.ToString(), t.Event.ToString(), t.To.ToString())));

    [Fact]
    public void The_model_reaches_every_block_transition_and_no_other()
    {
        var seen = new System.Collections.Concurrent.ConcurrentDictionary<(Reloc.Storage.BlockState, Reloc.Actors.Disk.BlockEvent, Reloc.Storage.BlockState), bool>();
        Parallel.For(0, 400, seed =>
        {
            var (violation, sim) = OwnershipProtocolModelTests.RunSeed(seed);
            Assert.Null(violation);
            foreach (var move in sim.Stats.BlockMoves) seen[move] = true;
        });
        // The model's image writes never fail: a whole-block write that failed is shown here.
        var core = new Reloc.Actors.Disk.DiskCore("vm", new Reloc.Actors.Disk.DiskState(4 * 4096, 4096, owner: true),
            new Reloc.Actors.Disk.DiskSettings { BlockSize = 4096 }) { Observer = (from, why, to) => seen[(from, why, to)] = true };
        core.Handle(new Reloc.Actors.Disk.DiskInput.Recovered(DateTime.UnixEpoch));
        core.Handle(new Reloc.Actors.Disk.DiskInput.PrepareWrite(0, 4096, "guest", DateTime.UnixEpoch));
        core.Handle(new Reloc.Actors.Disk.DiskInput.WriteAborted([(0, 1)]));
        var missing = Reloc.Actors.Disk.BlockTransitions.Table.Where(t => !seen.ContainsKey(t)).ToList();
        Assert.True(missing.Count == 0, $"not reached: {string.Join(", ", missing)}");
    }

    [Fact]
    public void README_shows_the_diagram_the_table_generates()
    {
        ReadmeDiagram.AssertShows("block", Expected, "BlockTransitions.Table", output);
    }
}
