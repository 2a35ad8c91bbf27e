using System.Diagnostics;
using Reloc.Testing;
using Xunit;

namespace Reloc.Cli.Tests;

/// <summary>The console as operators install it: a dotnet tool package that installs from a local folder
/// alone, runs, and carries none of the node's runtime (Akka, the database drivers, the site core).</summary>
public sealed class ToolPackageTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("reloc-tool-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task The_tool_packs_installs_from_a_local_folder_and_runs_without_the_nodes_assemblies()
    {
        var project = Path.Combine(RepoRoot(), "src", "Reloc.Cli", "Reloc.Cli.csproj");
        var packages = Path.Combine(_dir, "packages");
        // The build this test runs after made the binaries: pack them as they are.
        var pack = await Tool.RunAsync("dotnet", ["pack", project, "-c", "Release", "--no-build", "-o", packages], TimeSpan.FromMinutes(5));
        Assert.True(pack.ExitCode == 0, pack.ToString());
        var package = Assert.Single(Directory.GetFiles(packages, "reloc.*.nupkg"));
        var version = Path.GetFileNameWithoutExtension(package)["reloc.".Length..];

        // Only the local folder: the registry need not be reachable, and nothing else may come from it.
        var config = Path.Combine(_dir, "nuget.config");
        await File.WriteAllTextAsync(config, $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="local" value="{packages}" />
              </packageSources>
            </configuration>
            """);
        var tools = Path.Combine(_dir, "tools");
        var install = await Tool.RunAsync("dotnet", ["tool", "install", "reloc", "--tool-path", tools, "--configfile", config, "--version", version],
            TimeSpan.FromMinutes(3));
        Assert.True(install.ExitCode == 0, install.ToString());

        var reloc = Path.Combine(tools, "reloc");
        var shown = await Tool.RunAsync(reloc, ["--version"], TimeSpan.FromSeconds(60));
        Assert.True(shown.ExitCode == 0, shown.ToString());
        // The version MinVer gave the build (from git) is what the tool prints.
        var built = FileVersionInfo.GetVersionInfo(Path.Combine(AppContext.BaseDirectory, "reloc.dll")).ProductVersion;
        Assert.Equal(built, shown.StdOut.Trim());
        Assert.StartsWith(version.Split('+')[0].Split('-')[0], shown.StdOut.Trim());

        var help = await Tool.RunAsync(reloc, ["--help"], TimeSpan.FromSeconds(60));
        Assert.True(help.ExitCode == 0, help.ToString());
        Assert.Contains("relocate", help.StdOut);
        Assert.DoesNotContain("demo", help.StdOut); // reloc-node demo runs the in-process sites

        var assemblies = Directory.GetFiles(tools, "*.dll", SearchOption.AllDirectories).Select(Path.GetFileName).ToList();
        Assert.Contains("reloc.dll", assemblies);
        var forbidden = assemblies.Where(a => a!.StartsWith("Akka", StringComparison.OrdinalIgnoreCase)
                                              || a.StartsWith("Npgsql", StringComparison.OrdinalIgnoreCase)
                                              || a.Contains("Sqlite", StringComparison.OrdinalIgnoreCase)
                                              || a is "Reloc.Actors.dll" or "Reloc.Nbd.dll" or "Reloc.Storage.dll").ToList();
        Assert.True(forbidden.Count == 0, "the tool carries: " + string.Join(", ", forbidden));
    }

    private static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Reloc.Actors.sln"))) return d.FullName;
        throw new InvalidOperationException("cannot find the repository above " + AppContext.BaseDirectory);
    }
}
