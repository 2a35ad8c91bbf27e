using System.Diagnostics;

using Reloc.Testing;
using Xunit;

namespace Reloc.Node.Tests;

/// <summary>`reloc-node serve` as an operator runs it: a process, a listen line, SIGTERM.</summary>
public sealed class ServeCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("reloc-serve-test-").FullName;
    private static readonly string NodeDll = Path.Combine(AppContext.BaseDirectory, "reloc-node.dll");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static Process Start(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(NodeDll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        return Process.Start(psi)!;
    }

    [Fact]
    public async Task Serves_until_sigterm_then_drains_and_exits_zero()
    {
        var img = Path.Combine(_dir, "a.img");
        File.WriteAllBytes(img, new byte[4 << 20]);
        var sock = Path.Combine(_dir, "s.sock");
        using var p = Start("serve", "--listen", "127.0.0.1:0", "--export", $"a={img}", "--export", $"b={img}:ro", "--unix", sock);
        var line = await p.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.NotNull(line);
        Assert.Matches(@"listening on nbd://127\.0\.0\.1:\d+", line);
        var port = int.Parse(System.Text.RegularExpressions.Regex.Match(line!, @"127\.0\.0\.1:(\d+)").Groups[1].Value);

        await Tool.CheckAsync("qemu-io", "-f", "raw", $"nbd://127.0.0.1:{port}/a", "-c", "write -P 0x3c 1M 64k");
        var info = await Tool.CheckAsync("nbdinfo", $"nbd+unix:///b?socket={sock}");
        Assert.Contains("is_read_only: true", info);

        await Tool.CheckAsync("kill", "-TERM", p.Id.ToString());
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(0, p.ExitCode);
        Assert.All(File.ReadAllBytes(img).AsSpan(1 << 20, 65536).ToArray(), b => Assert.Equal(0x3c, b));
    }

    [Theory]
    [InlineData("serve", "--export", "nameonly")]
    [InlineData("serve", "--export", "x=/nonexistent/image.img")]
    [InlineData("serve", "--listen", "nonsense", "--export", "x=/dev/null")]
    public async Task Bad_arguments_fail_with_a_clear_message(params string[] args)
    {
        using var p = Start(args);
        var err = await p.StandardError.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(30));
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.NotEqual(0, p.ExitCode);
        Assert.Contains("reloc-node serve:", err);
    }
}
