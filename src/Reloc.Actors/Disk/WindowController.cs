namespace Reloc.Actors.Disk;

/// <summary>What the controller noted when a read left: bytes delivered so far and the time, so the read's
/// completion yields a delivery-rate sample (BBR's estimator).</summary>
public readonly record struct ReadStamp(long Delivered, DateTime SentAt);

/// <summary>How big background reads are once the link's rate is known: about <paramref name="ReadTime"/> of the
/// delivery rate (a power of two from <paramref name="MinBytes"/> to <paramref name="MaxBytes"/>), so a guest miss
/// queued behind one waits about that long on a WAN, while a LAN gets reads large enough that per-read costs (an
/// actor round trip, a write, a landing) stop mattering. MinBytes and MaxBytes: powers of two. MaxReads: reads the source
/// connection keeps in flight at once (<see cref="Reloc.Nbd.Client.NbdClientOptions.MaxInFlight"/>); reads are never so
/// small that the window needs more (at 40 MB/s and RTT 200 ms, 64 reads of 64 KiB hold half the window).</summary>
public readonly record struct ReadSizing(int MinBytes, int MaxBytes, TimeSpan ReadTime, int MaxReads = Reloc.Nbd.Client.NbdClientOptions.DefaultMaxInFlight);

/// <summary>
/// How many background reads to keep in flight: enough to fill the link at any RTT, no more.
/// <para>Two estimates drive it, both from completions only. The queueing delay (LEDBAT, RFC 6817) is a read's
/// latency minus the lowest latency seen lately; the bottleneck's rate (BBR) is the highest delivery rate of the
/// last ten round trips. Their product with the base latency plus the queue target is the window that fills the
/// link while the bottleneck queue holds about the target, so a guest miss sharing the link waits at most about
/// that long behind background data.</para>
/// <para>Startup doubles the window each round trip until the delivery rate stops growing (two rounds under
/// +25 %), or a queue far above the target appears, then drops to that window. Queueing delay alone ends startup
/// too early on a long path: every doubling bursts, and host jitter of a few milliseconds looks like a queue.
/// Afterwards LEDBAT's linear rule holds the queue at the target; while no queue is seen at all the window also
/// grows a quarter per round trip (a path that got faster, or a startup cut short by app-limited rounds), and a
/// queue far above the target drops the window to the estimate at once instead of one chunk per round trip.</para>
/// <para>Units: the window counts reads of the nominal size given at construction (<see cref="WindowBytes"/> is the
/// same in bytes); the rate is in bytes. Reads may be of another size (<see cref="ReadBytes"/>, from
/// <see cref="ReadSizing"/>): callers keep <see cref="WindowBytes"/> in flight, whatever the size of each read.</para>
/// <para>While guest misses arrive (<see cref="OnGuestMiss"/>, within <see cref="MissHold"/>) the window is capped at
/// rate x (base latency - a read's time on the wire + the miss target), the rate taken from when the misses began:
/// each miss waits behind less background data, the copy gives up a little
/// rate meanwhile. A cap from the estimates, not a smaller LEDBAT target: a target of a millisecond or two is below a
/// busy host's jitter, which LEDBAT would read as queue and shrink the window to nothing.</para>
/// Pure and clock-free: callers pass time in.
/// </summary>
public sealed class WindowController
{
    private const double Gain = 1.0;
    private const int RateRounds = 10;
    /// <summary>Misses this recent keep the miss target: a guest that missed once will likely miss again soon
    /// (it reads on where it read), and flipping the target per miss would make the window saw.</summary>
    public static readonly TimeSpan MissHold = TimeSpan.FromSeconds(1);
    private readonly double _target, _missTarget;
    private DateTime _lastMiss = DateTime.MinValue;
    private double _missRate;
    private readonly ReadSizing? _sizing;
    private int _readBytes;
    private readonly int _max;
    private readonly double _chunkBytes;
    private readonly double _initial;
    private readonly TimeSpan _baseHistory = TimeSpan.FromSeconds(10);
    private readonly double[] _recent = [double.MaxValue, double.MaxValue, double.MaxValue, double.MaxValue];
    private int _recentNext;
    private double _baseCurrent = double.MaxValue, _basePrevious = double.MaxValue;
    private DateTime _baseBucketStart = DateTime.MinValue;
    private double _window;
    private bool _startup = true;
    private int _holdUntilRound = -1;
    private long _delivered, _roundStart;
    private readonly double[] _roundRates = new double[RateRounds];
    private int _round;
    private double _fullRate;
    private int _roundsWithoutGrowth;

