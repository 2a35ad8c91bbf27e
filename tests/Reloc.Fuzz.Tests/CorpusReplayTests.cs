using Reloc.Fuzz.Targets;
using Xunit;

namespace Reloc.Fuzz.Tests;

/// <summary>
/// Every committed corpus file (fuzz/corpus/TARGET/) and every input of a past finding
/// (fuzz/regressions/TARGET/) through the same target code afl-fuzz runs (fuzz/Reloc.Fuzz.Targets):
/// each must end normally.
/// </summary>
public sealed class CorpusReplayTests
{
    private static readonly string Root = Path.Combine(AppContext.BaseDirectory, "fuzz");

    public static TheoryData<string> Targets() => [.. FuzzTargets.All.Keys];

    [Theory]
    [MemberData(nameof(Targets))]
    public void Corpus_replays_clean(string target) => Replay(target, "corpus", atLeast: 1);

    [Theory]
    [MemberData(nameof(Targets))]
    public void Regressions_replay_clean(string target) => Replay(target, "regressions", atLeast: 0);

    [Fact]
    public void Every_folder_names_a_target()
    {
        foreach (var kind in new[] { "corpus", "regressions" })
        {
            var dir = Path.Combine(Root, kind);
            if (!Directory.Exists(dir)) continue;
            foreach (var folder in Directory.GetDirectories(dir))
                Assert.True(FuzzTargets.All.ContainsKey(Path.GetFileName(folder)), $"{folder} names no fuzz target");
        }
    }

    private static void Replay(string target, string kind, int atLeast)
    {
        var dir = Path.Combine(Root, kind, target);
        var files = Directory.Exists(dir) ? Directory.GetFiles(dir) : [];
        Assert.True(files.Length >= atLeast, $"{dir} holds {files.Length} inputs, fewer than {atLeast}");
        var failures = new List<string>();
        foreach (var file in files)
        {
            try { FuzzTargets.All[target](File.ReadAllBytes(file)); }
            catch (Exception ex) { failures.Add($"{Path.GetFileName(file)}: {ex.GetType().Name}: {ex.Message}"); }
        }
        Assert.True(failures.Count == 0, $"{failures.Count} of {files.Length} {kind} inputs of {target} failed:\n{string.Join("\n", failures)}");
    }
}
