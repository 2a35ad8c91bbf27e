using System.CommandLine;
using System.Text.Json.Nodes;
using Reloc.Management;
using Reloc.Wan;
using Spectre.Console;

namespace Reloc.Cli;

/// <summary><c>reloc relocate</c> and <c>reloc relocation list|status|rate|handover|cancel</c>.</summary>
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
        var group = new Command("relocation", "Relocations under way: list, status, rate, handover, cancel");

        var list = new Command("list", "Relocations under way and their phases");
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

        var handoverName = new Argument<string>("NAME") { Description = "the relocating disk" };
        var handover = new Command("handover", "Hand ownership to the destination now (the guest must have stopped writing at the source)") { handoverName };
        handover.SetAction((r, _) => CliApp.Execute(r, stopping, s => SimpleAsync(s, "relocation.handover", r.GetValue(handoverName)!)));
        group.Subcommands.Add(handover);

        var cancelName = new Argument<string>("NAME") { Description = "the relocating disk" };
        var cancel = new Command("cancel", "Abort a relocation before its handover: the source keeps the disk, nothing is lost") { cancelName };
        cancel.SetAction((r, _) => CliApp.Execute(r, stopping, s => SimpleAsync(s, "relocation.cancel", r.GetValue(cancelName)!)));
        group.Subcommands.Add(cancel);
        return group;
    }

    /// <summary>Client-side check of a rate argument (0 = no cap).</summary>
    public static long ParseRate(string what, string text)
    {
        try { return Units.ParseRate(text); }
        catch (FormatException ex) { throw new UsageException($"{what}: {ex.Message}"); }
    }

    private static async Task<int> RelocateAsync(Session s, string disk, string to, string mode, string? rateText, bool prefetch, bool wait)
    {
        long rate = rateText is null ? 0 : ParseRate("--rate", rateText);
        var accepted = await s.CallAsync("relocate", new JsonObject
        {
            ["disk"] = disk, ["to"] = to, ["mode"] = mode, ["rate"] = rate, ["prefetch"] = prefetch,
        });
        long epoch = J.Long(accepted, "epoch");
        if (!wait)
        {
            if (s.Out.Json) { s.Out.PrintJson(accepted); return CliApp.Ok; }
            s.Out.Line($"relocating {disk} from {J.Str(accepted, "fromSite")} to {J.Str(accepted, "toSite")} ({mode}, " +
                       $"{(prefetch ? $"background copy {Fmt.Cap(rate)}" : "no background copy")}, epoch {epoch} → {epoch + 1}); " +
                       $"follow it with: reloc relocation status {disk} --watch");
            return CliApp.Ok;
        }
        if (!s.Out.Json)
            s.Out.Line($"relocating {disk} from {J.Str(accepted, "fromSite")} to {J.Str(accepted, "toSite")} ({mode}, " +
                       $"{(prefetch ? $"background copy {Fmt.Cap(rate)}" : "no background copy")}, epoch {epoch} → {epoch + 1})");
        var result = await RelocationWatch.RunAsync(s, disk, RelocationWatch.ViewFor(s.Out));
        bool moved = J.Str(result.Disk, "owner") == J.Str(accepted, "toSite");
        if (s.Out.Json)
        {
            s.Out.PrintJson(new JsonObject
            {
                ["accepted"] = accepted?.DeepClone(), ["moved"] = moved, ["seconds"] = Math.Round(result.Elapsed.TotalSeconds, 3),
                ["lastStatus"] = result.LastStatus?.DeepClone(), ["disk"] = result.Disk?.DeepClone(),
            });
        }
        else PrintOutcome(s, disk, result, moved);
        if (!moved) throw new ManagementException($"the relocation of '{disk}' ended without moving it: {OwnerText(result.Disk)}");
        return CliApp.Ok;
    }

    private static string OwnerText(JsonNode? disk) =>
        disk is null ? "the disk is gone" : $"{J.Str(disk, "owner")} owns it at epoch {J.Long(disk, "epoch")}";

    private static void PrintOutcome(Session s, string disk, WatchResult result, bool moved)
    {
        var where = OwnerText(result.Disk);
        var last = result.Last;
        // The destination's counters, if the last look caught the disk complete (a short relocation may end between two looks).
        var figures = last is { HasProgress: true, Total: > 0 } && last.Local >= last.Total
            ? $"; fetched {Fmt.Bytes(last.Fetched)}, skipped {Fmt.Bytes(last.Skipped)}, {last.Misses} on-demand misses"
            : "";
        s.Out.Line(moved
            ? $"{disk}: relocated in {Fmt.Duration(result.Elapsed)}: {where}, {J.Str(result.Disk, "nbdUri")}{figures}"
            : $"{disk}: the relocation is over without moving it (cancelled?): {where}");
    }

    private static async Task<int> ListAsync(Session s)
    {
        var result = await s.CallAsync("relocation.list");
        if (s.Out.Json) { s.Out.PrintJson(result); return CliApp.Ok; }
        var list = result as JsonArray ?? [];
        if (list.Count == 0) { s.Out.Line("no relocations under way"); return CliApp.Ok; }
        var table = Output.Table("Disk", "From", "To", "Epoch", "Phase");
        foreach (var r in list)
            table.AddRow(J.Str(r, "disk"), J.Str(r, "fromSite"), J.Str(r, "toSite"), $"{J.Long(r, "epoch")} → {J.Long(r, "epoch") + 1}", J.Str(r, "phase"));
        s.Out.Write(table);
        return CliApp.Ok;
    }

    private static async Task<int> StatusAsync(Session s, string disk, bool watch)
    {
        JsonNode? status;
        try { status = await s.CallAsync("relocation.status", new JsonObject { ["disk"] = disk }); }
        catch (ManagementException ex) when (ex.Message.Contains("is not relocating", StringComparison.Ordinal))
        {
            // Say why: no such disk at all, or where it is now.
            var shown = await s.CallAsync("disk.show", new JsonObject { ["name"] = disk });
            throw new ManagementException($"disk '{disk}' is not relocating ({OwnerText(shown)})");
        }
        if (!watch)
        {
            if (s.Out.Json) { s.Out.PrintJson(status); return CliApp.Ok; }
            var x = RelocationSample.FromStatus(status, TimeSpan.Zero);
            s.Out.Line($"{disk}: {x.From} → {x.To}, phase {x.Phase} (epoch {x.Epoch} → {x.Epoch + 1})");
            s.Out.WriteFields(
            [
                ("local", $"{Fmt.Bytes(x.Local)} of {Fmt.Bytes(x.Total)} ({Fmt.Percent(x.Local, x.Total)}) at {x.To}"),
                ("rate", $"{Fmt.Rate(x.RateBps)}, ETA {(x.Eta is { } e ? Fmt.Duration(e) : "-")}{(x.PrefetchPaused ? " (background copy paused)" : "")}"),
                ("fetched", $"{Fmt.Bytes(x.Fetched)} ({x.Misses} on-demand misses), skipped {Fmt.Bytes(x.Skipped)} (holes, zeros), made local by whole-block writes at {x.To} {Fmt.Bytes(x.Written)}"),
                ("state", J.Str(status?["progress"], "state")),
            ]);
            return CliApp.Ok;
        }
        var result = await RelocationWatch.RunAsync(s, disk, RelocationWatch.ViewFor(s.Out));
        var to = J.Str(status?["info"], "toSite");
        bool moved = J.Str(result.Disk, "owner") == to;
        if (s.Out.Json)
            s.Out.PrintJson(new JsonObject
            {
                ["moved"] = moved, ["seconds"] = Math.Round(result.Elapsed.TotalSeconds, 3),
                ["lastStatus"] = (result.LastStatus ?? status)?.DeepClone(), ["disk"] = result.Disk?.DeepClone(),
            });
        else PrintOutcome(s, disk, result, moved);
        return CliApp.Ok;
    }

    private static async Task<int> RateAsync(Session s, string disk, string rateText)
    {
        long rate = ParseRate("relocation rate", rateText);
        var info = await s.CallAsync("relocation.rate", new JsonObject { ["disk"] = disk, ["rate"] = rate });
        if (s.Out.Json) { s.Out.PrintJson(info); return CliApp.Ok; }
        s.Out.Line($"{disk}: background copy capped at {Fmt.Cap(rate)} (phase {J.Str(info, "phase")})");
        return CliApp.Ok;
    }

    private static async Task<int> SimpleAsync(Session s, string command, string disk)
    {
        var result = await s.CallAsync(command, new JsonObject { ["disk"] = disk });
        if (s.Out.Json) { s.Out.PrintJson(result); return CliApp.Ok; }
        if (command == "relocation.handover")
            s.Out.Line($"{disk}: handover to {J.Str(result, "toSite")} begun (phase {J.Str(result, "phase")}, epoch {J.Long(result, "epoch")} → {J.Long(result, "epoch") + 1})");
        else
        {
            JsonNode? shown = null;
            try { shown = await s.CallAsync("disk.show", new JsonObject { ["name"] = disk }); }
            catch (ManagementException) { }
            s.Out.Line($"{disk}: relocation cancelled; {OwnerText(shown)}");
        }
        return CliApp.Ok;
    }
}
