using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Reloc.Management;
using Spectre.Console;

namespace Reloc.Cli;

/// <summary><c>reloc relocate</c> and <c>reloc relocation list|status|rate|weight|handover|cancel</c>.</summary>
internal static class RelocationCommands
{
    public static Command CreateRelocate(CancellationToken stopping)
    {
        var name = new Argument<string>("NAME") { Description = "the disk to move" };
        var to = new Option<string>("--to") { Description = "the destination site", Required = true };
        var mode = new Option<string>("--mode")
        {
            Description = "postcopy: background copy after the handover; hybrid: pre-copy before it too",
            DefaultValueFactory = _ => "postcopy",
        };
        mode.AcceptOnlyFromAmong("postcopy", "hybrid");
        var rate = new Option<string?>("--rate") { Description = "cap on the background copy, e.g. 40MB/s, 320Mbit/s (default: none)" };
        var noPrefetch = new Option<bool>("--no-prefetch") { Description = "no background copy: blocks move only when the guest reads them" };
        var wait = new Option<bool>("--wait") { Description = "follow the relocation live until it is over" };
        var command = new Command("relocate", "Move a disk to another site while its guest keeps running") { name, to, mode, rate, noPrefetch, wait };
        command.SetAction((r, _) => CliApp.Execute(r, stopping, s => RelocateAsync(s, r.GetValue(name)!, r.GetValue(to)!, r.GetValue(mode)!,
            r.GetValue(rate), !r.GetValue(noPrefetch), r.GetValue(wait))));
        return command;
    }

    public static Command CreateGroup(CancellationToken stopping)
    {
        var group = new Command("relocation", "Relocations under way: list, status, rate, weight, handover, cancel");

        var list = new Command("list", "Relocations under way and their phases, then the admission queue's in its order (queued, with each one's place)");
        list.SetAction((r, _) => CliApp.Execute(r, stopping, ListAsync));
        group.Subcommands.Add(list);

        var statusName = new Argument<string>("NAME") { Description = "the relocating disk" };
        var watch = new Option<bool>("--watch") { Description = "follow it live until it is over" };
        var status = new Command("status", "Progress of one relocation: bytes local/total, rate, ETA, on-demand misses, phase") { statusName, watch };
        status.SetAction((r, _) => CliApp.Execute(r, stopping, s => StatusAsync(s, r.GetValue(statusName)!, r.GetValue(watch))));
        group.Subcommands.Add(status);

        var rateName = new Argument<string>("NAME") { Description = "the relocating disk" };
        var rateValue = new Argument<string>("RATE") { Description = "new cap on the background copy, e.g. 20MB/s, or 0 for none" };
        var rate = new Command("rate", "Change the background copy's rate cap of a relocation under way") { rateName, rateValue };
        rate.SetAction((r, _) => CliApp.Execute(r, stopping, s => RateAsync(s, r.GetValue(rateName)!, r.GetValue(rateValue)!)));
        group.Subcommands.Add(rate);

        var weightName = new Argument<string>("NAME") { Description = "the relocating disk" };
        var weightValue = new Argument<int>("WEIGHT") { Description = "its part of its link's budget against the others on that link, 1..1000 (default 1)" };
        var weight = new Command("weight", "Change a relocation's weight on a link with a budget (reloc link)") { weightName, weightValue };
        weight.SetAction((r, _) => CliApp.Execute(r, stopping, s => WeightAsync(s, r.GetValue(weightName)!, r.GetValue(weightValue))));
        group.Subcommands.Add(weight);

        var handoverName = new Argument<string>("NAME") { Description = "the relocating disk" };
        var handover = new Command("handover", "Hand ownership to the destination now (the guest must have stopped writing at the source)") { handoverName };
        handover.SetAction((r, _) => CliApp.Execute(r, stopping, s => HandoverAsync(s, r.GetValue(handoverName)!)));
        group.Subcommands.Add(handover);

        var cancelName = new Argument<string>("NAME") { Description = "the relocating disk" };
        var cancel = new Command("cancel", "Abort a relocation before its handover: the source keeps the disk, nothing is lost") { cancelName };
        cancel.SetAction((r, _) => CliApp.Execute(r, stopping, s => CancelAsync(s, r.GetValue(cancelName)!)));
        group.Subcommands.Add(cancel);
        return group;
    }

