using System.Diagnostics;
using System.Diagnostics.Metrics;
using Reloc.Actors.Coordinator;
using Reloc.Actors.Telemetry;
using Reloc.Testing;
using Xunit;
using static Reloc.Actors.Coordinator.RelocationProtocol;

namespace Reloc.Actors.Tests;

/// <summary>The coordinator shell's trace of a relocation: fed the core's flows as a relocation goes through
/// its phases, it makes one trace (a root span, a child span per phase), the phase gauge and the handover histogram.</summary>
public sealed class RelocationTracingTests
{
    [Fact]
    public void One_trace_per_relocation_with_a_span_per_phase_ended_when_done()
    {
        using var telemetry = new RelocTelemetry();
        var stopped = new List<Activity>();
        using var listener = new ActivityListener
        {
            // This node's source only: other tests' sources share the name.
            ShouldListenTo = s => ReferenceEquals(s, telemetry.Tracing),
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a => { lock (stopped) stopped.Add(a); },
        };
        ActivitySource.AddActivityListener(listener);
        using var recorder = new MetricRecorder(telemetry.Relocation.Meter);
        var tracing = new RelocationTracing(telemetry);

        var now = DateTime.UtcNow;
        tracing.Observe(new CoordinatorInput.Relocate(new Relocate("vm1", "site-b", Hybrid: true), "operator", ["site-a", "site-b"]), []);
        var phases = new[]
        {
            RelocationPhase.Starting, RelocationPhase.Preparing, RelocationPhase.Serving, RelocationPhase.Fencing,
            RelocationPhase.Transferring, RelocationPhase.Postcopy, RelocationPhase.Releasing,
        };
        foreach (var phase in phases)
        {
            tracing.Observe(new CoordinatorInput.Tick(now), [new CoordinatorCore.FlowView("vm1", "site-a", "site-b", 3, "r1", phase, false)]);
            recorder.Observe();
            Assert.Equal(phase.Name(), recorder.Of("reloc.relocation.phase").Last().Tag("phase"));
        }
        tracing.Observe(new CoordinatorInput.Tick(now), []); // done: the flow is gone

        Assert.Null(Activity.Current); // nothing left ambient on the coordinator's thread
        var root = Assert.Single(stopped, a => a.Parent is null && a.ParentSpanId == default);
        Assert.Equal("r1", root.GetTagItem("reloc.relocation.id"));
        Assert.Equal(("vm1", "site-a", "site-b", "hybrid", "done"),
            (root.GetTagItem("reloc.disk"), root.GetTagItem("reloc.from"), root.GetTagItem("reloc.to"), root.GetTagItem("reloc.mode"), root.GetTagItem("reloc.outcome")));
        var steps = stopped.Where(a => a != root).ToList();
        Assert.Equal(phases.Select(p => p.Name()), steps.Select(a => a.DisplayName));
        Assert.All(steps, a => Assert.Equal((root.TraceId, root.SpanId), (a.TraceId, a.ParentSpanId)));

        Assert.Single(recorder.Of("reloc.relocation.handover.duration"));
        recorder.Observe();
        var afterEnd = recorder.Measurements.Count(m => m.Instrument == "reloc.relocation.phase");
        recorder.Observe();
        Assert.Equal(afterEnd, recorder.Measurements.Count(m => m.Instrument == "reloc.relocation.phase")); // no series left
    }

    [Fact]
    public void A_relocation_cancelled_ends_its_trace_as_cancelled()
    {
        using var telemetry = new RelocTelemetry();
        var stopped = new List<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => ReferenceEquals(s, telemetry.Tracing),
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a => { lock (stopped) stopped.Add(a); },
        };
        ActivitySource.AddActivityListener(listener);
        var tracing = new RelocationTracing(telemetry);
        var now = DateTime.UtcNow;
        foreach (var phase in new[] { RelocationPhase.Starting, RelocationPhase.Serving, RelocationPhase.Cancelling })
            tracing.Observe(new CoordinatorInput.Tick(now), [new CoordinatorCore.FlowView("vm2", "site-a", "site-c", 1, "r2", phase, false)]);
        tracing.Observe(new CoordinatorInput.Tick(now), []);
        var root = Assert.Single(stopped, a => a.ParentSpanId == default);
        Assert.Equal(("cancelled", "unknown"), (root.GetTagItem("reloc.outcome"), root.GetTagItem("reloc.mode")));
        Assert.Equal(3, stopped.Count(a => a.ParentSpanId == root.SpanId));
    }
}
