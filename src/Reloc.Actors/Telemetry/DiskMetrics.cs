using System.Diagnostics;

namespace Reloc.Actors.Telemetry;

/// <summary>
/// One arriving disk's instruments, tagged disk, from (the source site), to (this site). The disk actor (its
/// only writer) publishes its progress here after every input; the data path reports guest misses; gauges read
/// the Volatile fields from the exporter's thread.
/// </summary>
public sealed class DiskMetrics
{
    private readonly RelocMetrics _metrics;
    private readonly KeyValuePair<string, object?>[] _link;
    private long _local, _total, _fetched, _skipped, _rate;
    private int _window;

    internal DiskMetrics(RelocMetrics metrics, string disk, string from, string to)
    {
        _metrics = metrics;
        Tags = [new("disk", disk), new("from", from), new("to", to)];
        _link = [new("from", from), new("to", to)];
    }

    internal KeyValuePair<string, object?>[] Tags { get; }
    internal long LocalBytes => Volatile.Read(ref _local);
    internal long TotalBytes => Volatile.Read(ref _total);
    internal long FetchedBytes => Volatile.Read(ref _fetched);
    internal long SkippedBytes => Volatile.Read(ref _skipped);
    internal long RateBytesPerSecond => Volatile.Read(ref _rate);
    internal int PrefetchWindow => Volatile.Read(ref _window);

    /// <summary>The disk's gauges report from now on (its actor started).</summary>
    public void Attach() => _metrics.Attach(this);

    /// <summary>The disk's gauges stop reporting (its actor stopped: the disk left or the site stops).</summary>
    public void Detach() => _metrics.Detach(this);

    public void Progress(long local, long total, long fetched, long skipped)
    {
        Volatile.Write(ref _local, local);
        Volatile.Write(ref _total, total);
        Volatile.Write(ref _fetched, fetched);
        Volatile.Write(ref _skipped, skipped);
    }

    public void Prefetch(int window) => Volatile.Write(ref _window, window);

    public void Rate(long bytesPerSecond) => Volatile.Write(ref _rate, bytesPerSecond);

    /// <summary>Bytes that crossed the link from the source site (a fetch or a prefetch landed).</summary>
    public void Transferred(long bytes)
    {
        if (bytes > 0) _metrics.LinkBytes(_link, bytes);
    }

    /// <summary>A guest read waited <paramref name="started"/> (a <see cref="Stopwatch.GetTimestamp"/>) until now for missing blocks.</summary>
    public void Missed(long started) => _metrics.Miss(Tags, Stopwatch.GetElapsedTime(started));

    public void JournalWritten(TimeSpan elapsed) => _metrics.JournalWritten("disk", elapsed);
}
