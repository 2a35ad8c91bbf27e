using System.Diagnostics;
using System.Threading.Channels;

namespace Reloc.Testing;

/// <summary>A <c>reloc-node</c> process: its stdout lines as they come, its log (stderr) lines, signals, exit.</summary>
public sealed class NodeProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Channel<string> _lines = Channel.CreateUnbounded<string>();
    private readonly List<string> _all = [];
    private readonly List<string> _log = [];
    private readonly Task _pump;

    private NodeProcess(Process process)
    {
        _process = process;
        _pump = PumpAsync();
        StdErr = LogAsync();
    }

    public static string NodeDll => Path.Combine(AppContext.BaseDirectory, "reloc-node.dll");
    public int Id => _process.Id;
    public bool HasExited => _process.HasExited;
    public Task<string> StdErr { get; }
    public IReadOnlyList<string> Lines { get { lock (_all) return _all.ToList(); } }

    /// <summary>The stderr (log) lines so far.</summary>
    public IReadOnlyList<string> LogLines { get { lock (_log) return _log.ToList(); } }

    public static NodeProcess Start(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(NodeDll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        return new NodeProcess(Process.Start(psi) ?? throw new InvalidOperationException("cannot start reloc-node"));
    }

    private async Task PumpAsync()
    {
        while (await _process.StandardOutput.ReadLineAsync() is { } line)
        {
            lock (_all) _all.Add(line);
            _lines.Writer.TryWrite(line);
        }
        _lines.Writer.TryComplete();
    }

    /// <summary>Collects stderr line by line (for <see cref="LogLines"/>); all of it once the process closed it.</summary>
    private async Task<string> LogAsync()
    {
        while (await _process.StandardError.ReadLineAsync() is { } line)
            lock (_log) _log.Add(line);
        lock (_log) return string.Join('\n', _log);
    }

    /// <summary>Waits for the next stdout line matching <paramref name="match"/>; fails with the process's stderr on exit or timeout.</summary>
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
            throw new TimeoutException($"no matching line from reloc-node within {timeout}; last lines:\n{string.Join('\n', Lines.TakeLast(5))}");
        }
        throw new InvalidOperationException($"reloc-node exited ({(_process.HasExited ? _process.ExitCode : -1)}) first:\n{await StdErr}");
    }

    public Task SignalAsync(string signal) => Tool.CheckAsync("kill", "-" + signal, _process.Id.ToString());

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        await _process.WaitForExitAsync().WaitAsync(timeout);
        await _pump;
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
        await _pump;
        _process.Dispose();
    }
}