    /// <param name="chunkBytes">The nominal read: the window's unit, and every read's size until the rate is known
    /// (always, without <paramref name="sizing"/>).</param>
    /// <param name="missQueueTarget">The queue target while guest misses arrive; default: the queue target.</param>
    public WindowController(TimeSpan queueTarget, int maxWindow, int chunkBytes, int initialWindow = 2,
        ReadSizing? sizing = null, TimeSpan? missQueueTarget = null)
    {
        _target = queueTarget.TotalMilliseconds;
        _missTarget = Math.Min(_target, (missQueueTarget ?? queueTarget).TotalMilliseconds);
        _sizing = sizing;
        _readBytes = chunkBytes;
        _max = maxWindow;
        _chunkBytes = chunkBytes;
        _initial = Math.Clamp(initialWindow, 1, maxWindow);
        _window = _initial;
    }

    public int Window => (int)Math.Clamp(Math.Ceiling(_window), 1, _max);
    /// <summary>The window in bytes: what to keep in flight, whatever the size of each read.</summary>
    /// <summary>The window in bytes, not rounded up to whole nominal reads: a cap of a millisecond or two is a fraction of one.</summary>
    public long WindowBytes => (long)(Math.Clamp(_window, 1, _max) * _chunkBytes);
    /// <summary>How big the next background read should be (bytes).</summary>
    public int ReadBytes => _readBytes;
    /// <summary>Guest misses arrived within <see cref="MissHold"/> of the last completion: the window is capped.</summary>
    public bool MissesRecent { get; private set; }
    public bool InStartup => _startup;
    public double QueueDelayMs { get; private set; }
    public double BaseLatencyMs => Math.Min(_baseCurrent, _basePrevious);
    /// <summary>The bottleneck's rate as delivered lately (bytes/s); 0 before the first sample.</summary>
    public double RateBytesPerSecond => _roundRates.Max();

    /// <summary>The window that fills the link with the target's worth of queue, in chunks (0 while unknown).</summary>
    public double EstimatedWindow => Estimate(_target);

    private double Estimate(double queueMs) =>
        BaseLatencyMs == double.MaxValue ? 0 : RateBytesPerSecond * (BaseLatencyMs + queueMs) / 1000 / _chunkBytes;

    public ReadStamp OnSend(DateTime now) => new(_delivered, now);

    /// <summary>A guest read missed (it waits on the source, sharing the link with the copy): cap the window for
    /// <see cref="MissHold"/>, from now on (the queue drains within a round trip, not LEDBAT's one read per round trip).</summary>
    public void OnGuestMiss(DateTime now)
    {
        // The cap is made of the rate when the misses began (or higher): the rate measured under the cap is lower than
        // the link's whenever the path's latency sits above its base, and a cap made of it shrank round after round
        // (real runs: 29-37 MB/s of 40 under a stream of misses).
        _missRate = now - _lastMiss > MissHold ? RateBytesPerSecond : Math.Max(_missRate, RateBytesPerSecond);
        _lastMiss = now;
        MissesRecent = true;
        CapForMisses();
    }

    private void CapForMisses()
    {
        // The base latency holds a read's own time on the wire at the bottleneck: a window of rate x base keeps a read
        // queued behind the one being sent, and a miss waits behind both. Without it the cap is the path's round trip
        // plus the miss target (the copy gives up that read's share of the rate, about 1 % at RTT 50 ms, meanwhile).
        double rate = Math.Max(_missRate, RateBytesPerSecond);
        double onWire = rate > 0 ? _readBytes * 1000.0 / rate : 0;
        double cap = BaseLatencyMs == double.MaxValue ? 0 : rate * (BaseLatencyMs + _missTarget - Math.Min(onWire, BaseLatencyMs / 2)) / 1000 / _chunkBytes;
        if (MissesRecent && !_startup && cap > 0) _window = Math.Clamp(Math.Min(_window, Math.Max(2, cap)), 1, _max);
    }

