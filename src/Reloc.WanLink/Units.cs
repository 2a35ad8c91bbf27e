using System.Globalization;

namespace Reloc.Wan;

/// <summary>
/// Parses and formats the human quantities a WAN link is described with on a command line: rates
/// ("40MB/s", "40MiB/s", "320Mbit/s"), sizes ("64KiB") and durations ("50ms", "0.1s").
/// Units are case-sensitive because case carries meaning: "MB/s" is megabytes, "Mb/s" megabits.
/// Decimal prefixes are powers of 1000, binary ones (KiB, MiB, GiB) powers of 1024.
/// </summary>
public static class Units
{
    private const string RateExamples = "e.g. 40MB/s, 40MiB/s, 320Mbit/s, 320Mbps or 0 for unlimited";
    private const string SizeExamples = "e.g. 65536, 64KiB, 1.5MB";
    private const string DurationExamples = "e.g. 50ms, 0.1s, 250us";

    // Bytes per second each rate unit stands for (bit units already divided by 8).
    private static readonly Dictionary<string, decimal> RateUnits = new(StringComparer.Ordinal)
    {
        ["B/s"] = 1m,
        ["kB/s"] = 1e3m, ["KB/s"] = 1e3m, ["MB/s"] = 1e6m, ["GB/s"] = 1e9m,
        ["KiB/s"] = 1024m, ["MiB/s"] = 1024m * 1024, ["GiB/s"] = 1024m * 1024 * 1024,
        ["bit/s"] = 1m / 8, ["kbit/s"] = 1e3m / 8, ["Kbit/s"] = 1e3m / 8, ["Mbit/s"] = 1e6m / 8, ["Gbit/s"] = 1e9m / 8,
        ["b/s"] = 1m / 8, ["kb/s"] = 1e3m / 8, ["Kb/s"] = 1e3m / 8, ["Mb/s"] = 1e6m / 8, ["Gb/s"] = 1e9m / 8,
        ["bps"] = 1m / 8, ["kbps"] = 1e3m / 8, ["Kbps"] = 1e3m / 8, ["Mbps"] = 1e6m / 8, ["Gbps"] = 1e9m / 8,
    };

    private static readonly Dictionary<string, decimal> SizeUnits = new(StringComparer.Ordinal)
    {
        [""] = 1m, ["B"] = 1m,
        ["kB"] = 1e3m, ["KB"] = 1e3m, ["MB"] = 1e6m, ["GB"] = 1e9m,
        ["KiB"] = 1024m, ["MiB"] = 1024m * 1024, ["GiB"] = 1024m * 1024 * 1024,
    };

    // TimeSpan ticks (100 ns) per duration unit.
    private static readonly Dictionary<string, decimal> DurationUnits = new(StringComparer.Ordinal)
    {
        ["us"] = 10m, ["µs"] = 10m, ["ms"] = TimeSpan.TicksPerMillisecond, ["s"] = TimeSpan.TicksPerSecond,
        ["min"] = TimeSpan.TicksPerMinute, ["h"] = TimeSpan.TicksPerHour,
    };

