using System.Diagnostics;
using System.Diagnostics.Metrics;
using Reloc.Nbd.Telemetry;

namespace Reloc.Actors.Telemetry;

/// <summary>
/// A node's telemetry: the NBD server's and the relocation engine's instruments and the "Reloc" ActivitySource
/// (one trace per relocation). Handed to the NBD server and to the actors' Props; nothing is looked up statically.
/// </summary>
public sealed class RelocTelemetry : IDisposable
{
    /// <summary>The ActivitySource's name, what a tracer subscribes to.</summary>
    public const string ActivitySourceName = "Reloc";

    private readonly Meter[] _owned;

    /// <summary>Meters from the host's factory (which disposes them with the container).</summary>
    public RelocTelemetry(IMeterFactory meters)
    {
        Nbd = new NbdMetrics(meters);
        Relocation = new RelocMetrics(meters);
        _owned = [];
    }

    /// <summary>Meters of its own (disposed with it), for a node that builds its NBD server before its DI container
    /// exists (SiteNode). An exporter subscribes by meter name, so it sees these as well.</summary>
    public RelocTelemetry()
    {
        var nbd = new Meter(NbdMetrics.MeterName);
        var relocation = new Meter(RelocMetrics.MeterName);
        _owned = [nbd, relocation];
        Nbd = new NbdMetrics(nbd);
        Relocation = new RelocMetrics(relocation);
    }

    public NbdMetrics Nbd { get; }
    public RelocMetrics Relocation { get; }

    /// <summary>Per instance, not static: a test's listener sees only its own node's traces.</summary>
    public ActivitySource Tracing { get; } = new(ActivitySourceName);

    public void Dispose()
    {
        Tracing.Dispose();
        foreach (var m in _owned) m.Dispose();
    }
}
