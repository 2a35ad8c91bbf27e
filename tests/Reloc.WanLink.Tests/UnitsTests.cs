using Xunit;

namespace Reloc.Wan.Tests;

/// <summary>The command-line quantities: what parses to what, and what is refused with which message.</summary>
public sealed class UnitsTests
{
    [Theory]
    [InlineData("40MB/s", 40_000_000)]
    [InlineData("40MiB/s", 40L * 1024 * 1024)]
    [InlineData("320Mbit/s", 40_000_000)]
    [InlineData("320Mbps", 40_000_000)]
    [InlineData("320Mb/s", 40_000_000)]
    [InlineData("1Gbit/s", 125_000_000)]
    [InlineData("  2.5 MB/s ", 2_500_000)]
    [InlineData("100kB/s", 100_000)]
    [InlineData("100KB/s", 100_000)]
    [InlineData("64KiB/s", 65_536)]
    [InlineData("12B/s", 12)]
    [InlineData("1GiB/s", 1L << 30)]
    [InlineData("0", 0)]
    [InlineData("0MB/s", 0)]
    [InlineData("unlimited", 0)]
    public void Rates_parse_to_bytes_per_second(string text, long expected) => Assert.Equal(expected, Units.ParseRate(text));

    [Theory]
    [InlineData("40", "no unit")]
    [InlineData("40MB", "unknown unit 'MB'")]
    [InlineData("40mb/s", "case-sensitive")]
    [InlineData("40XB/s", "unknown unit 'XB/s'")]
    [InlineData("MB/s", "does not start with a number")]
    [InlineData("-5MB/s", "must not be negative")]
    [InlineData("1.2.3MB/s", "is not a number")]
    [InlineData("", "does not start with a number")]
    [InlineData("1bit/s", "below 1 byte/s")]
    [InlineData("99999999999999999999GB/s", "too large")]
    public void Bad_rates_say_why(string text, string reason)
    {
        var ex = Assert.Throws<FormatException>(() => Units.ParseRate(text));
        Assert.Contains(reason, ex.Message);
        Assert.Contains($"'{text}'", ex.Message);
    }

    [Theory]
    [InlineData("64KiB", 65_536)]
    [InlineData("1.5MiB", 1_572_864)]
    [InlineData("1MB", 1_000_000)]
    [InlineData("4096", 4096)]
    [InlineData("4096B", 4096)]
    [InlineData("2GiB", 2L << 30)]
    [InlineData("0", 0)]
    public void Sizes_parse_to_bytes(string text, long expected) => Assert.Equal(expected, Units.ParseSize(text));

    [Theory]
    [InlineData("64kib", "unknown unit 'kib'")]
    [InlineData("64KiB/s", "unknown unit 'KiB/s'")]
    [InlineData("lots", "does not start with a number")]
    [InlineData("-1KiB", "must not be negative")]
    public void Bad_sizes_say_why(string text, string reason)
    {
        var ex = Assert.Throws<FormatException>(() => Units.ParseSize(text));
        Assert.Contains(reason, ex.Message);
    }

    [Theory]
    [InlineData("50ms", 50 * TimeSpan.TicksPerMillisecond)]
    [InlineData("0.1s", 100 * TimeSpan.TicksPerMillisecond)]
    [InlineData("250us", 2500)]
    [InlineData("250µs", 2500)]
    [InlineData("2min", 2 * TimeSpan.TicksPerMinute)]
    [InlineData("1h", TimeSpan.TicksPerHour)]
    [InlineData("0", 0)]
    [InlineData(" 1.5 s", 15 * TimeSpan.TicksPerSecond / 10)]
    public void Durations_parse(string text, long ticks) => Assert.Equal(TimeSpan.FromTicks(ticks), Units.ParseDuration(text));

    [Theory]
    [InlineData("50", "no unit")]
    [InlineData("50m", "unknown unit 'm'")]
    [InlineData("50MS", "unknown unit 'MS'")]
    [InlineData("-50ms", "must not be negative")]
    [InlineData("ms", "does not start with a number")]
    public void Bad_durations_say_why(string text, string reason)
    {
        var ex = Assert.Throws<FormatException>(() => Units.ParseDuration(text));
        Assert.Contains(reason, ex.Message);
    }

    [Theory]
    [InlineData(40_000_000, "40 MB/s")]
    [InlineData(40L * 1024 * 1024, "40 MiB/s")]
    [InlineData(0, "unlimited")]
    [InlineData(1_234_567, "1.235 MB/s")]
    [InlineData(999, "999 B/s")]
    public void Rates_format_for_humans(long rate, string expected) => Assert.Equal(expected, Units.FormatRate(rate));

    [Theory]
    [InlineData(50 * TimeSpan.TicksPerMillisecond, "50ms")]
    [InlineData(15 * TimeSpan.TicksPerSecond / 10, "1.5s")]
    [InlineData(2500, "250us")]
    [InlineData(0, "0")]
    public void Durations_format_for_humans(long ticks, string expected) => Assert.Equal(expected, Units.FormatDuration(TimeSpan.FromTicks(ticks)));

    [Theory]
    [InlineData(65_536)]
    [InlineData(40_000_000)]
    [InlineData(1500)]
    [InlineData(3L << 30)]
    public void Formatted_sizes_parse_back(long bytes) => Assert.Equal(bytes, Units.ParseSize(Units.FormatSize(bytes).Replace(" ", "")));
}
