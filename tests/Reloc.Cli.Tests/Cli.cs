using System.Diagnostics;
using System.Text.Json.Nodes;
using Reloc.Testing;
using Xunit;

namespace Reloc.Cli.Tests;

/// <summary>Runs the <c>reloc</c> console as a process (stdout redirected: no terminal), as a script would.</summary>
internal static class Cli
{
    public static string RelocDll => Path.Combine(AppContext.BaseDirectory, "reloc.dll");

    /// <param name="firstLine">Completed when the console prints its first line (it is running, e.g. watching).</param>
    public static async Task<ToolResult> RunAsync(string? node, IReadOnlyList<string> args, TimeSpan? timeout = null,
        IReadOnlyDictionary<string, string>? env = null, TaskCompletionSource? firstLine = null)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(RelocDll);
        if (node is not null)
        {
            psi.ArgumentList.Add("--node");
            psi.ArgumentList.Add(node);
        }
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment.Remove("RELOC_NODE");
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start reloc");
        var stdout = firstLine is null ? p.StandardOutput.ReadToEndAsync() : ReadSignallingAsync(p.StandardOutput, firstLine);
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(60));
        try { await p.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"reloc {string.Join(' ', args)} did not finish in time; stdout so far:\n{(stdout.IsCompleted ? stdout.Result : "")}");
        }
        return new ToolResult(p.ExitCode, await stdout, await stderr);
    }

    private static async Task<string> ReadSignallingAsync(StreamReader reader, TaskCompletionSource firstLine)
    {
        var text = new System.Text.StringBuilder();
        while (await reader.ReadLineAsync() is { } line)
        {
            text.Append(line).Append('\n');
            firstLine.TrySetResult();
        }
        firstLine.TrySetResult(); // ended without a line: whoever waits looks at the result
        return text.ToString();
    }

    /// <summary>Asserts exit 0 and returns stdout.</summary>
    public static async Task<string> OkAsync(string node, params string[] args)
    {
        var r = await RunAsync(node, args);
        Assert.True(r.ExitCode == 0, $"reloc {string.Join(' ', args)}: {r}");
        Assert.Equal("", r.StdErr);
        return r.StdOut;
    }

    /// <summary>With --json: asserts exit 0 and that stdout is exactly one JSON document.</summary>
    public static async Task<JsonNode> JsonAsync(string node, params string[] args)
    {
        var stdout = await OkAsync(node, ["--json", .. args]);
        return JsonNode.Parse(stdout) ?? throw new Xunit.Sdk.XunitException($"reloc --json {string.Join(' ', args)} printed null");
    }

    /// <summary>Asserts a failure: the exit code, nothing on stdout, one line "reloc: ..." on stderr containing <paramref name="reason"/>.</summary>
    public static async Task<string> FailsAsync(string? node, int exitCode, string reason, params string[] args)
    {
        var r = await RunAsync(node, args);
        Assert.True(r.ExitCode == exitCode, $"reloc {string.Join(' ', args)}: expected exit {exitCode}, got {r}");
        Assert.Equal("", r.StdOut);
        var line = Assert.Single(r.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("reloc: ", line);
        Assert.Contains(reason, line);
        return line;
    }
}
