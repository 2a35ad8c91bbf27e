namespace Reloc.Actors.Disk;

/// <summary>
/// How many background reads to keep in flight: enough to fill the link at any RTT, no more. A
/// delay-based scavenger in the manner of LEDBAT (RFC 6817): the queueing delay a read saw is its
/// latency minus the lowest latency seen lately (propagation plus serialisation); below the target
/// the window grows, above it the window shrinks, so the bottleneck queue stays near the target and
/// a guest miss sharing that link waits at most about that long behind background data.
/// Pure and clock-free: callers pass time in.
/// </summary>
public sealed class WindowController
{
    private const double Gain = 1.0;
    private readonly double _target;
    private readonly int _max;
    private readonly TimeSpan _baseHistory = TimeSpan.FromSeconds(10);
    private readonly double[] _recent = [double.MaxValue, double.MaxValue, double.MaxValue, double.MaxValue];
    private int _recentNext;
    private double _baseCurrent = double.MaxValue, _basePrevious = double.MaxValue;
    private DateTime _baseBucketStart = DateTime.MinValue;
    private double _window = 2;
    private bool _slowStart = true;

    public WindowController(TimeSpan queueTarget, int maxWindow)
    {
        _target = queueTarget.TotalMilliseconds;
        _max = maxWindow;
    }

    public int Window => (int)Math.Clamp(Math.Ceiling(_window), 1, _max);
    public double QueueDelayMs { get; private set; }
    public double BaseLatencyMs => Math.Min(_baseCurrent, _basePrevious);

    public void OnCompletion(TimeSpan latency, DateTime now)
    {
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

        if (_slowStart && QueueDelayMs < _target / 2)
        {
            _window += 1; // doubles per round trip until a queue appears
        }
        else
        {
            _slowStart = false;
            double offTarget = Math.Clamp((_target - QueueDelayMs) / _target, -1, 1);
            _window += Gain * offTarget / _window;
        }
        _window = Math.Clamp(_window, 1, _max);
    }

    /// <summary>A read failed: start again small (the source or the path changed).</summary>
    public void OnFailure()
    {
        _window = 1;
        _slowStart = true;
    }
}
