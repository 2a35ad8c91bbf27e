using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization.Metadata;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Reloc.Cli;

/// <summary>Where a command's result goes: one JSON document (<c>--json</c>) or text for people, with
/// Spectre tables; stdout only (failures go to stderr).</summary>
public sealed class Output
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    private Output(bool json, IAnsiConsole console)
    {
        Json = json;
        Console = console;
    }

    public bool Json { get; }
    public IAnsiConsole Console { get; }

    /// <summary>stdout is a terminal: live displays redraw in place; otherwise they print plain lines.</summary>
    public bool Interactive => !System.Console.IsOutputRedirected && Console.Profile.Capabilities.Interactive;

    public static Output Create(bool json)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(System.Console.Out) });
        if (System.Console.IsOutputRedirected) console.Profile.Width = 200; // tables in logs and pipes are not cut at 80 columns
        return new Output(json, console);
    }

    /// <summary>Prints a result as the API sent it (its source-generated contract), indented.</summary>
    public void PrintJson<T>(T value, JsonTypeInfo<T> type)
    {
        var node = JsonSerializer.SerializeToNode(value, type);
        System.Console.Out.WriteLine(node?.ToJsonString(Indented) ?? "null");
        System.Console.Out.Flush();
    }

    /// <summary>One compact JSON document on one line (a stream of results, e.g. followed events).</summary>
    public void JsonLine<T>(T value, JsonTypeInfo<T> type)
    {
        System.Console.Out.WriteLine(JsonSerializer.Serialize(value, type));
        System.Console.Out.Flush();
    }

    public void PrintJson(JsonNode? node)
    {
        System.Console.Out.WriteLine(node?.ToJsonString(Indented) ?? "null");
        System.Console.Out.Flush();
    }

    public void Line(string text = "")
    {
        System.Console.Out.WriteLine(text);
        System.Console.Out.Flush();
    }

    public void Write(IRenderable renderable) => Console.Write(renderable);

    public static Table Table(params string[] headers)
    {
        var table = new Table().Border(TableBorder.Rounded);
        foreach (var h in headers) table.AddColumn(new TableColumn(h));
        return table;
    }

    /// <summary>One object's fields: a label column and a value column (a Spectre grid on a terminal,
    /// plain padded lines in a pipe, where a grid would pad every line to the full width).</summary>
    public void WriteFields(IReadOnlyList<(string Label, string Value)> rows)
    {
        if (Interactive) { Write(Fields(rows)); return; }
        int width = rows.Count == 0 ? 0 : rows.Max(r => r.Label.Length);
        foreach (var (label, value) in rows) Line($"  {label.PadRight(width)}  {value}");
    }

    private static Grid Fields(IEnumerable<(string Label, string Value)> rows)
    {
        var grid = new Grid().AddColumn(new GridColumn().PadRight(2)).AddColumn();
        foreach (var (label, value) in rows) grid.AddRow(new Markup($"[grey]{Markup.Escape(label)}[/]"), new Text(value));
        return grid;
    }
}

/// <summary>Human quantities: sizes in binary units, rates in decimal ones (as links are quoted).</summary>
public static class Fmt
{
    public static string Bytes(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        double v = bytes;
        int u = 0;
        while (Math.Abs(v) >= 1024 && u < units.Length - 1) { v /= 1024; u++; }
        if (u == 0) return $"{bytes} B";
        return (v == Math.Floor(v) ? v.ToString("0", CultureInfo.InvariantCulture) : v.ToString("0.0", CultureInfo.InvariantCulture)) + " " + units[u];
    }

    public static string Rate(long bytesPerSecond)
    {
        if (bytesPerSecond <= 0) return "0 B/s";
        (double Factor, string Unit)[] units = [(1e9, "GB/s"), (1e6, "MB/s"), (1e3, "kB/s")];
        foreach (var (f, unit) in units)
            if (bytesPerSecond >= f) return (bytesPerSecond / f).ToString("0.0", CultureInfo.InvariantCulture) + " " + unit;
        return $"{bytesPerSecond} B/s";
    }

    public static string Cap(long bytesPerSecond) => bytesPerSecond == 0 ? "unlimited" : Rate(bytesPerSecond);

    public static string Duration(TimeSpan t)
    {
        if (t < TimeSpan.Zero) t = TimeSpan.Zero;
        if (t.TotalSeconds < 60) return t.TotalSeconds.ToString(t.TotalSeconds < 10 ? "0.0" : "0", CultureInfo.InvariantCulture) + "s";
        if (t.TotalHours < 1) return $"{(int)t.TotalMinutes}m{t.Seconds:00}s";
        return $"{(int)t.TotalHours}h{t.Minutes:00}m";
    }

    public static string Ms(double milliseconds) => milliseconds.ToString(milliseconds < 10 ? "0.00" : "0.0", CultureInfo.InvariantCulture) + " ms";

    public static string Percent(long part, long whole) =>
        whole <= 0 ? "-" : (100.0 * part / whole).ToString("0.0", CultureInfo.InvariantCulture) + "%";

    public static string Ratio(double r) => r.ToString("0.000", CultureInfo.InvariantCulture);
}

/// <summary>Reading fields of a result (camelCase JSON) without a DTO per command.</summary>
public static class J
{
    public static string Str(JsonNode? n, string key) => n?[key]?.GetValue<string>() ?? "";
    public static long Long(JsonNode? n, string key) => n?[key] is JsonValue v ? ToLong(v) : 0;
    public static double Double(JsonNode? n, string key) => n?[key] is JsonValue v ? ToDouble(v) : double.NaN;

    // A parsed document holds JSON elements, one built here holds CLR values: read either.
    private static long ToLong(JsonValue v) =>
        v.TryGetValue<long>(out var l) ? l : v.TryGetValue<int>(out var i) ? i : v.TryGetValue<double>(out var d) ? (long)d : 0;

    private static double ToDouble(JsonValue v) =>
        v.TryGetValue<double>(out var d) ? d : v.TryGetValue<long>(out var l) ? l : v.TryGetValue<int>(out var i) ? i : double.NaN;
    public static bool Bool(JsonNode? n, string key) => n?[key] is JsonValue v && v.GetValue<bool>();
    public static JsonArray Arr(JsonNode? n, string key) => n?[key] as JsonArray ?? [];
}
