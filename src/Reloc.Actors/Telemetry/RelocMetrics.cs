using System.Diagnostics;
using System.Diagnostics.Metrics;
using Akka.Cluster;

namespace Reloc.Actors.Telemetry;

/// <summary>
/// The relocation engine's instruments: per-relocation progress (observable gauges read from
/// <see cref="DiskMetrics"/> snapshots), on-demand misses, bytes per site-to-site link, journal write
/// latency, the coordinator's phases and handovers, and cluster membership. One instance per node, passed to
/// the actors through their Props: no process-wide state. Actors are single-threaded but gauges are read on
/// the exporter's thread, so what gauges read is kept in Volatile fields or swapped-in immutable arrays.
/// </summary>
public sealed class RelocMetrics
{
    /// <summary>The meter's name, what an exporter subscribes to.</summary>
    public const string MeterName = "Reloc";

    private static readonly double[] LatencyBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30];

    private readonly Counter<long> _misses;
    private readonly Histogram<double> _missDuration;
    private readonly Counter<long> _linkBytes;
    private readonly Histogram<double> _journalWrite;
    private readonly Histogram<double> _handover;
    private readonly Counter<long> _reconcileRounds;
    private readonly Counter<long> _reconcileCopies;
    private readonly Histogram<double> _reconcileDuration;
    private readonly Histogram<double> _reconcileJudge;
    private readonly Counter<long> _coordinatorMessages;
    private readonly object _gate = new();
    private DiskMetrics[] _disks = []; // replaced, never changed in place: gauge callbacks read it without the lock
    private PhaseSeries[] _phases = [];
    private Cluster? _cluster;

    public RelocMetrics(IMeterFactory meters) : this(meters.Create(MeterName)) { }

    public RelocMetrics(Meter meter)
    {
        Meter = meter;
        meter.CreateObservableGauge("reloc.relocation.bytes.local", () => Disks(d => d.LocalBytes), "By", "Bytes of a relocating disk already local at its destination");
        meter.CreateObservableGauge("reloc.relocation.bytes.total", () => Disks(d => d.TotalBytes), "By", "Size of a relocating disk");
        meter.CreateObservableGauge("reloc.relocation.bytes.fetched", () => Disks(d => d.FetchedBytes), "By", "Bytes of a relocating disk fetched from its source (on demand and prefetched)");
        meter.CreateObservableGauge("reloc.relocation.bytes.skipped", () => Disks(d => d.SkippedBytes), "By", "Bytes of a relocating disk made local without transfer (holes at the source)");
        meter.CreateObservableGauge("reloc.relocation.prefetch.rate", () => Disks(d => d.RateBytesPerSecond), "By/s", "Bytes per second landing at the destination, over the last tick");
        meter.CreateObservableGauge("reloc.relocation.prefetch.window", () => Disks(d => (long)d.PrefetchWindow), "{request}", "Background reads the prefetcher keeps in flight");
        meter.CreateObservableGauge("reloc.relocation.phase", ObservePhases, "{relocation}", "1 for each relocation under way, tagged with its coordinator phase");
        meter.CreateObservableGauge("reloc.cluster.members", ObserveCluster, "{member}", "Cluster members by status, as this node sees them");
        _misses = meter.CreateCounter<long>("reloc.relocation.misses", "{read}", "Guest reads that found a block missing at the destination and waited for it");
        _missDuration = meter.CreateHistogram<double>("reloc.relocation.miss.duration", "s", "Time a guest read waits for missing blocks",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });
        _linkBytes = meter.CreateCounter<long>("reloc.link.bytes", "By", "Bytes fetched from a source site (on demand and prefetched), by site-to-site link");
        _journalWrite = meter.CreateHistogram<double>("reloc.journal.write.duration", "s", "Time from a Persist call to its handler",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });
        _handover = meter.CreateHistogram<double>("reloc.relocation.handover.duration", "s", "Time from fencing the source to the destination owning the disk",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });
        // The coordinator's reconcile round (issue 13 goal 6: its cost per round, and how it grows with the disks).
        _reconcileRounds = meter.CreateCounter<long>("reloc.coordinator.reconcile.rounds", "{round}", "Reconcile rounds the coordinator judged (every site asked for its disks)");
        _reconcileCopies = meter.CreateCounter<long>("reloc.coordinator.reconcile.copies", "{copy}", "Disk copies the sites listed in the rounds judged (per round: its delta over the rounds')");
        _reconcileDuration = meter.CreateHistogram<double>("reloc.coordinator.reconcile.duration", "s", "A reconcile round from its ask to every site to its answers judged",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });
        _reconcileJudge = meter.CreateHistogram<double>("reloc.coordinator.reconcile.judge.duration", "s", "Time the coordinator's actor spent judging a round's answers and sending its steps",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });
        _coordinatorMessages = meter.CreateCounter<long>("reloc.coordinator.messages", "{message}", "Messages between the coordinator and the sites, by direction and kind");
    }

    public Meter Meter { get; }

    /// <summary>The instruments of one disk arriving at this site from <paramref name="from"/>; its gauges report
    /// from <see cref="DiskMetrics.Attach"/> to <see cref="DiskMetrics.Detach"/>.</summary>
    public DiskMetrics ForArrival(string disk, string from, string to) => new(this, disk, from, to);

    /// <summary>Cluster membership is read from this cluster's state (an immutable snapshot Akka keeps current).</summary>
    public void ObserveCluster(Cluster cluster) => Volatile.Write(ref _cluster, cluster);

    public void JournalWritten(string actor, TimeSpan elapsed) =>
        _journalWrite.Record(elapsed.TotalSeconds, new KeyValuePair<string, object?>("actor", actor));

    internal void Miss(KeyValuePair<string, object?>[] tags, TimeSpan waited)
    {
        _misses.Add(1, tags);
        _missDuration.Record(waited.TotalSeconds, tags);
    }

    internal void LinkBytes(KeyValuePair<string, object?>[] linkTags, long bytes) => _linkBytes.Add(bytes, linkTags);

    internal void Handover(string disk, string from, string to, TimeSpan elapsed) =>
        _handover.Record(elapsed.TotalSeconds, new TagList { { "disk", disk }, { "from", from }, { "to", to } });

    /// <summary>One reconcile round judged: the copies its answers listed, its time from the ask, and the coordinator's
    /// time judging it.</summary>
    internal void ReconcileRound(int copies, TimeSpan round, TimeSpan judged)
    {
        _reconcileRounds.Add(1);
        _reconcileCopies.Add(copies);
        _reconcileDuration.Record(round.TotalSeconds);
        _reconcileJudge.Record(judged.TotalSeconds);
    }

    internal void CoordinatorMessages(CoordinatorTraffic traffic, int count)
    {
        if (count > 0) _coordinatorMessages.Add(count, TrafficTags[(int)traffic]);
    }

    // Indexed by CoordinatorTraffic: direction and kind of each.
    private static readonly KeyValuePair<string, object?>[][] TrafficTags =
    [
        [new("direction", "sent"), new("kind", "list-disks")],
        [new("direction", "received"), new("kind", "disk-list")],
        [new("direction", "sent"), new("kind", "step")],
        [new("direction", "received"), new("kind", "report")],
    ];

    /// <summary>The coordinator's relocations now (replaces the previous set).</summary>
    internal void SetPhases(PhaseSeries[] phases) => Volatile.Write(ref _phases, phases);

    internal void Attach(DiskMetrics disk)
    {
        lock (_gate) if (!_disks.Contains(disk)) _disks = [.. _disks, disk];
    }

    internal void Detach(DiskMetrics disk)
    {
        lock (_gate) _disks = _disks.Where(d => d != disk).ToArray();
    }

    private IEnumerable<Measurement<long>> Disks(Func<DiskMetrics, long> value) =>
        Volatile.Read(ref _disks).Select(d => new Measurement<long>(value(d), d.Tags));

    private IEnumerable<Measurement<long>> ObservePhases() =>
        Volatile.Read(ref _phases).Select(p => new Measurement<long>(1, p.Tags));

    private IEnumerable<Measurement<long>> ObserveCluster()
    {
        var cluster = Volatile.Read(ref _cluster);
        if (cluster is null) return [];
        var members = cluster.State.Members;
        // Every status, zeros included: a series that vanishes reads as "no data", not as none left.
        return Enum.GetValues<MemberStatus>().Select(s => new Measurement<long>(members.Count(m => m.Status == s),
            new KeyValuePair<string, object?>("status", s.ToString().ToLowerInvariant())));
    }

    /// <summary>One relocation's phase series: tags disk, from, to, phase.</summary>
    internal sealed record PhaseSeries(KeyValuePair<string, object?>[] Tags);
}

/// <summary>What the coordinator exchanges with the sites: an ask of a site's disks and its answer (every reconcile
/// round, and every relocate request), a step it sends a site, a report a site sends it.</summary>
public enum CoordinatorTraffic { ListDisksSent, DiskListReceived, StepSent, ReportReceived }