    private static async Task<int> RelocateAsync(Session s, string disk, string to, string mode, string? rateText, bool prefetch, bool wait)
    {
        long rate = rateText is null ? 0 : Args.Rate("--rate", rateText);
        var request = new RelocateRequest(disk, to, mode == "hybrid" ? RelocationMode.Hybrid : RelocationMode.Postcopy, rate, prefetch);
        var accepted = await s.CallAsync((c, ct) => c.RelocateAsync(request, ct));
        var what = $"relocating {disk} from {accepted.FromSite} to {accepted.ToSite} ({mode}, " +
                   $"{(prefetch ? $"background copy {Fmt.Cap(rate)}" : "no background copy")}, epoch {accepted.Epoch} → {accepted.Epoch + 1})";
        if (accepted.Warning is { } warning && !s.Out.Json) s.Out.Line("warning: " + warning);
        if (accepted.State == ManagementApi.QueuedPhase)
        {
            what = $"queued: {what}; place {accepted.Position} in the admission queue, it starts when a relocation at {accepted.FromSite} or {accepted.ToSite} ends";
            if (wait)
            {
                if (!s.Out.Json) s.Out.Line(what);
                await WaitQueuedAsync(s, disk);
                what = $"{disk} left the queue";
            }
        }
        if (!wait)
        {
            if (s.Out.Json) { s.Out.PrintJson(accepted, ManagementJson.Default.RelocationAccepted); return CliApp.Ok; }
            s.Out.Line($"{what}; follow it with: reloc relocation status {disk} --watch");
            return CliApp.Ok;
        }
        if (!s.Out.Json) s.Out.Line(what);
        var result = await RelocationWatch.RunAsync(s, disk, RelocationWatch.ViewFor(s.Out));
        bool moved = result.Disk?.Owner == accepted.ToSite;
        if (s.Out.Json)
        {
            s.Out.PrintJson(new JsonObject
            {
                ["accepted"] = JsonSerializer.SerializeToNode(accepted, ManagementJson.Default.RelocationAccepted),
                ["moved"] = moved, ["seconds"] = Math.Round(result.Elapsed.TotalSeconds, 3),
                ["lastStatus"] = Node(result.LastStatus), ["disk"] = Node(result.Disk),
            });
        }
        else PrintOutcome(s, disk, result, moved);
        if (!moved) throw new ManagementException($"the relocation of '{disk}' ended without moving it: {OwnerText(result.Disk)}");
        return CliApp.Ok;
    }

