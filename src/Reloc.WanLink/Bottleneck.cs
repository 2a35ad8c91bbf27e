using System.Diagnostics;

namespace Reloc.Wan;

/// <summary>A snapshot of one direction of a <see cref="WanLink"/>, for benchmarks and dashboards.</summary>
/// <param name="BytesRelayed">Bytes written to the receiving side so far.</param>
/// <param name="BufferedBytes">Bytes the relay holds: read from senders, not yet written to receivers
/// (queued, propagating, or waiting for a slow receiver).</param>
/// <param name="QueuedBytes">Bytes in the bottleneck queue: admitted, not yet serialized onto the link.</param>
/// <param name="PeakQueuedBytes">The most <paramref name="QueuedBytes"/> has been since the link started.</param>
/// <param name="QueueDelay">How long a chunk admitted now waits before its serialization starts.</param>
/// <param name="QueueLimitBytes">The queue bound at the current rate (0 when unlimited).</param>
/// <param name="RateBytesPerSecond">The current rate; 0 means unlimited.</param>
public readonly record struct WanDirectionStats(
    long BytesRelayed,
    long BufferedBytes,
    long QueuedBytes,
    long PeakQueuedBytes,
    TimeSpan QueueDelay,
    long QueueLimitBytes,
    long RateBytesPerSecond);

/// <summary>
/// One direction's bottleneck, shared by every connection going that way. It keeps no data, only the
/// FIFO serialization schedule: a chunk admitted at <c>now</c> starts when the link is free
/// (<c>max(now, freeAt)</c>), leaves <c>size/rate</c> later and is due at the far end one propagation delay
/// after that. Bytes whose serialization has not finished are the queue; while it is full, admission
/// waits (so the reader stops reading and TCP pushes back on the sender).
/// System.Threading.RateLimiting's token buckets would fit worse: they grant permits in bursts at
/// replenishment ticks (no better than timer granularity) and know nothing of per-chunk departure
/// times, which the delivery side needs to the microsecond. The computed schedule is exact at any rate.
/// </summary>
internal sealed class Bottleneck
{
    public const int MaxChunkBytes = 64 * 1024;
    private const int MinChunkBytes = 4 * 1024;

    // A chunk should take about this long to serialize: fine-grained pacing without a syscall per packet.
    private static readonly long ChunkSerializationTicks = Clock.Ticks(TimeSpan.FromMilliseconds(2));

    // With no rate there is no queue and no bandwidth-delay product to size a window from.
    private const long UnlimitedWindowBytes = 16L << 20;

    // Slack in a connection's window for deliveries that run late by a timer tick or two.
    private static readonly TimeSpan WindowSlack = TimeSpan.FromMilliseconds(20);

    private readonly object _lock = new();
    private readonly Queue<(long DepartsAt, int Bytes)> _queue = new(); // bounded: its bytes never pass the queue limit by more than a chunk
    private readonly SemaphoreSlim _admission = new(1, 1);
    private readonly WanLinkSettings _settings;
    private readonly long _delayTicks;
    private long _rate;
    private long _freeAt;
    private long _queuedBytes;
    private long _peakQueuedBytes;
    private long _bufferedBytes;
    private long _bytesRelayed;

    public Bottleneck(WanLinkSettings settings, WanDirection direction)
    {
        _settings = settings;
        Delay = settings.DelayOf(direction);
        _delayTicks = Clock.Ticks(Delay);
        _rate = settings.RateBytesPerSecond;
    }

    public TimeSpan Delay { get; }

    /// <summary>Bytes per second, 0 = unlimited; a change applies to chunks admitted after it.</summary>
    public long Rate
    {
        get => Volatile.Read(ref _rate);
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            Volatile.Write(ref _rate, value);
        }
    }

    public long QueueLimitBytes => _settings.QueueLimitBytes(Rate);

    /// <summary>How much one read takes from a sender: about 2 ms at the link rate, 4 to 64 KiB.</summary>
    public int ChunkBytes
    {
        get
        {
            var rate = Rate;
            if (rate == 0) return MaxChunkBytes;
            return (int)Int128.Clamp((Int128)rate * ChunkSerializationTicks / Stopwatch.Frequency, MinChunkBytes, MaxChunkBytes);
        }
    }

    /// <summary>
    /// The most one connection may hold in this direction: enough for the whole queue, the bytes in
    /// propagation and some slack, so one connection can fill the link, but finite when its receiver stalls.
    /// </summary>
    public long WindowBytes
    {
        get
        {
            var rate = Rate;
            if (rate == 0) return Math.Max(UnlimitedWindowBytes, QueueLimitBytes);
            var inFlight = (long)((Int128)rate * (Delay + WindowSlack).Ticks / TimeSpan.TicksPerSecond);
            return QueueLimitBytes + inFlight + 2L * MaxChunkBytes;
        }
    }

    /// <summary>Waits for room in the queue, then schedules <paramref name="bytes"/>; returns when they are due at the far end.</summary>
    public async ValueTask<long> AdmitAsync(int bytes, Scheduler scheduler, CancellationToken ct)
    {
        // One admission at a time: waiting senders get the link in the order they arrived.
        await _admission.WaitAsync(ct);
        try
        {
            while (true)
            {
                if (TryReserve(bytes, Clock.Now, out var dueAt, out var retryAt)) return dueAt;
                await scheduler.DelayUntilAsync(retryAt, ct);
            }
        }
        finally
        {
            _admission.Release();
        }
    }

    /// <summary>
    /// Schedules <paramref name="bytes"/> at time <paramref name="now"/> if the queue has room (or is empty,
    /// so a chunk larger than the whole queue still goes); otherwise says when the head of the queue leaves.
    /// </summary>
    internal bool TryReserve(int bytes, long now, out long dueAt, out long retryAt)
    {
        lock (_lock)
        {
            Prune(now);
            if (_queuedBytes > 0 && _queuedBytes + bytes > QueueLimitBytes)
            {
                dueAt = 0;
                retryAt = _queue.Peek().DepartsAt;
                return false;
            }
            var rate = Rate;
            var start = Math.Max(now, _freeAt);
            var departs = rate == 0 ? start : start + (long)(((Int128)bytes * Stopwatch.Frequency + rate - 1) / rate);
            _freeAt = departs;
            if (departs > now)
            {
                _queue.Enqueue((departs, bytes));
                _queuedBytes += bytes;
                _peakQueuedBytes = Math.Max(_peakQueuedBytes, _queuedBytes);
            }
            dueAt = departs + _delayTicks;
            retryAt = 0;
            return true;
        }
    }

    public void OnRead(int bytes) => Interlocked.Add(ref _bufferedBytes, bytes);

    public void OnDelivered(int bytes)
    {
        Interlocked.Add(ref _bufferedBytes, -bytes);
        Interlocked.Add(ref _bytesRelayed, bytes);
    }

    public void OnDiscarded(int bytes) => Interlocked.Add(ref _bufferedBytes, -bytes);

    public WanDirectionStats Stats() => Stats(Clock.Now);

    internal WanDirectionStats Stats(long now)
    {
        lock (_lock)
        {
            Prune(now);
            return new WanDirectionStats(
                Interlocked.Read(ref _bytesRelayed),
                Interlocked.Read(ref _bufferedBytes),
                _queuedBytes,
                _peakQueuedBytes,
                Clock.ToTimeSpan(Math.Max(0, _freeAt - now)),
                QueueLimitBytes,
                Rate);
        }
    }

    private void Prune(long now)
    {
        while (_queue.Count > 0 && _queue.Peek().DepartsAt <= now) _queuedBytes -= _queue.Dequeue().Bytes;
    }
}
