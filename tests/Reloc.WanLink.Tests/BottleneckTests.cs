using System.Diagnostics;
using Xunit;

namespace Reloc.Wan.Tests;

/// <summary>
/// The serialization schedule on its own, at explicit instants: FIFO departures at the rate, the
/// propagation delay on top, the queue bound, and rate changes applying to the next chunk only.
/// </summary>
public sealed class BottleneckTests
{
    private static readonly long Ms = Stopwatch.Frequency / 1000;
    private const long T0 = 1_000_000_000_000;

    private static Bottleneck Link(long rate, int delayMs = 10, int queueMs = 100) =>
        new(new WanLinkSettings(TimeSpan.FromMilliseconds(2 * delayMs), rate, TimeSpan.FromMilliseconds(queueMs)), WanDirection.ToTarget);

    private static long Reserve(Bottleneck link, int bytes, long now)
    {
        Assert.True(link.TryReserve(bytes, now, out var due, out _));
        return due;
    }

    [Fact]
    public void Chunks_leave_one_after_another_at_the_rate_and_arrive_a_delay_later()
    {
        var link = Link(rate: 1_000_000); // 1000 bytes take 1 ms
        Assert.Equal(T0 + 1 * Ms + 10 * Ms, Reserve(link, 1000, T0));
        Assert.Equal(T0 + 3 * Ms + 10 * Ms, Reserve(link, 2000, T0)); // behind the first
        Assert.Equal(T0 + 4 * Ms + 10 * Ms, Reserve(link, 1000, T0 + 2 * Ms)); // link still busy until 3 ms
        Assert.Equal(T0 + 51 * Ms + 10 * Ms, Reserve(link, 1000, T0 + 50 * Ms)); // idle link: starts at once
    }

    [Fact]
    public void Queued_bytes_are_those_not_yet_serialized()
    {
        var link = Link(rate: 1_000_000);
        Reserve(link, 1000, T0);
        Reserve(link, 1000, T0);
        Reserve(link, 1000, T0);
        Assert.Equal(3000, link.Stats(T0).QueuedBytes);
        Assert.Equal(TimeSpan.FromMilliseconds(3), link.Stats(T0).QueueDelay);
        Assert.Equal(2000, link.Stats(T0 + 1 * Ms).QueuedBytes);
        Assert.Equal(0, link.Stats(T0 + 3 * Ms).QueuedBytes);
        Assert.Equal(3000, link.Stats(T0 + 3 * Ms).PeakQueuedBytes);
    }

    [Fact]
    public void A_full_queue_refuses_until_its_head_leaves()
    {
        var link = Link(rate: 1_000_000, queueMs: 10); // 10 000 bytes of queue
        for (var i = 0; i < 10; i++) Reserve(link, 1000, T0);
        Assert.False(link.TryReserve(1, T0, out _, out var retryAt));
        Assert.Equal(T0 + 1 * Ms, retryAt);
        Assert.True(link.TryReserve(1000, retryAt, out var due, out _));
        Assert.Equal(T0 + 11 * Ms + 10 * Ms, due);
        Assert.Equal(10_000, link.Stats(retryAt).PeakQueuedBytes);
    }

    [Fact]
    public void A_chunk_larger_than_the_queue_still_goes_when_the_queue_is_empty()
    {
        var link = Link(rate: 1_000_000, queueMs: 1); // 1000 bytes of queue
        Assert.Equal(T0 + 5 * Ms + 10 * Ms, Reserve(link, 5000, T0));
        Assert.False(link.TryReserve(1, T0 + 1 * Ms, out _, out _));
    }

    [Fact]
    public void A_rate_change_applies_to_the_chunks_after_it()
    {
        var link = Link(rate: 1_000_000);
        var first = Reserve(link, 1000, T0);
        link.Rate = 500_000;
        var second = Reserve(link, 1000, T0);
        Assert.Equal(T0 + 11 * Ms, first);
        Assert.Equal(T0 + 3 * Ms + 10 * Ms, second); // 1 ms at the old rate, then 2 ms at the new one
        Assert.Equal(50_000, link.QueueLimitBytes); // a queue given as time follows the rate
    }

    [Fact]
    public void Unlimited_rate_only_delays()
    {
        var link = Link(rate: 0, delayMs: 25);
        Assert.Equal(T0 + 25 * Ms, Reserve(link, 64 * 1024, T0));
        Assert.Equal(T0 + 25 * Ms, Reserve(link, 64 * 1024, T0));
        Assert.Equal(0, link.Stats(T0).QueuedBytes);
    }

    [Fact]
    public void Chunks_take_about_two_milliseconds_of_the_link()
    {
        Assert.Equal(40_000, Link(rate: 20_000_000).ChunkBytes);
        Assert.Equal(Bottleneck.MaxChunkBytes, Link(rate: 1_000_000_000).ChunkBytes);
        Assert.Equal(4096, Link(rate: 100_000).ChunkBytes);
        Assert.Equal(Bottleneck.MaxChunkBytes, Link(rate: 0).ChunkBytes);
    }

    [Fact]
    public void A_connection_window_covers_queue_and_propagation()
    {
        var link = Link(rate: 20_000_000, delayMs: 25, queueMs: 100);
        // 2 MB queue + 20 MB/s * (25 + 20 ms) + two chunks
        Assert.Equal(2_000_000 + 900_000 + 2 * Bottleneck.MaxChunkBytes, link.WindowBytes);
    }
}
