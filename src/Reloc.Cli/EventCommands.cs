using System.CommandLine;
using System.Globalization;
using Reloc.Management;

namespace Reloc.Cli;

/// <summary><c>reloc events [--follow]</c>: the relocation lifecycle events the node recorded, and new ones live.</summary>
internal static class EventCommands
{
    public static Command Create(CancellationToken stopping)
    {
        var follow = new Option<bool>("--follow", "-f") { Description = "keep printing new events as they happen (until Ctrl-C)" };
        var limit = new Option<int>("--limit") { Description = "at most this many recorded events (the newest)", DefaultValueFactory = _ => 50 };
        var command = new Command("events", "Relocation lifecycle events (started, handover, completed, cancelled, ...), oldest first") { follow, limit };
        command.SetAction((r, _) => CliApp.Execute(r, stopping, s => RunAsync(s, r.GetValue(follow), r.GetValue(limit))));
        return command;
    }

    private static async Task<int> RunAsync(Session s, bool follow, int limit)
    {
        if (limit is < 1 or > 10_000) throw new UsageException($"--limit {limit}: expected 1..10000");
        var shown = (await s.CallAsync((c, ct) => c.EventsAsync(null, limit, newest: true, ct))).Events;
        foreach (var e in shown) Print(s, e);
        if (!follow)
        {
            if (shown.Count == 0 && !s.Out.Json) s.Out.Line("no relocation events recorded at this node");
            return CliApp.Ok;
        }
        // Then every later one, with no gap: the stream starts after the last one shown (after 0: from the first).
        long last = shown.Count > 0 ? shown[^1].Seq : 0;
        try
        {
            await foreach (var e in s.CallStream(c => c.FollowEventsAsync(last, s.Stopping)))
                Print(s, e);
        }
        catch (OperationCanceledException) when (s.Stopping.IsCancellationRequested) { return CliApp.Ok; } // Ctrl-C ends a follow
        return CliApp.Ok;
    }

    /// <summary>One line per event (one JSON document per line with --json, for scripts).</summary>
    private static void Print(Session s, RelocationEventView e)
    {
        if (s.Out.Json) { s.Out.JsonLine(e, ManagementJson.Default.RelocationEventView); return; }
        var what = e.Kind switch
        {
            "started" => $"started ({e.Mode ?? "?"}, epoch {e.Epoch})",
            "handover" => $"handover ({e.Trigger ?? "?"}) at epoch {e.Epoch + 1}",
            "completed" => $"completed in {Duration(e.DurationSeconds)}: fetched {Fmt.Bytes(e.FetchedBytes ?? 0)}, skipped {Fmt.Bytes(e.SkippedBytes ?? 0)}, {e.Misses ?? 0} misses",
            "cancelled" => $"cancelled after {Duration(e.DurationSeconds)}",
            "phase-changed" => $"→ {e.Phase}",
            _ => e.Kind + (e.Phase is null ? "" : $" ({e.Phase})"),
        };
        s.Out.Line($"{e.Time.ToLocalTime().ToString("yyyy-MM-dd HH:mm:ss.fff", CultureInfo.InvariantCulture)}  #{e.Seq,-5} {e.Disk} {e.FromSite}→{e.ToSite}  {what}" +
                   (e.Detail is { Length: > 0 } d ? $"  ({d})" : ""));
    }

    public static string Duration(double? seconds) => seconds is { } x ? Fmt.Duration(TimeSpan.FromSeconds(x)) : "-";
}
