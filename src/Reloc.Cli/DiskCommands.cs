using System.CommandLine;
using Reloc.Management;
using Spectre.Console;

namespace Reloc.Cli;

/// <summary><c>reloc disk create|list|show|delete</c>.</summary>
internal static class DiskCommands
{
    public static Command Create(CancellationToken stopping)
    {
        var group = new Command("disk", "Virtual disks: create, list, show, delete");

        var name = new Argument<string>("NAME") { Description = "the disk's name (also its NBD export name)" };
        var site = new Option<string?>("--site") { Description = "the site that hosts the new disk (default: the site of the node asked)" };
        var size = new Option<string?>("--size") { Description = "size, e.g. 10GiB, 512MiB, 1.5GB (required unless --from gives it)" };
        var from = new Option<string?>("--from") { Description = "fill it from an image FILE (read by the site's node) or import it from nbd://HOST:PORT/EXPORT" };
        var create = new Command("create", "Create a disk: empty (sparse), from an image file, or imported from an NBD export") { name, site, size, from };
        create.SetAction((r, _) => CliApp.Execute(r, stopping, s => CreateAsync(s, r.GetValue(name)!, r.GetValue(site), r.GetValue(size), r.GetValue(from))));
        group.Subcommands.Add(create);

        var list = new Command("list", "Every disk of every site (a relocating disk shows at both of its sites)");
        list.SetAction((r, _) => CliApp.Execute(r, stopping, ListAsync));
        group.Subcommands.Add(list);

        var showName = new Argument<string>("NAME") { Description = "the disk" };
        var show = new Command("show", "One disk: owner site, epoch, phase, local share, the NBD URI to give a hypervisor") { showName };
        show.SetAction((r, _) => CliApp.Execute(r, stopping, s => ShowAsync(s, r.GetValue(showName)!)));
        group.Subcommands.Add(show);

        var historyName = new Argument<string>("NAME") { Description = "the disk" };
        var history = new Command("history", "Every relocation of a disk this node recorded: when, from, to, mode, trigger, duration, bytes, misses, outcome") { historyName };
        history.SetAction((r, _) => CliApp.Execute(r, stopping, s => HistoryAsync(s, r.GetValue(historyName)!)));
        group.Subcommands.Add(history);

        var deleteName = new Argument<string>("NAME") { Description = "the disk" };
        var force = new Option<bool>("--force") { Description = "delete even while guests are connected to it (their connections then fail every request)" };
        var delete = new Command("delete", "Delete a disk and its image (not while it relocates; not while guests are connected, unless --force)") { deleteName, force };
        delete.SetAction((r, _) => CliApp.Execute(r, stopping, s => DeleteAsync(s, r.GetValue(deleteName)!, r.GetValue(force))));
        group.Subcommands.Add(delete);
        return group;
    }

    private static async Task<int> CreateAsync(Session s, string name, string? site, string? sizeText, string? from)
    {
        if (DiskName.Validate(name) is { } badName) throw new UsageException("disk create: " + badName);
        long? size = sizeText is null ? null : Args.Size("--size", sizeText);
        if (size is { } bytes && DiskSize.Validate(bytes) is { } badSize) throw new UsageException("disk create: " + badSize);
        if (size is null && from is null) throw new UsageException("disk create: give --size (e.g. --size 10GiB) or --from FILE|nbd://HOST:PORT/EXPORT");
        if (from is not null && !from.Contains("://", StringComparison.Ordinal)) from = Path.GetFullPath(from); // the node's working directory is not ours
        site ??= await SiteOfNodeAsync(s);
        var d = await s.CallAsync((c, ct) => c.CreateDiskAsync(new CreateDiskRequest(name, site, size ?? 0, from), ct));
        if (s.Out.Json) { s.Out.PrintJson(d, ManagementJson.Default.DiskCopy); return CliApp.Ok; }
        s.Out.Line($"created {d.Name} on {d.Site}: {Fmt.Bytes(d.Size)}, epoch {d.Epoch}, {d.NbdUri}");
        return CliApp.Ok;
    }

    /// <summary>The site of the node the console talks to.</summary>
    private static async Task<string> SiteOfNodeAsync(Session s)
    {
        var cluster = await s.CallAsync((c, ct) => c.ClusterAsync(ct));
        var site = cluster.Members.Where(m => m.Address == cluster.Self).Select(m => m.Site).FirstOrDefault();
        return string.IsNullOrEmpty(site) ? throw new UsageException($"disk create: give --site (the node at {s.Node} has no site yet)") : site;
    }