    /// <summary>A read of <paramref name="bytes"/> completed. Only full-size reads teach the delay: a short one
    /// (cut by guest misses) has less serialisation in its latency and would set too low a base.</summary>
    public void OnCompletion(ReadStamp sent, long bytes, TimeSpan latency, bool fullChunk, DateTime now)
    {
        _delivered += bytes;
        MissesRecent = now - _lastMiss <= MissHold;
        double seconds = (now - sent.SentAt).TotalSeconds;
        if (sent.Delivered >= _roundStart) EndRound();
        if (seconds > 0)
        {
            ref double slot = ref _roundRates[_round % RateRounds];
            slot = Math.Max(slot, (_delivered - sent.Delivered) / seconds);
        }
        if (!fullChunk) return;

        double ms = latency.TotalMilliseconds;
        // The base is the minimum over the last 10-20 s (two buckets), so a route change is forgotten.
        if (now - _baseBucketStart > _baseHistory)
        {
            _basePrevious = _baseCurrent;
            _baseCurrent = double.MaxValue;
            _baseBucketStart = now;
        }
        _baseCurrent = Math.Min(_baseCurrent, ms);
        // Current delay: minimum of the last few samples, which filters scheduling noise on a busy host.
        _recent[_recentNext++ % _recent.Length] = ms;
        QueueDelayMs = Math.Max(0, _recent.Min() - BaseLatencyMs);

        // A queue this far above the target is real (not jitter) and costs every guest miss: back to the estimate.
        double farAbove = Math.Max(4 * _target, BaseLatencyMs / 4);
        if (_startup)
        {
            if (QueueDelayMs > farAbove) LeaveStartup();
            // +2 a completion triples the window each round trip; never more than three times what was delivered.
            else _window = Math.Min(_window + 2 * bytes / _chunkBytes, Math.Max(_initial, 3 * EstimatedWindow + 2));
        }
        else if (_holdUntilRound >= _round)
        {
            // Just out of startup: hold while the rate estimate catches up with the window that saturated the link.
        }
        else if (QueueDelayMs > farAbove && EstimatedWindow > 0)
        {
            _window = Math.Min(_window, Math.Max(2, EstimatedWindow));
        }
        else
        {
            double offTarget = Math.Clamp((_target - QueueDelayMs) / _target, -1, 1);
            double step = Gain * offTarget / _window;
            if (QueueDelayMs < _target / 4) step = Math.Max(step, 0.25);
            _window += step;
        }
        _window = Math.Clamp(_window, 1, _max);
        CapForMisses();
    }

    /// <summary>A read failed: start again small (the source or the path changed).</summary>
    public void OnFailure()
    {
        _window = 1;
        _missRate = 0;
        _readBytes = (int)_chunkBytes;
        _startup = true;
        _holdUntilRound = -1;
        _fullRate = 0;
        _roundsWithoutGrowth = 0;
        Array.Clear(_roundRates);
    }

    private void EndRound()
    {
        _roundStart = _delivered;
        if (_holdUntilRound == _round && EstimatedWindow > 0) _window = Math.Min(_window, Math.Max(2, EstimatedWindow));
        if (_startup)
        {
            double rate = RateBytesPerSecond;
            if (rate >= _fullRate * 1.25)
            {
                _fullRate = rate;
                _roundsWithoutGrowth = 0;
            }
            else if (++_roundsWithoutGrowth >= 2) LeaveStartup();
        }
        _round++;
        _roundRates[_round % RateRounds] = 0;
        if (!_startup) SizeReads();
    }

    /// <summary>Reads of about ReadTime at the delivery rate, and at most a quarter of the window (several reads in
    /// flight keep the source busy while one lands), rounded down to a power of two; but at least the window over the
    /// reads the connection keeps in flight. Changed only when the ideal size
    /// is 25 % past a power of two, so a rate near one does not flip it. A new size has another serialisation time at
    /// the bottleneck: the base latency and the recent samples move by the difference (at the measured rate), or it
    /// would read as queue (or hide one). Learning the base again instead would take it with the standing queue in it.</summary>
    private void SizeReads()
    {
        if (_sizing is not { } z || RateBytesPerSecond <= 0) return;
        double ideal = Math.Min(RateBytesPerSecond * z.ReadTime.TotalSeconds, WindowBytes / 4.0);
        // The window must fit in the reads the connection keeps in flight: beyond them reads wait in the client, unsent.
        ulong fit = (ulong)Math.Ceiling(WindowBytes / (double)z.MaxReads);
        int least = (int)Math.Clamp((long)System.Numerics.BitOperations.RoundUpToPowerOf2(Math.Max(1, fit)), z.MinBytes, z.MaxBytes);
        if (_readBytes >= least && Pow2(ideal / 1.25) <= _readBytes && Pow2(ideal * 1.25) >= _readBytes) return;
        int size = Math.Max(Pow2(ideal), least);
        if (size == _readBytes) return;
        double shiftMs = (size - _readBytes) * 1000.0 / RateBytesPerSecond;
        _readBytes = size;
        Shift(ref _baseCurrent);
        Shift(ref _basePrevious);
        for (int i = 0; i < _recent.Length; i++) Shift(ref _recent[i]);

        void Shift(ref double ms)
        {
            if (ms != double.MaxValue) ms = Math.Max(0, ms + shiftMs);
        }

        int Pow2(double bytes) => (int)Math.Clamp(bytes < 2 ? 1 : 1L << (int)Math.Floor(Math.Log2(bytes)), z.MinBytes, z.MaxBytes);
    }

    /// <summary>The rate samples of the round that filled the link are still on their way: hold the window for
    /// the round under way and two more (the reads of the second all left at this window), then drop to the estimate.</summary>
    private void LeaveStartup()
    {
        _startup = false;
        _holdUntilRound = _round + 2;
    }
}
