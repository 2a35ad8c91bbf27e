using System.Diagnostics;
using System.Text;

namespace Reloc.Testing;

public sealed record ToolResult(int ExitCode, string StdOut, string StdErr)
{
    public override string ToString() => $"exit {ExitCode}\nstdout:\n{StdOut}\nstderr:\n{StdErr}";
}

/// <summary>Runs a real NBD client (qemu-io, nbdinfo, nbdsh, fio, ...) and captures its output.</summary>
public static class Tool
{
    // nbdsh needs Debian's /usr/bin/python3 (python3-libnbd), which another python3 may shadow.
    private static readonly string PathWithSystemFirst = "/usr/bin:/bin:/usr/sbin:/sbin:" + Environment.GetEnvironmentVariable("PATH");

    public static async Task<ToolResult> RunAsync(string file, IEnumerable<string> args, TimeSpan? timeout = null, string? stdin = null)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = stdin is not null,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["PATH"] = PathWithSystemFirst;
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {file}");
        if (stdin is not null)
        {
            await p.StandardInput.WriteAsync(stdin);
            p.StandardInput.Close();
        }
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(120));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in time");
        }
        return new ToolResult(p.ExitCode, await stdout, await stderr);
    }

    public static Task<ToolResult> RunAsync(string file, params string[] args) => RunAsync(file, args, null);

    /// <summary>Runs and asserts success, returning stdout.</summary>
    public static async Task<string> CheckAsync(string file, params string[] args)
    {
        var r = await RunAsync(file, args, null);
        Xunit.Assert.True(r.ExitCode == 0, $"{file} {string.Join(' ', args)} failed: {r}");
        return r.StdOut;
    }

    public static string Sha256(string path)
    {
        using var f = File.OpenRead(path);
        return Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(f));
    }

    public static string Sha256Of(byte[] data) => Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(data));

    public static byte[] RandomBytes(int count, int seed)
    {
        var b = new byte[count];
        new Random(seed).NextBytes(b);
        return b;
    }

    public static string Utf8(byte[] b) => Encoding.UTF8.GetString(b);
}
