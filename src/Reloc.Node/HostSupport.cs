using System.Net;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;

namespace Reloc.Node;

/// <summary>What every long-running reloc-node command shares: argument forms, logging, stop signals.</summary>
internal static class HostSupport
{
    /// <summary>The node's one logging pipeline: every line on stderr (stdout is for machine-readable lines),
    /// one line per event, as text or as JSON objects (for journald/log shippers).</summary>
    public static ILoggerFactory Loggers(LogLevel level, LogFormat format = LogFormat.Text) => LoggerFactory.Create(b =>
    {
        b.SetMinimumLevel(level);
        // ASP.NET Core logs two Information lines per HTTP request: health probes would drown the node's own lines.
        if (level >= LogLevel.Information) b.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        if (format == LogFormat.Json)
            b.AddJsonConsole(o =>
            {
                o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
                o.UseUtcTimestamp = true;
            });
        else
            b.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
                o.UseUtcTimestamp = true;
            });
        b.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
    });

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

/// <summary>How log lines are written: <c>text</c> (one line per event) or <c>json</c> (one JSON object per line).</summary>
internal enum LogFormat { Text, Json }

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
