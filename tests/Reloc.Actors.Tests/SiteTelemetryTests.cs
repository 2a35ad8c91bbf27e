using Akka.Actor;
using System.Diagnostics;
using Akka.Cluster;
using Akka.Configuration;
using Reloc.Actors.Site;
using Reloc.Actors.Telemetry;
using Reloc.Nbd.Telemetry;
using Reloc.Testing;
using Xunit;
using static Reloc.Actors.Coordinator.RelocationProtocol;
using static Reloc.Actors.Site.SiteProtocol;

namespace Reloc.Actors.Tests;

/// <summary>
/// Two real site nodes with the telemetry SiteNode wires in: a relocation between them is one trace with a span
/// per phase, and the nodes' meters report NBD requests, cluster members and the arrival's progress. Listens by
/// meter and source name: this project runs one test class at a time (xunit.runner.json).
/// </summary>
public sealed class SiteTelemetryTests : IAsyncLifetime
{
    private readonly InProcessSites _sites = new(2, "reloc-telemetry-test-");
    private List<SiteNode> _nodes => _sites.Nodes;
    private string _dir => _sites.Dir;
    private readonly List<Activity> _stopped = [];
    private readonly ActivityListener _listener;
    private readonly MetricRecorder _metrics = new(m => m.Name is RelocMetrics.MeterName or NbdMetrics.MeterName);

    public SiteTelemetryTests()
    {
        _listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == RelocTelemetry.ActivitySourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a => { lock (_stopped) _stopped.Add(a); },
        };
        ActivitySource.AddActivityListener(_listener);
    }

    public Task InitializeAsync() => _sites.InitializeAsync();

    public async Task DisposeAsync()
    {
        await _sites.DisposeAsync();
        _listener.Dispose();
        _metrics.Dispose();
    }

    [Fact]
    public async Task A_relocation_between_sites_is_one_trace_and_the_nodes_report_their_metrics()
    {
        var content = Tool.RandomBytes(4 << 20, 7);
        var file = Path.Combine(_dir, "vm1-seed.img");
        await File.WriteAllBytesAsync(file, content);
        var created = Assert.IsType<DiskInfo>(await _nodes[0].Site.Ask<object>(new CreateDisk("vm1", 0, file), TimeSpan.FromSeconds(20)));
        // A real NBD client at the source: its requests are counted per export and operation.
        await Tool.CheckAsync("qemu-io", "-f", "raw", created.NbdUri, "-c", "write -P 0x33 100k 200k", "-c", "read 0 64k", "-c", "flush");
        Assert.Contains(_metrics.Of("reloc.nbd.requests"), m => m.Tag("export") == "vm1" && m.Tag("op") == "write" && m.Tag("outcome") == "ok");
        Assert.Contains(_metrics.Of("reloc.nbd.bytes"), m => m.Tag("export") == "vm1" && m.Tag("op") == "read" && m.Value == 64 * 1024);

        Assert.IsType<RelocationAccepted>(await _nodes[1].Coordinator.Ask<object>(new Relocate("vm1", "site-b"), TimeSpan.FromSeconds(20)));
        // Idle source: handover at once, post-copy to the end, the source released, the flow ended.
        await AwaitAsync(() => Task.FromResult(Roots().Any(r => (string?)r.GetTagItem("reloc.outcome") == "done")));

        var root = Assert.Single(Roots());
        Assert.Equal(("vm1", "site-a", "site-b", "postcopy"),
            (root.GetTagItem("reloc.disk"), root.GetTagItem("reloc.from"), root.GetTagItem("reloc.to"), root.GetTagItem("reloc.mode")));
        List<Activity> steps;
        lock (_stopped) steps = _stopped.Where(a => a.TraceId == root.TraceId && a != root).ToList();
        Assert.All(steps, s => Assert.Equal(root.SpanId, s.ParentSpanId));
        Assert.Contains(steps, s => s.DisplayName == "fencing");
        Assert.Contains(steps, s => s.DisplayName == "transferring");
        Assert.Single(_metrics.Of("reloc.relocation.handover.duration"), m => m.Tag("disk") == "vm1");

        _metrics.Observe();
        Assert.Contains(_metrics.Of("reloc.cluster.members"), m => m.Tag("status") == "up" && m.Value == 2);
        var local = _metrics.Of("reloc.relocation.bytes.local").Last(m => m.Tag("disk") == "vm1" && m.Tag("from") == "site-a" && m.Tag("to") == "site-b");
        Assert.Equal(content.Length, local.Value);
        Assert.Contains(_metrics.Of("reloc.journal.write.duration"), m => m.Tag("actor") == "site");
        Assert.True(_metrics.Of("reloc.link.bytes").Where(m => m.Tag("from") == "site-a" && m.Tag("to") == "site-b").Sum(m => m.Value) > 0);

        // The coordinator's reconcile rounds (issue 13 goal 6): each asks every Up site (one in the first rounds, before
        // site-b is Up) and judges their lists; the relocation's steps went out and the sites' reports came in.
        // vm1 (now at site-b) is listed by the next round.
        await _metrics.WaitForAsync(m => m.Any(x => x.Instrument == "reloc.coordinator.reconcile.copies" && x.Value > 0), TimeSpan.FromSeconds(30));
        double Sum(string instrument, string direction, string kind) =>
            _metrics.Of(instrument).Where(m => m.Tag("direction") == direction && m.Tag("kind") == kind).Sum(m => m.Value);
        var rounds = _metrics.Of("reloc.coordinator.reconcile.rounds").Sum(m => m.Value);
        Assert.True(Sum("reloc.coordinator.messages", "received", "disk-list") >= rounds);
        Assert.True(Sum("reloc.coordinator.messages", "sent", "list-disks") >= Sum("reloc.coordinator.messages", "received", "disk-list"));
        Assert.True(Sum("reloc.coordinator.messages", "sent", "step") >= 3);     // start, prepare, fence at least
        Assert.True(Sum("reloc.coordinator.messages", "received", "report") >= 3);
        Assert.Equal(rounds, _metrics.Of("reloc.coordinator.reconcile.duration").Count);
        Assert.All(_metrics.Of("reloc.coordinator.reconcile.judge.duration"), m => Assert.InRange(m.Value, 0, 10));
    }

    private List<Activity> Roots()
    {
        lock (_stopped) return _stopped.Where(a => a.ParentSpanId == default && a.GetTagItem("reloc.relocation.id") is not null).ToList();
    }

    private static Task AwaitAsync(Func<Task<bool>> condition) => InProcessSites.AwaitAsync(condition);
}
