using Reloc.Testing;
using Xunit;

namespace Reloc.Node.Tests;

/// <summary>The shipped systemd units pass <c>systemd-analyze verify</c> (unknown keys, bad values, a missing
/// binary), on a copy whose ExecStart names a binary that exists here.</summary>
public sealed class SystemdUnitTests
{
    [SystemdAnalyzeTheory]
    [InlineData("reloc-node@.service", "reloc-node@a.service")]
    [InlineData("reloc-node-serve@.service", "reloc-node-serve@images.service")]
    public async Task The_unit_verifies(string template, string instance)
    {
        var dir = Directory.CreateTempSubdirectory("reloc-unit-").FullName;
        try
        {
            var text = await File.ReadAllTextAsync(Path.Combine(SiteCluster.RepoRoot(), "deploy", template));
            Assert.Contains("ExecStart=/opt/reloc/reloc-node ", text);
            var unit = Path.Combine(dir, instance);
            await File.WriteAllTextAsync(unit, text.Replace("ExecStart=/opt/reloc/reloc-node ", "ExecStart=/bin/true "));
            var r = await Tool.RunAsync(SystemdAnalyzeTheory.Analyze, ["verify", unit], TimeSpan.FromSeconds(60));
            Assert.True(r.ExitCode == 0 && r.StdErr.Trim() == "" && r.StdOut.Trim() == "", r.ToString());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}

/// <summary>A theory skipped, saying why, where systemd-analyze is missing (build.cake installs it with the package systemd).</summary>
public sealed class SystemdAnalyzeTheory : TheoryAttribute
{
    public const string Analyze = "/usr/bin/systemd-analyze";

    public SystemdAnalyzeTheory()
    {
        if (!File.Exists(Analyze)) Skip = $"{Analyze} is missing (Debian package systemd): the units were not verified";
    }
}
