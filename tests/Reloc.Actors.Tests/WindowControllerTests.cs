using Reloc.Actors.Disk;
using Xunit;
using Xunit.Abstractions;

namespace Reloc.Actors.Tests;

/// <summary>
/// The background-copy window controller against a simulated path: requests travel half the base RTT, replies
/// queue in a FIFO bottleneck of a given rate and travel the other half back; host jitter delays the moment a
/// completion is seen (as a busy actor system would). Deterministic (seeded), so each row is a fixed experiment.
/// </summary>
public sealed class WindowControllerTests(ITestOutputHelper output)
{
    private const int Chunk = 128 * 1024;

    public static TheoryData<string, double, double, double, long, double, double> Paths => new()
    {
        // name, rate bytes/s, RTT ms, jitter ms (mean, exponential), bytes, most time / limit, most median queue ms
        { "WAN 20 ms", 40e6, 20, 0, 256L << 20, 1.03, 10 },
        { "WAN 50 ms", 40e6, 50, 0, 256L << 20, 1.04, 10 },
        { "WAN 100 ms", 40e6, 100, 0, 256L << 20, 1.06, 10 },
        { "WAN 200 ms", 40e6, 200, 0, 256L << 20, 1.08, 10 },
        { "WAN 200 ms, 1 GiB", 40e6, 200, 0, 1L << 30, 1.03, 10 },
        { "WAN 200 ms, jittery host", 40e6, 200, 3, 256L << 20, 1.10, 15 },
        { "WAN 50 ms, jittery host", 40e6, 50, 3, 256L << 20, 1.08, 15 },
        { "LAN 10 Gbit/s", 1.25e9, 0.2, 0, 1L << 30, 1.10, 10 },
        { "LAN 1 Gbit/s, jittery host", 125e6, 0.5, 1, 1L << 30, 1.10, 15 },
    };

    [Theory]
    [MemberData(nameof(Paths))]
    public void Fills_the_link_and_holds_the_queue_near_the_target(string name, double rate, double rttMs, double jitterMs,
        long bytes, double maxRatio, double maxMedianQueueMs)
    {
        var run = PathSim.Run(new WindowController(TimeSpan.FromMilliseconds(5), 256, Chunk, 8), rate, rttMs, jitterMs, bytes);
        double limit = bytes / rate;
        output.WriteLine($"{name}: {run.Seconds / limit:F3}x the limit, median queue {run.MedianQueueMs:F1} ms, final window {run.FinalWindow}");
        Assert.True(run.Seconds <= maxRatio * limit,
            $"{name}: {run.Seconds:F2} s for {bytes >> 20} MiB, limit {limit:F2} s ({run.Seconds / limit:F3}x > {maxRatio}x); final window {run.FinalWindow}");
        Assert.True(run.MedianQueueMs <= maxMedianQueueMs, $"{name}: median queue {run.MedianQueueMs:F1} ms");
    }

    [Fact]
    public void A_failure_starts_again_small()
    {
        var c = new WindowController(TimeSpan.FromMilliseconds(5), 256, Chunk, 8);
        PathSim.Run(c, 40e6, 50, 0, 64L << 20);
        Assert.False(c.InStartup);
        Assert.True(c.Window > 8);
        c.OnFailure();
        Assert.Equal(1, c.Window);
        Assert.True(c.InStartup);
    }

    [Fact]
    public void The_window_never_exceeds_its_cap()
    {
        var run = PathSim.Run(new WindowController(TimeSpan.FromMilliseconds(5), 16, Chunk, 8), 40e6, 200, 0, 64L << 20);
        Assert.Equal(16, run.MaxWindow);
    }

    [Fact]
    public void A_slower_path_after_startup_is_followed_down()
    {
        // The link's rate drops to a quarter mid-copy (a competing flow, a reroute): the queue must come back to a chunk
        // or two (13 ms each at 10 MB/s) within seconds, not stay at the old window's 200 ms.
        var c = new WindowController(TimeSpan.FromMilliseconds(5), 256, Chunk, 8);
        var run = PathSim.Run(c, 40e6, 50, 0, 256L << 20, rateAfter: (3.0, 10e6));
        Assert.True(run.MedianQueueMsAfter(6.0) <= 30, $"median queue after the drop {run.MedianQueueMsAfter(6.0):F1} ms");
    }

    /// <summary>Discrete-event model of one path with a FIFO bottleneck on the reply direction.</summary>
    private sealed class PathSim
    {
        public double Seconds;
        public int FinalWindow, MaxWindow;
        private readonly List<(double At, double QueueMs)> _queue = [];
        public double MedianQueueMs => Median(_queue.Select(q => q.QueueMs));
        public double MedianQueueMsAfter(double t) => Median(_queue.Where(q => q.At >= t).Select(q => q.QueueMs));

        private static double Median(IEnumerable<double> xs)
        {
            var s = xs.OrderBy(x => x).ToArray();
            return s.Length == 0 ? 0 : s[s.Length / 2];
        }

        public static PathSim Run(WindowController c, double rate, double rttMs, double jitterMs, long bytes,
            (double At, double Rate)? rateAfter = null)
        {
            var sim = new PathSim();
            var random = new Random(42);
            var epoch = new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
            double rtt = rttMs / 1000, now = 0, bottleneckFree = 0;
            long sent = 0, done = 0;
            var pending = new PriorityQueue<(double SentAt, ReadStamp Stamp, long Bytes), double>();

            void Fill()
            {
                while (pending.Count < c.Window && sent < bytes)
                {
                    long n = Math.Min(Chunk, bytes - sent);
                    sent += n;
                    var stamp = c.OnSend(epoch.AddSeconds(now));
                    double r = rateAfter is { } a && now >= a.At ? a.Rate : rate;
                    double arrive = now + rtt / 2;
                    double start = Math.Max(arrive, bottleneckFree);
                    bottleneckFree = start + n / r;
                    sim._queue.Add((now, (start - arrive) * 1000));
                    double seen = bottleneckFree + rtt / 2 + (jitterMs > 0 ? -Math.Log(1 - random.NextDouble()) * jitterMs / 1000 : 0);
                    pending.Enqueue((now, stamp, n), seen);
                }
                sim.MaxWindow = Math.Max(sim.MaxWindow, c.Window);
            }

            Fill();
            while (pending.TryDequeue(out var read, out double at))
            {
                now = Math.Max(now, at); // a late-seen completion holds the ones behind it (one actor mailbox)
                done += read.Bytes;
                c.OnCompletion(read.Stamp, read.Bytes, TimeSpan.FromSeconds(now - read.SentAt), read.Bytes == Chunk, epoch.AddSeconds(now));
                Fill();
            }
            Assert.Equal(bytes, done);
            sim.Seconds = now;
            sim.FinalWindow = c.Window;
            return sim;
        }
    }
}
