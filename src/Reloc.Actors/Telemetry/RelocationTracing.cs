using System.Diagnostics;
using Reloc.Actors.Coordinator;

namespace Reloc.Actors.Telemetry;

/// <summary>
/// The coordinator shell's view of its relocations for telemetry: after every input it compares the core's flows
/// with what it saw before. One trace per relocation (a root span from the first sight of its flow to its end, a
/// child span per phase), the phase gauge, and the handover's duration (fencing entered until transferring left).
/// Lives in the coordinator actor: single-threaded, like the flows it follows; the pure core knows nothing of it.
/// A coordinator that takes over starts traces for the relocations it finds (mode "unknown").
/// </summary>
public sealed class RelocationTracing(RelocTelemetry telemetry)
{
    private sealed class Traced(Activity? root, CoordinatorCore.FlowView flow)
    {
        public Activity? Root { get; } = root;
        public Activity? Step { get; set; }
        public CoordinatorCore.FlowView Flow { get; set; } = flow;
        public long FencingSince { get; set; }
    }

    private readonly Dictionary<string, Traced> _byRelocation = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _modes = new(StringComparer.Ordinal); // disk → mode of the request on its way

    /// <summary>Call after the core handled <paramref name="input"/>; <paramref name="flows"/> is the core's flows now.</summary>
    public void Observe(CoordinatorInput input, IReadOnlyList<CoordinatorCore.FlowView> flows)
    {
        var request = input switch
        {
            CoordinatorInput.Relocate r => r.Request,
            CoordinatorInput.Found f => f.Request,
            _ => null,
        };
        if (request is not null) _modes[request.Disk] = Mode(request);

        bool changed = false;
        foreach (var flow in flows)
        {
            if (!_byRelocation.TryGetValue(flow.Relocation, out var t))
            {
                t = Begin(flow);
                _byRelocation[flow.Relocation] = t;
                changed = true;
            }
            else if (t.Flow.Phase != flow.Phase)
            {
                Moved(t, flow);
                changed = true;
            }
            t.Flow = flow;
        }
        if (_byRelocation.Count > flows.Count)
        {
            var live = flows.Select(f => f.Relocation).ToHashSet(StringComparer.Ordinal);
            foreach (var id in _byRelocation.Keys.Where(id => !live.Contains(id)).ToList())
            {
                End(_byRelocation[id]);
                _byRelocation.Remove(id);
                changed = true;
            }
        }
        if (changed)
            telemetry.Relocation.SetPhases(_byRelocation.Values.Select(t => new RelocMetrics.PhaseSeries(
                [new("disk", t.Flow.Disk), new("from", t.Flow.From), new("to", t.Flow.To), new("phase", t.Flow.Phase.Name())])).ToArray());
    }

    /// <summary>The coordinator stops (it moved to another node): its spans end here, the new one starts its own.</summary>
    public void Stop()
    {
        foreach (var t in _byRelocation.Values)
        {
            t.Step?.Stop();
            t.Root?.SetTag("reloc.outcome", "coordinator-stopped");
            t.Root?.Stop();
        }
        _byRelocation.Clear();
        telemetry.Relocation.SetPhases([]);
    }

    private Traced Begin(CoordinatorCore.FlowView flow)
    {
        var mode = _modes.Remove(flow.Disk, out var m) ? m : "unknown";
        var root = Start("relocation " + flow.Disk, default, [
            new("reloc.relocation.id", flow.Relocation), new("reloc.disk", flow.Disk), new("reloc.from", flow.From),
            new("reloc.to", flow.To), new("reloc.mode", mode), new("reloc.epoch", flow.Epoch)]);
        var t = new Traced(root, flow);
        EnterPhase(t, flow);
        return t;
    }

    private void Moved(Traced t, CoordinatorCore.FlowView flow)
    {
        t.Step?.Stop();
        if (t.Flow.Phase == RelocationPhase.Transferring && t.FencingSince != 0 && flow.Phase is RelocationPhase.Postcopy or RelocationPhase.Releasing)
            telemetry.Relocation.Handover(flow.Disk, flow.From, flow.To, Stopwatch.GetElapsedTime(t.FencingSince));
        EnterPhase(t, flow);
    }

    private void EnterPhase(Traced t, CoordinatorCore.FlowView flow)
    {
        if (flow.Phase == RelocationPhase.Fencing) t.FencingSince = Stopwatch.GetTimestamp();
        t.Step = t.Root is null ? null : Start(flow.Phase.Name(), t.Root.Context, [new("reloc.phase", flow.Phase.Name())]);
    }

    private static void End(Traced t)
    {
        t.Step?.Stop();
        if (t.Root is null) return;
        // A flow that ends while cancelling was cancelled; any other end is the relocation done.
        bool cancelled = t.Flow.Phase == RelocationPhase.Cancelling;
        t.Root.SetTag("reloc.outcome", cancelled ? "cancelled" : "done");
        t.Root.SetStatus(ActivityStatusCode.Ok);
        t.Root.Stop();
    }

    /// <summary>Starts a span with an explicit parent (default: a new trace) and leaves Activity.Current as it was:
    /// a span kept across messages must not become the ambient parent of whatever the dispatcher thread runs next.</summary>
    private Activity? Start(string name, ActivityContext parent, KeyValuePair<string, object?>[] tags)
    {
        var previous = Activity.Current;
        Activity.Current = null; // otherwise a default parent means "the current activity"
        try { return telemetry.Tracing.StartActivity(name, ActivityKind.Internal, parent, tags); }
        finally { Activity.Current = previous; }
    }

    private static string Mode(RelocationProtocol.Relocate r) => !r.Prefetch ? "on-demand" : r.Hybrid ? "hybrid" : "postcopy";
}