    private static async Task<int> ListAsync(Session s)
    {
        var result = await s.CallAsync((c, ct) => c.DisksAsync(ct));
        if (s.Out.Json) { s.Out.PrintJson(result, ManagementJson.Default.DiskListView); return CliApp.Ok; }
        if (result.Disks.Count == 0) s.Out.Line("no disks");
        else
        {
            var table = Output.Table("Name", "Site", "Phase", "Epoch", "Size", "Local", "Clients", "NBD URI");
            foreach (var d in result.Disks)
                table.AddRow(d.Name, d.Site, Markup.Escape(Phase(d)), d.Epoch.ToString(),
                    Fmt.Bytes(d.Size), Fmt.Percent(d.LocalBytes, d.Size), d.Clients.ToString(), Markup.Escape(d.NbdUri));
            s.Out.Write(table);
        }
        if (result.UnreachableSites.Count > 0) s.Out.Line($"sites not answering (their disks are missing above): {string.Join(", ", result.UnreachableSites)}");
        return CliApp.Ok;
    }

    /// <summary>A copy's phase, with the other site of its relocation and whether it takes writes.</summary>
    private static string Phase(DiskCopy d)
    {
        var text = d.Phase switch
        {
            "outgoing" => $"outgoing → {d.Peer}",
            "fenced" => $"fenced → {d.Peer}",
            "incoming" when d.Peer.Length > 0 => $"incoming ← {d.Peer}",
            _ => d.Phase,
        };
        if (d.Phase == "incoming" && d.Writable) text += " (owner)";
        return text;
    }

    private static async Task<int> ShowAsync(Session s, string name)
    {
        var d = await s.CallAsync((c, ct) => c.DiskAsync(name, ct));
        if (s.Out.Json) { s.Out.PrintJson(d, ManagementJson.Default.DiskView); return CliApp.Ok; }
        var rows = new List<(string, string)>
        {
            ("owner", $"{d.Owner} (epoch {d.Epoch}, {d.Phase})"),
            ("size", $"{Fmt.Bytes(d.Size)} ({d.Size} bytes)"),
            ("local", $"{Fmt.Bytes(d.LocalBytes)} of {Fmt.Bytes(d.Size)} ({Fmt.Percent(d.LocalBytes, d.Size)}) at the owner"),
            ("NBD URI", $"{d.NbdUri}  (for the hypervisor, e.g. -drive file={d.NbdUri},format=raw)"),
        };
        if (d.Relocation is { } r)
            rows.Add(("relocation", $"{r.FromSite} → {r.ToSite}, phase {r.Phase} (epoch {r.Epoch} → {r.Epoch + 1})"));
        foreach (var c in d.Copies)
            rows.Add(("copy at " + c.Site, $"{Phase(c)}, epoch {c.Epoch}, {Fmt.Percent(c.LocalBytes, c.Size)} local, " +
                                           $"{c.Clients} client(s){(c.Writable ? ", takes writes" : "")}"));
        s.Out.Line(d.Name);
        s.Out.WriteFields(rows);
        return CliApp.Ok;
    }

    private static async Task<int> HistoryAsync(Session s, string name)
    {
        var h = await s.CallAsync((c, ct) => c.DiskHistoryAsync(name, ct));
        if (s.Out.Json) { s.Out.PrintJson(h, ManagementJson.Default.DiskHistoryView); return CliApp.Ok; }
        if (h.Relocations.Count == 0) { s.Out.Line($"no relocations of {name} recorded at this node"); return CliApp.Ok; }
        var table = Output.Table("Started", "From", "To", "Mode", "Trigger", "Duration", "Fetched", "Skipped", "Misses", "Outcome");
        foreach (var r in h.Relocations)
            table.AddRow(r.Started.ToLocalTime().ToString("yyyy-MM-dd HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture), r.FromSite, r.ToSite,
                r.Mode ?? "-", r.Trigger ?? "-", EventCommands.Duration(r.DurationSeconds), r.FetchedBytes is { } f ? Fmt.Bytes(f) : "-",
                r.SkippedBytes is { } k ? Fmt.Bytes(k) : "-", r.Misses?.ToString() ?? "-", r.Outcome + (r.Outcome == "in-progress" && r.Phase is { } p ? $" ({p})" : ""));
        s.Out.Write(table);
        return CliApp.Ok;
    }

    private static async Task<int> DeleteAsync(Session s, string name, bool force)
    {
        var result = await s.CallAsync((c, ct) => c.DeleteDiskAsync(name, ct, force));
        if (s.Out.Json) { s.Out.PrintJson(result, ManagementJson.Default.DiskDeleted); return CliApp.Ok; }
        s.Out.Line($"deleted {result.Name} (was on {result.Site})"
            + (result.ClientsCut > 0 ? $"; {result.ClientsCut} guest client(s) were cut off: their requests fail from now on" : ""));
        return CliApp.Ok;
    }
}
