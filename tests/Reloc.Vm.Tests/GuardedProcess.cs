using System.Diagnostics;
using System.Text;
using System.Threading.Channels;

namespace Reloc.Vm.Tests;

/// <summary>
/// A child process that cannot outlive the test process. It runs under a small sh wrapper that holds the
/// read end of a pipe from the test (its stdin): when the test process dies, however it dies, the pipe
/// closes and the wrapper SIGKILLs the child. TERM and INT sent to the wrapper are passed on to the child,
/// and the wrapper exits with the child's status. (Parent-death signals do not do this from .NET: they
/// fire when the forking *thread* exits, and thread-pool threads come and go.)
/// </summary>
public sealed class GuardedProcess : IAsyncDisposable
{
    // fd 3 keeps the test's pipe (a background job's stdin is /dev/null). `wait` returns early when a
    // trapped signal arrives, so it loops until the child is really gone.
    private const string Wrapper = """
        exec 3<&0
        "$0" "$@" </dev/null &
        q=$!
        trap 'kill -TERM $q 2>/dev/null' TERM
        trap 'kill -INT $q 2>/dev/null' INT
        ( read -r _ <&3; kill -9 $q 2>/dev/null ) &
        w=$!
        while :; do
          wait $q
          s=$?
          kill -0 $q 2>/dev/null || break
        done
        kill $w 2>/dev/null
        exit $s
        """;

    private readonly Process _process;
    private readonly StringBuilder _stderr = new();
    private readonly List<string> _stdout = [];
    private readonly Channel<string> _lines = Channel.CreateUnbounded<string>();

    private GuardedProcess(string file, IReadOnlyList<string> args, Process process)
    {
        File = file;
        Args = args;
        _process = process;
        Exited = process.WaitForExitAsync();
    }

    public string File { get; }
    public IReadOnlyList<string> Args { get; }
    public string CommandLine => File + " " + string.Join(' ', Args);
    public Task Exited { get; }
    public int ExitCode => _process.ExitCode;
    public string StdErr { get { lock (_stderr) return _stderr.ToString(); } }
    public IReadOnlyList<string> StdOut { get { lock (_stdout) return _stdout.ToList(); } }

    public static GuardedProcess Start(string file, IReadOnlyList<string> args)
    {
        var psi = new ProcessStartInfo("/bin/sh")
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(Wrapper);
        psi.ArgumentList.Add(file);
        foreach (var a in args) psi.ArgumentList.Add(a);
        var process = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {file}");
        var p = new GuardedProcess(file, args, process);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) { p._lines.Writer.TryComplete(); return; }
            lock (p._stdout) p._stdout.Add(e.Data);
            p._lines.Writer.TryWrite(e.Data);
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (p._stderr) if (p._stderr.Length < 64 * 1024) p._stderr.AppendLine(e.Data);
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return p;
    }

    /// <summary>The next stdout line matching <paramref name="match"/>; fails with stderr if the process exits first.</summary>
    public async Task<string> WaitForLineAsync(Func<string, bool> match, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await foreach (var line in _lines.Reader.ReadAllAsync(cts.Token))
                if (match(line)) return line;
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"{File}: no matching output line within {timeout}; stdout: {string.Join(" | ", StdOut.TakeLast(5))}; stderr: {StdErr}");
        }
        await Exited.WaitAsync(TimeSpan.FromSeconds(10));
        throw new InvalidOperationException($"{File} exited ({_process.ExitCode}) first: {StdErr}");
    }

    /// <summary>Sends SIGTERM (the wrapper passes it on).</summary>
    public Task TerminateAsync() => Reloc.Testing.Tool.CheckAsync("kill", "-TERM", _process.Id.ToString());

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (InvalidOperationException) { }
        catch (TimeoutException) { }
        _process.Dispose();
    }
}
