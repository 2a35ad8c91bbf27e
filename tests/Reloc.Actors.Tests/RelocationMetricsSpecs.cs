using Akka.Actor;
using System.Diagnostics.Metrics;
using Reloc.Actors.Disk;
using Reloc.Actors.Telemetry;
using Reloc.Testing;
using Xunit;

namespace Reloc.Actors.Tests;

/// <summary>A real relocation in one process (the harness of <see cref="VirtualDiskSpecs"/>) seen through its metrics.</summary>
public sealed class RelocationMetricsSpecs : Akka.TestKit.Xunit2.TestKit, IAsyncLifetime
{
    private const int Size = 8 << 20;
    private RelocationHarness _h = null!;

    public RelocationMetricsSpecs()
        : base(RelocConfig.Node(RelocConfig.Sqlite(Path.Combine(Directory.CreateTempSubdirectory("reloc-metrics-db-").FullName, "reloc.db")))) { }

    public async Task InitializeAsync() => _h = await RelocationHarness.CreateAsync(Size);
    public async Task DisposeAsync() => await _h.DisposeAsync();

    [Fact]
    public async Task A_relocation_reports_its_bytes_a_miss_latency_link_bytes_and_journal_writes()
    {
        using var meter = new Meter(RelocMetrics.MeterName);
        using var recorder = new MetricRecorder(meter);
        var metrics = new RelocMetrics(meter);
        Sys.EventStream.Subscribe(TestActor, typeof(VirtualDiskProtocol.RelocationFinished));
        await _h.StartDestinationAsync(Sys, new DiskSettings(), metrics: metrics.ForArrival("vm1", "site-a", "site-b"));
        // Background copy held back (as a site does before the handover) so that the guest's read surely misses.
        _h.Disk.Tell(new VirtualDiskProtocol.PausePrefetch());
        await using var guest = await _h.ConnectGuestAsync();
        var buf = new byte[4096];
        await guest.ReadAsync(Size - 4096, buf); // the last block: the copy starts at the first
        Assert.Equal(_h.Content.AsSpan(Size - 4096).ToArray(), buf);

        // The miss is recorded before the guest gets its data.
        var miss = Assert.Single(recorder.Of("reloc.relocation.miss.duration"));
        Assert.True(miss.Value > 0);
        Assert.Equal(("vm1", "site-a", "site-b"), (miss.Tag("disk"), miss.Tag("from"), miss.Tag("to")));
        Assert.Equal(1, recorder.Of("reloc.relocation.misses").Sum(m => m.Value));

        _h.Disk.Tell(new VirtualDiskProtocol.ResumePrefetch());
        await ExpectMsgAsync<VirtualDiskProtocol.RelocationFinished>(TimeSpan.FromSeconds(60));
        var status = await _h.StatusAsync(); // after the finish: the disk actor has published its last figures

        recorder.Observe();
        double Gauge(string name) => recorder.Of(name).Last(m => m.Tag("disk") == "vm1" && m.Tag("from") == "site-a" && m.Tag("to") == "site-b").Value;
        Assert.Equal(Size, Gauge("reloc.relocation.bytes.total"));
        Assert.Equal(Size, Gauge("reloc.relocation.bytes.local"));
        Assert.Equal(Size, Gauge("reloc.relocation.bytes.fetched") + Gauge("reloc.relocation.bytes.skipped"));
        Assert.Equal(status.FetchedBytes, Gauge("reloc.relocation.bytes.fetched"));
        Assert.True(Gauge("reloc.relocation.bytes.skipped") > 0); // the harness's zero run
        Assert.True(Gauge("reloc.relocation.prefetch.window") >= 1);

        // Every fetched byte crossed the site-a → site-b link (on demand or prefetched).
        var link = recorder.Of("reloc.link.bytes");
        Assert.All(link, m => Assert.Equal(("site-a", "site-b"), (m.Tag("from"), m.Tag("to"))));
        Assert.Equal(status.FetchedBytes, link.Sum(m => m.Value));

        Assert.Contains(recorder.Of("reloc.journal.write.duration"), m => m.Tag("actor") == "disk" && m.Value >= 0);
    }
}