    /// <summary>A rate in bytes per second; "0", "0B/s" or "unlimited" give 0 (no limit).</summary>
    public static long ParseRate(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Trim() is "unlimited" or "0") return 0;
        var (number, unit) = Split(text, "rate", RateExamples);
        if (unit.Length == 0) throw new FormatException($"'{text}' is not a rate: it has no unit ({RateExamples})");
        if (!RateUnits.TryGetValue(unit, out var factor))
            throw new FormatException($"'{text}' is not a rate: unknown unit '{unit}' ({RateExamples}; units are case-sensitive, MB/s is megabytes and Mb/s megabits)");
        var bytes = ToWhole(text, "rate", number, factor);
        if (bytes == 0 && number != 0) throw new FormatException($"'{text}' is not a rate: it is below 1 byte/s");
        return bytes;
    }

    /// <summary>A size in bytes; a bare number is bytes.</summary>
    public static long ParseSize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var (number, unit) = Split(text, "size", SizeExamples);
        if (!SizeUnits.TryGetValue(unit, out var factor))
            throw new FormatException($"'{text}' is not a size: unknown unit '{unit}' ({SizeExamples}; units are case-sensitive)");
        return ToWhole(text, "size", number, factor);
    }

    /// <summary>A duration; a unit is required except for "0".</summary>
    public static TimeSpan ParseDuration(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Trim() == "0") return TimeSpan.Zero;
        var (number, unit) = Split(text, "duration", DurationExamples);
        if (unit.Length == 0) throw new FormatException($"'{text}' is not a duration: it has no unit ({DurationExamples})");
        if (!DurationUnits.TryGetValue(unit, out var factor))
            throw new FormatException($"'{text}' is not a duration: unknown unit '{unit}' ({DurationExamples})");
        return TimeSpan.FromTicks(ToWhole(text, "duration", number, factor));
    }

    /// <summary>Whether <paramref name="text"/> ends in a duration unit (to tell "100ms" from "64KiB").</summary>
    public static bool LooksLikeDuration(string text)
    {
        var t = text.Trim();
        int i = t.Length;
        while (i > 0 && !char.IsAsciiDigit(t[i - 1]) && t[i - 1] != '.') i--;
        return DurationUnits.ContainsKey(t[i..].Trim());
    }

    /// <summary>"40 MB/s", "40 MiB/s" or "unlimited"; exact in the unit it picks when it can.</summary>
    public static string FormatRate(long bytesPerSecond) =>
        bytesPerSecond == 0 ? "unlimited" : FormatScaled(bytesPerSecond) + "/s";

    /// <summary>"64 KiB", "4 MB", "1500 B".</summary>
    public static string FormatSize(long bytes) => FormatScaled(bytes);

    /// <summary>"50ms", "1.5s", "250us", "0".</summary>
    public static string FormatDuration(TimeSpan duration)
    {
        var ticks = duration.Ticks;
        if (ticks == 0) return "0";
        if (Math.Abs(ticks) >= TimeSpan.TicksPerSecond) return Decimal(ticks / (decimal)TimeSpan.TicksPerSecond) + "s";
        if (Math.Abs(ticks) >= TimeSpan.TicksPerMillisecond) return Decimal(ticks / (decimal)TimeSpan.TicksPerMillisecond) + "ms";
        return Decimal(ticks / 10m) + "us";
    }

    private static string FormatScaled(long bytes)
    {
        // Prefer whichever family (1000 or 1024) expresses the value exactly, largest unit first.
        (long Factor, string Unit)[] exact = [(1L << 30, "GiB"), (1_000_000_000, "GB"), (1L << 20, "MiB"), (1_000_000, "MB"), (1L << 10, "KiB"), (1_000, "kB")];
        foreach (var (factor, unit) in exact)
            if (bytes != 0 && bytes % factor == 0) return $"{bytes / factor} {unit}";
        (long Factor, string Unit)[] approx = [(1_000_000_000, "GB"), (1_000_000, "MB"), (1_000, "kB")];
        foreach (var (factor, unit) in approx)
            if (Math.Abs(bytes) >= factor) return $"{Decimal(bytes / (decimal)factor)} {unit}";
        return $"{bytes} B";
    }

    private static string Decimal(decimal value) => Math.Round(value, 3).ToString("0.###", CultureInfo.InvariantCulture);

    private static (decimal Number, string Unit) Split(string text, string what, string examples)
    {
        var t = text.Trim();
        int i = 0;
        while (i < t.Length && (char.IsAsciiDigit(t[i]) || t[i] == '.')) i++;
        if (i == 0)
        {
            var why = t.StartsWith('-') ? "it must not be negative" : "it does not start with a number";
            throw new FormatException($"'{text}' is not a {what}: {why} ({examples})");
        }
        if (!decimal.TryParse(t.AsSpan(0, i), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number))
            throw new FormatException($"'{text}' is not a {what}: '{t[..i]}' is not a number ({examples})");
        return (number, t[i..].Trim());
    }

    private static long ToWhole(string text, string what, decimal number, decimal factor)
    {
        try
        {
            var rounded = Math.Round(number * factor, MidpointRounding.AwayFromZero);
            if (rounded <= long.MaxValue) return (long)rounded;
        }
        catch (OverflowException)
        {
            // reported below, like a product that fits a decimal but not a long
        }
        throw new FormatException($"'{text}' is not a {what}: it is too large");
    }
}
