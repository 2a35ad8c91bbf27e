using System.Diagnostics;

namespace Reloc.Wan;

/// <summary>Stopwatch-tick time for the link schedule, and a wait that never wakes before its due time.</summary>
internal static class Clock
{
    public static long Now => Stopwatch.GetTimestamp();

    public static long Ticks(TimeSpan span) => (long)((Int128)span.Ticks * Stopwatch.Frequency / TimeSpan.TicksPerSecond);

    public static TimeSpan ToTimeSpan(long ticks) => TimeSpan.FromTicks((long)((Int128)ticks * TimeSpan.TicksPerSecond / Stopwatch.Frequency));

    /// <summary>
    /// Waits until <paramref name="due"/>. Timers have ~1 ms granularity and Task.Delay truncates to whole
    /// milliseconds (a sub-millisecond wait would return at once and spin), so this sleeps the whole
    /// milliseconds left, at least one, and re-checks: a wake-up is late by about a millisecond, never early.
    /// </summary>
    public static async ValueTask DelayUntilAsync(long due, CancellationToken ct)
    {
        while (true)
        {
            var remaining = due - Stopwatch.GetTimestamp();
            if (remaining <= 0) return;
            var ms = Math.Max(1, remaining * 1000 / Stopwatch.Frequency);
            await Task.Delay(TimeSpan.FromMilliseconds(ms), ct);
        }
    }
}
