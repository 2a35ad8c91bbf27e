using System.CommandLine;
using Reloc.Management;
using Spectre.Console;

namespace Reloc.Cli;

/// <summary><c>reloc site drain</c>: relocate every disk of a site through the admission queue.</summary>
internal static class SiteCommands
{
    public static Command Create(CancellationToken stopping)
    {
        var group = new Command("site", "Whole sites: drain one into another");
        var site = new Argument<string>("SITE") { Description = "the site to empty" };
        var to = new Option<string>("--to") { Description = "the destination site (not SITE itself; it must be up)", Required = true };
        var mode = new Option<string>("--mode")
        {
            Description = "postcopy: background copy after the handover; hybrid: pre-copy before it too",
            DefaultValueFactory = _ => "postcopy",
        };
        mode.AcceptOnlyFromAmong("postcopy", "hybrid");
        var rate = new Option<string?>("--rate") { Description = "cap on each relocation's background copy, e.g. 40MB/s (default: none; link budgets still apply)" };
        var noPrefetch = new Option<bool>("--no-prefetch") { Description = "no background copy: blocks move only when the guests read them" };
        var wait = new Option<bool>("--wait") { Description = "follow the drain until every relocation it started is over: done, running and queued counts" };
        var drain = new Command("drain",
            "Relocate every disk SITE owns now to --to. Each goes through the admission queue " +
            "(reloc.coordinator.max-concurrent-relocations-per-site): over the limit it waits, queued, and starts when a slot frees. " +
            "Disks already relocating or queued are skipped (listed with why). Disks created at SITE after the drain began are " +
            "not included: drain again to move them. Cancel one with reloc relocation cancel NAME.")
            { site, to, mode, rate, noPrefetch, wait };
        drain.SetAction((r, _) => CliApp.Execute(r, stopping, s => DrainAsync(s, r.GetValue(site)!, r.GetValue(to)!, r.GetValue(mode)!,
            r.GetValue(rate), !r.GetValue(noPrefetch), r.GetValue(wait))));
        group.Subcommands.Add(drain);
        return group;
    }

    private static async Task<int> DrainAsync(Session s, string site, string to, string mode, string? rateText, bool prefetch, bool wait)
    {
        long rate = rateText is null ? 0 : Args.Rate("--rate", rateText);
        if (site == to) throw new UsageException($"cannot drain {site} into itself: --to names another site");
        var request = new DrainRequest(to, mode == "hybrid" ? RelocationMode.Hybrid : RelocationMode.Postcopy, rate, prefetch);
        var drained = await s.CallAsync((c, ct) => c.DrainAsync(site, request, ct));
        if (s.Out.Json && !wait) { s.Out.PrintJson(drained, ManagementJson.Default.DrainView); return CliApp.Ok; }
        if (!s.Out.Json)
        {
            s.Out.Line($"draining {site} into {to}: {drained.Relocations.Count} disk{(drained.Relocations.Count == 1 ? "" : "s")}, " +
                       $"{drained.Relocations.Count(r => r.Phase == ManagementApi.QueuedPhase)} queued, {drained.Skipped.Count} skipped");
            if (drained.Relocations.Count > 0)
            {
                var table = Output.Table("Disk", "State");
                foreach (var r in drained.Relocations)
                    table.AddRow(r.Disk, r.Phase == ManagementApi.QueuedPhase ? $"queued (place {r.Position})" : r.Phase);
                s.Out.Write(table);
            }
            foreach (var k in drained.Skipped) s.Out.Line($"skipped {k.Disk}: {k.Reason}");
        }
        if (!wait) return CliApp.Ok;
        var counts = await FollowAsync(s, drained);
        if (s.Out.Json) s.Out.PrintJson(drained, ManagementJson.Default.DrainView);
        if (counts.Other > 0)
            throw new ManagementException($"{counts.Other} of the drain's relocations ended without moving their disk to {to} (cancelled or failed): see reloc events");
        return CliApp.Ok;
    }

    private sealed record Counts(int Done, int Running, int Queued, int Other)
    {
        public override string ToString() => $"done {Done}, running {Running}, queued {Queued}" + (Other > 0 ? $", not moved {Other}" : "");
    }

    /// <summary>Polls the relocations and the disks (once a second) until none of the drain's is running or queued; prints
    /// the counts whenever they change.</summary>
    private static async Task<Counts> FollowAsync(Session s, DrainView drained)
    {
        var disks = drained.Relocations.Select(r => r.Disk).ToHashSet(StringComparer.Ordinal);
        Counts? last = null;
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        while (true)
        {
            var relocations = (await s.CallAsync((c, ct) => c.RelocationsAsync(ct))).Where(r => disks.Contains(r.Disk)).ToList();
            var owners = (await s.CallAsync((c, ct) => c.DisksAsync(ct))).Disks
                .Where(d => disks.Contains(d.Name) && d.Phase == "owned").ToDictionary(d => d.Name, d => d.Site, StringComparer.Ordinal);
            int queued = relocations.Count(r => r.Phase == ManagementApi.QueuedPhase), running = relocations.Count - queued;
            var over = disks.Where(d => relocations.All(r => r.Disk != d)).ToList();
            int done = over.Count(d => owners.GetValueOrDefault(d) == drained.ToSite);
            var counts = new Counts(done, running, queued, over.Count - done);
            if (counts != last && !s.Out.Json) s.Out.Line($"{DateTime.Now:HH:mm:ss} {counts}");
            last = counts;
            if (running + queued == 0) return counts;
            await timer.WaitForNextTickAsync(s.Stopping);
        }
    }
}
