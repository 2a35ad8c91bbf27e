using System.Diagnostics;

namespace Reloc.Wan;

/// <summary>
/// Wakes async waiters at Stopwatch instants, never early and about 0.1-1 ms late. Task.Delay cannot:
/// .NET timers count Environment.TickCount64, which on Linux reads CLOCK_MONOTONIC_COARSE and so moves
/// in kernel ticks (4 ms steps at HZ=250: a 25 ms Task.Delay takes 27-29 ms there), too coarse for a
/// propagation delay or for pacing 64 KiB chunks at 40 MB/s. One thread per link sleeps in
/// Monitor.Wait, whose timeout is a precise pthread_cond_timedwait, until the earliest due instant.
/// </summary>
internal sealed class Scheduler
{
    private readonly object _lock = new();
    // One entry per pending wait: each relay loop has at most one at a time, and a cancelled one is
    // dropped at its due instant, so this stays proportional to the connections.
    private readonly PriorityQueue<TaskCompletionSource, long> _waits = new();
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _stopping;

    public Scheduler()
    {
        var thread = new Thread(Run) { IsBackground = true, Name = "wanlink scheduler" };
        thread.Start();
    }

    /// <summary>Completes at <paramref name="due"/> (Stopwatch ticks) or later.</summary>
    public ValueTask DelayUntilAsync(long due, CancellationToken ct)
    {
        if (due <= Clock.Now) return ValueTask.CompletedTask;
        ct.ThrowIfCancellationRequested();
        var wait = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_stopping, this);
            var earliest = !_waits.TryPeek(out _, out var head) || due < head;
            _waits.Enqueue(wait, due);
            if (earliest) Monitor.Pulse(_lock); // the thread sleeps until the old head: wake it to re-aim
        }
        return new ValueTask(ct.CanBeCanceled ? wait.Task.WaitAsync(ct) : wait.Task);
    }

    /// <summary>Cancels every pending wait and ends the thread.</summary>
    public Task StopAsync()
    {
        lock (_lock)
        {
            _stopping = true;
            Monitor.Pulse(_lock);
        }
        return _exited.Task;
    }

    private void Run()
    {
        lock (_lock)
        {
            while (!_stopping)
            {
                if (!_waits.TryPeek(out _, out var due))
                {
                    Monitor.Wait(_lock);
                    continue;
                }
                var remaining = due - Clock.Now;
                if (remaining > 0)
                {
                    // Whole milliseconds rounded up: the timeout's unit, and never a wake-up before due.
                    var ms = (remaining * 1000 + Stopwatch.Frequency - 1) / Stopwatch.Frequency;
                    Monitor.Wait(_lock, (int)Math.Min(ms, int.MaxValue));
                    continue;
                }
                // Continuations run asynchronously, so completing under the lock only queues them.
                var now = Clock.Now;
                while (_waits.TryPeek(out var wait, out due) && due <= now)
                {
                    _waits.Dequeue();
                    wait.TrySetResult();
                }
            }
            while (_waits.TryDequeue(out var wait, out _)) wait.TrySetCanceled();
        }
        _exited.TrySetResult();
    }
}
