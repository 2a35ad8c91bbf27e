using System.Diagnostics;

namespace Reloc.Wan;

/// <summary>Stopwatch ticks: the link schedule's time, with microsecond resolution.</summary>
internal static class Clock
{
    public static long Now => Stopwatch.GetTimestamp();

    public static long Ticks(TimeSpan span) => (long)((Int128)span.Ticks * Stopwatch.Frequency / TimeSpan.TicksPerSecond);

    public static TimeSpan ToTimeSpan(long ticks) => TimeSpan.FromTicks((long)((Int128)ticks * TimeSpan.TicksPerSecond / Stopwatch.Frequency));
}
