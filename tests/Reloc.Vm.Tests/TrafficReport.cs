using System.Text;

namespace Reloc.Vm.Tests;

/// <summary>Human-readable summaries of what the NBD taps saw, for test output and failure messages.</summary>
public static class TrafficReport
{
    /// <summary>Per connection: export, lifetime, requests per command with latency, and every error.</summary>
    public static string Connections(params NbdTap[] taps)
    {
        var sb = new StringBuilder();
        foreach (var tap in taps)
        {
            foreach (var c in tap.Connections)
            {
                var requests = c.Requests;
                sb.AppendLine($"[{tap.Name} #{c.Id}] export '{c.Export}': opened {c.OpenedAt:F3}s, transmission {(double.IsNaN(c.TransmissionAt) ? "-" : c.TransmissionAt.ToString("F3") + "s")}, " +
                              $"closed {(double.IsNaN(c.ClosedAt) ? "-" : c.ClosedAt.ToString("F3") + "s")} {c.CloseReason}" +
                              (c.Tls ? $"; TLS from {c.TlsAt:F3}s, {c.BytesToServer / 1024} KiB to the server, {c.BytesToClient / 1024} KiB back (encrypted: not parsed)" : ""));
                foreach (var g in requests.GroupBy(r => r.Command).OrderBy(g => g.Key))
                {
                    var done = g.Key == NbdCommand.Disc ? [] : g.Where(r => !double.IsNaN(r.RepliedAt)).ToList();
                    var lat = done.Select(r => r.LatencyMs).Order().ToList();
                    sb.AppendLine($"    {g.Key,-12} {g.Count(),7} requests, {g.Sum(r => (long)r.Length) / 1024,8} KiB, first {g.First().SentAt:F3}s last {g.Last().SentAt:F3}s" +
                                  (lat.Count > 0 ? $", latency median {lat[lat.Count / 2]:F2} ms p99 {lat[(int)(lat.Count * 0.99)]:F2} ms max {lat[^1]:F1} ms" : "") +
                                  (g.Key != NbdCommand.Disc && done.Count < g.Count() ? $", {g.Count() - done.Count} unanswered" : ""));
                }
                foreach (var r in requests.Where(r => r.Error != 0).Take(20))
                    sb.AppendLine($"    ERROR {r.SentAt:F3}s {r.Command} {r.Offset}+{r.Length}: {TapRequest.ErrorName(r.Error)} after {r.LatencyMs:F1} ms");
                foreach (var (at, what) in c.Notes) sb.AppendLine($"    note {at:F3}s {what}");
            }
        }
        return sb.ToString();
    }

    /// <summary>Every request between two times, all taps merged in time order, runs of the same command on the
    /// same connection with the same outcome folded into one line.</summary>
    public static string Sequence(double from, double to, int maxLines, params NbdTap[] taps) => Sequence(from, to, maxLines, fold: true, taps);

    public static string Sequence(double from, double to, int maxLines, bool fold, params NbdTap[] taps)
    {
        var all = taps.SelectMany(t => t.Connections.SelectMany(c => c.Requests.Select(r => (Tap: t.Name, Export: c.Export, R: r))))
            .Where(x => x.R.SentAt >= from && x.R.SentAt <= to)
            .OrderBy(x => x.R.SentAt)
            .ToList();
        var sb = new StringBuilder();
        int lines = 0, i = 0;
        while (i < all.Count)
        {
            var first = all[i];
            int j = i;
            while (fold && j + 1 < all.Count && all[j + 1].Tap == first.Tap && all[j + 1].R.Connection == first.R.Connection
                   && all[j + 1].R.Command == first.R.Command && all[j + 1].R.Error == first.R.Error)
                j++;
            var run = all.GetRange(i, j - i + 1);
            var maxLat = run.Max(x => double.IsNaN(x.R.LatencyMs) ? -1 : x.R.LatencyMs);
            var unanswered = run.Count(x => double.IsNaN(x.R.RepliedAt));
            if (lines++ < maxLines)
                sb.AppendLine($"{first.R.SentAt,8:F3}s{(run.Count > 1 ? $"-{run[^1].R.SentAt:F3}s" : "")} [{first.Tap} #{first.R.Connection} {first.Export}] " +
                              $"{first.R.Command}{(run.Count > 1 ? $" x{run.Count}" : $" {first.R.Offset}+{first.R.Length}{(first.R.Fua ? " FUA" : "")}")} " +
                              $"{TapRequest.ErrorName(first.R.Error)}, max latency {maxLat:F1} ms{(unanswered > 0 ? $", {unanswered} unanswered" : "")}");
            i = j + 1;
        }
        if (lines > maxLines) sb.AppendLine($"... {lines - maxLines} more runs");
        return sb.ToString();
    }

    /// <summary>The slowest answered requests (Disc excluded), slowest first.</summary>
    public static string Slowest(int count, params NbdTap[] taps)
    {
        var sb = new StringBuilder();
        foreach (var x in taps.SelectMany(t => t.Connections.SelectMany(c => c.Requests.Select(r => (Tap: t.Name, c.Export, R: r))))
                     .Where(x => x.R.Command != NbdCommand.Disc && !double.IsNaN(x.R.RepliedAt))
                     .OrderByDescending(x => x.R.LatencyMs).Take(count))
            sb.AppendLine($"{x.R.SentAt,8:F3}s [{x.Tap} #{x.R.Connection} {x.Export}] {x.R.Command} {x.R.Offset}+{x.R.Length}: " +
                          $"{TapRequest.ErrorName(x.R.Error)} after {x.R.LatencyMs:F1} ms");
        return sb.ToString();
    }
}
