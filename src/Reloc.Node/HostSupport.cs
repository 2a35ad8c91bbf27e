using System.Net;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;

namespace Reloc.Node;

/// <summary>What every long-running reloc-node command shares: argument forms, logging, stop signals.</summary>
internal static class HostSupport
{
    public static ILoggerFactory Loggers(LogLevel level) => LoggerFactory.Create(b => b
        .SetMinimumLevel(level)
        .AddSimpleConsole(o => o.SingleLine = true)
        .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace)); // stdout is for machine-readable lines

    public static (string Name, string Path, bool ReadOnly) ParseExport(string spec)
    {
        int eq = spec.IndexOf('=');
        if (eq <= 0 || eq == spec.Length - 1) throw new ArgumentException($"--export '{spec}': expected NAME=PATH[:ro]");
        string name = spec[..eq], path = spec[(eq + 1)..];
        bool ro = path.EndsWith(":ro", StringComparison.Ordinal);
        if (ro) path = path[..^3];
        return (name, path, ro);
    }

    public static IPEndPoint ParseEndPoint(string text)
    {
        int colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text[(colon + 1)..], out int port) || port is < 0 or > 65535)
            throw new FormatException($"--listen '{text}': expected HOST:PORT");
        var host = text[..colon].Trim('[', ']');
        var address = host == "localhost" ? IPAddress.Loopback : IPAddress.Parse(host);
        return new IPEndPoint(address, port);
    }
}

/// <summary>Completes <see cref="Task"/> on the first SIGTERM or SIGINT (from creation on); the command
/// then drains and exits by itself instead of being killed mid-request.</summary>
internal sealed class StopSignal : IDisposable
{
    private readonly TaskCompletionSource _stop = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly PosixSignalRegistration _term, _int;

    public StopSignal()
    {
        _term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Handle);
        _int = PosixSignalRegistration.Create(PosixSignal.SIGINT, Handle);
    }

    public Task Task => _stop.Task;

    private void Handle(PosixSignalContext ctx)
    {
        ctx.Cancel = true;
        _stop.TrySetResult();
    }

    public void Dispose()
    {
        _term.Dispose();
        _int.Dispose();
    }
}
