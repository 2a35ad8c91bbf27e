using System.Diagnostics;
using System.Diagnostics.Metrics;
using Reloc.Nbd.Protocol;

namespace Reloc.Nbd.Telemetry;

/// <summary>
/// The NBD server's instruments. One instance per server (from the host's <see cref="IMeterFactory"/>, or a
/// <see cref="Meter"/> the caller owns): no process-wide state, so servers in one process (tests, a site and
/// its proxies) count apart. A server without one records nothing.
/// </summary>
public sealed class NbdMetrics
{
    /// <summary>The meter's name, what an exporter subscribes to.</summary>
    public const string MeterName = "Reloc.Nbd";

    private readonly Counter<long> _requests;
    private readonly Counter<long> _bytes;
    private readonly Histogram<double> _duration;
    private readonly UpDownCounter<long> _connections;

    public NbdMetrics(IMeterFactory meters) : this(meters.Create(MeterName)) { }

    public NbdMetrics(Meter meter)
    {
        Meter = meter;
        _requests = meter.CreateCounter<long>("reloc.nbd.requests", "{request}", "NBD requests answered, by export, operation and outcome");
        _bytes = meter.CreateCounter<long>("reloc.nbd.bytes", "By", "Payload bytes of NBD READ and WRITE requests answered successfully");
        _duration = meter.CreateHistogram<double>("reloc.nbd.request.duration", "s", "Time from parsing an NBD request to queueing its reply",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });
        _connections = meter.CreateUpDownCounter<long>("reloc.nbd.connections", "{connection}", "NBD connections in the transmission phase, by export");
    }

    public Meter Meter { get; }

    /// <summary>A request's reply was queued (ok or error). <paramref name="started"/> is its <see cref="Stopwatch.GetTimestamp"/>.</summary>
    internal void Completed(string export, NbdCommand command, bool ok, long bytes, long started)
    {
        // TagList holds up to 8 tags inline: no allocation per request.
        var op = OpName(command);
        var tags = new TagList { { "export", export }, { "op", op } };
        _duration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, tags);
        if (ok && bytes > 0) _bytes.Add(bytes, tags);
        tags.Add("outcome", ok ? "ok" : "error");
        _requests.Add(1, tags);
    }

    internal void Connected(string export) => _connections.Add(1, new KeyValuePair<string, object?>("export", export));

    internal void Disconnected(string export) => _connections.Add(-1, new KeyValuePair<string, object?>("export", export));

    /// <summary>Constant strings: the tag value costs nothing per request.</summary>
    internal static string OpName(NbdCommand command) => command switch
    {
        NbdCommand.Read => "read",
        NbdCommand.Write => "write",
        NbdCommand.Flush => "flush",
        NbdCommand.Trim => "trim",
        NbdCommand.Cache => "cache",
        NbdCommand.WriteZeroes => "write_zeroes",
        NbdCommand.BlockStatus => "block_status",
        NbdCommand.Disc => "disc",
        _ => "unknown",
    };
}