    /// <summary>Until the disk's relocation leaves the admission queue (polled once a second: nothing streams while it waits).</summary>
    private static async Task WaitQueuedAsync(Session s, string disk)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        while ((await s.CallAsync((c, ct) => c.RelocationsAsync(ct))).Any(r => r.Disk == disk && r.Phase == ManagementApi.QueuedPhase))
            await timer.WaitForNextTickAsync(s.Stopping);
    }

    private static JsonNode? Node(RelocationStatusView? status) => status is null ? null : JsonSerializer.SerializeToNode(status, ManagementJson.Default.RelocationStatusView);

    private static JsonNode? Node(DiskView? disk) => disk is null ? null : JsonSerializer.SerializeToNode(disk, ManagementJson.Default.DiskView);

    private static string OwnerText(DiskView? disk) =>
        disk is null ? "the disk is gone" : $"{disk.Owner} owns it at epoch {disk.Epoch}";

    private static void PrintOutcome(Session s, string disk, WatchResult result, bool moved)
    {
        var where = OwnerText(result.Disk);
        var last = result.Last;
        // The destination's counters, if the last look caught the disk complete (a short relocation may end between two looks).
        var figures = last is { HasProgress: true, Total: > 0 } && last.Local >= last.Total
            ? $"; fetched {Fmt.Bytes(last.Fetched)}, skipped {Fmt.Bytes(last.Skipped)}, {last.Misses} on-demand misses"
            : "";
        s.Out.Line(moved
            ? $"{disk}: relocated in {Fmt.Duration(result.Elapsed)}: {where}, {result.Disk?.NbdUri}{figures}"
            : $"{disk}: the relocation is over without moving it (cancelled?): {where}");
    }

    private static async Task<int> ListAsync(Session s)
    {
        var list = await s.CallAsync((c, ct) => c.RelocationsAsync(ct));
        if (s.Out.Json) { s.Out.PrintJson(list.ToList(), ManagementJson.Default.ListRelocationView); return CliApp.Ok; }
        if (list.Count == 0) { s.Out.Line("no relocations under way"); return CliApp.Ok; }
        var table = Output.Table("Disk", "From", "To", "Epoch", "Phase");
        foreach (var r in list)
            table.AddRow(r.Disk, r.FromSite, r.ToSite, $"{r.Epoch} → {r.Epoch + 1}", r.Phase == ManagementApi.QueuedPhase ? $"queued (place {r.Position})" : r.Phase);
        s.Out.Write(table);
        return CliApp.Ok;
    }

    private static async Task<int> StatusAsync(Session s, string disk, bool watch)
    {
        RelocationStatusView status;
        try { status = await s.CallAsync((c, ct) => c.RelocationAsync(disk, ct)); }
        catch (ManagementException ex) when (ex.Message.Contains("is not relocating", StringComparison.Ordinal))
        {
            // Say why: no such disk at all, or where it is now.
            var shown = await s.CallAsync((c, ct) => c.DiskAsync(disk, ct));
            throw new ManagementException($"disk '{disk}' is not relocating ({OwnerText(shown)})");
        }
        if (!watch)
        {
            if (s.Out.Json) { s.Out.PrintJson(status, ManagementJson.Default.RelocationStatusView); return CliApp.Ok; }
            var x = RelocationSample.FromStatus(status.Info, status.Progress, TimeSpan.Zero);
            s.Out.Line($"{disk}: {x.From} → {x.To}, phase {x.Phase} (epoch {x.Epoch} → {x.Epoch + 1})");
            s.Out.WriteFields(
            [
                ("local", $"{Fmt.Bytes(x.Local)} of {Fmt.Bytes(x.Total)} ({Fmt.Percent(x.Local, x.Total)}) at {x.To}"),
                ("rate", $"{Fmt.Rate(x.RateBps)}, ETA {(x.Eta is { } e ? Fmt.Duration(e) : "-")}{(x.PrefetchPaused ? " (background copy paused)" : "")}"),
                ("fetched", $"{Fmt.Bytes(x.Fetched)} ({x.Misses} on-demand misses), skipped {Fmt.Bytes(x.Skipped)} (holes, zeros), made local by whole-block writes at {x.To} {Fmt.Bytes(x.Written)}"),
                ("state", status.Progress.State),
            ]);
            return CliApp.Ok;
        }
        var result = await RelocationWatch.RunAsync(s, disk, RelocationWatch.ViewFor(s.Out));
        bool moved = result.Disk?.Owner == status.Info.ToSite;
        if (s.Out.Json)
            s.Out.PrintJson(new JsonObject
            {
                ["moved"] = moved, ["seconds"] = Math.Round(result.Elapsed.TotalSeconds, 3),
                ["lastStatus"] = Node(result.LastStatus ?? status), ["disk"] = Node(result.Disk),
            });
        else PrintOutcome(s, disk, result, moved);
        return CliApp.Ok;
    }

    private static async Task<int> RateAsync(Session s, string disk, string rateText)
    {
        long rate = Args.Rate("relocation rate", rateText);
        var info = await s.CallAsync((c, ct) => c.SetRateAsync(disk, rate, ct));
        if (s.Out.Json) { s.Out.PrintJson(info, ManagementJson.Default.RelocationView); return CliApp.Ok; }
        s.Out.Line($"{disk}: background copy capped at {Fmt.Cap(rate)} (phase {info.Phase})");
        return CliApp.Ok;
    }

    private static async Task<int> WeightAsync(Session s, string disk, int weight)
    {
        var info = await s.CallAsync((c, ct) => c.SetWeightAsync(disk, weight, ct));
        if (s.Out.Json) { s.Out.PrintJson(info, ManagementJson.Default.RelocationView); return CliApp.Ok; }
        s.Out.Line($"{disk}: weight {weight} on {info.FromSite} → {info.ToSite} (phase {info.Phase})");
        return CliApp.Ok;
    }

    private static async Task<int> HandoverAsync(Session s, string disk)
    {
        var info = await s.CallAsync((c, ct) => c.HandoverAsync(disk, ct));
        if (s.Out.Json) { s.Out.PrintJson(info, ManagementJson.Default.RelocationView); return CliApp.Ok; }
        s.Out.Line($"{disk}: handover to {info.ToSite} begun (phase {info.Phase}, epoch {info.Epoch} → {info.Epoch + 1})");
        return CliApp.Ok;
    }

    private static async Task<int> CancelAsync(Session s, string disk)
    {
        var cancelled = await s.CallAsync((c, ct) => c.CancelAsync(disk, ct));
        if (s.Out.Json) { s.Out.PrintJson(cancelled, ManagementJson.Default.RelocationCancelled); return CliApp.Ok; }
        DiskView? shown = null;
        try { shown = await s.CallAsync((c, ct) => c.DiskAsync(disk, ct)); }
        catch (ManagementException) { }
        s.Out.Line($"{disk}: relocation cancelled; {OwnerText(shown)}");
        return CliApp.Ok;
    }
}
