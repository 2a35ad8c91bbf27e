using System.CommandLine;
using System.Text.Json.Nodes;
using Reloc.Wan;
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

        var deleteName = new Argument<string>("NAME") { Description = "the disk" };
        var delete = new Command("delete", "Delete a disk (not while it relocates) and its image") { deleteName };
        delete.SetAction((r, _) => CliApp.Execute(r, stopping, s => DeleteAsync(s, r.GetValue(deleteName)!)));
        group.Subcommands.Add(delete);
        return group;
    }

    /// <summary>Client-side check of a size argument: nothing is sent when it is wrong.</summary>
    public static long ParseSize(string option, string text)
    {
        long bytes;
        try { bytes = Units.ParseSize(text); }
        catch (FormatException ex) { throw new UsageException($"{option}: {ex.Message}"); }
        if (bytes <= 0) throw new UsageException($"{option}: '{text}' is not a size: it must be above 0");
        return bytes;
    }

    private static async Task<int> CreateAsync(Session s, string name, string? site, string? sizeText, string? from)
    {
        long? size = sizeText is null ? null : ParseSize("--size", sizeText);
        if (size is null && from is null) throw new UsageException("disk create: give --size (e.g. --size 10GiB) or --from FILE|nbd://HOST:PORT/EXPORT");
        if (from is not null && !from.Contains("://", StringComparison.Ordinal)) from = Path.GetFullPath(from); // the node's working directory is not ours
        site ??= await SiteOfNodeAsync(s);
        var args = new JsonObject { ["name"] = name, ["site"] = site };
        if (size is { } bytes) args["size"] = bytes;
        if (from is not null) args["from"] = from;
        var result = await s.CallAsync("disk.create", args);
        if (s.Out.Json) { s.Out.PrintJson(result); return CliApp.Ok; }
        s.Out.Line($"created {J.Str(result, "name")} on {J.Str(result, "site")}: {Fmt.Bytes(J.Long(result, "size"))}, epoch {J.Long(result, "epoch")}, {J.Str(result, "nbdUri")}");
        return CliApp.Ok;
    }

    /// <summary>The site of the node the console talks to.</summary>
    private static async Task<string> SiteOfNodeAsync(Session s)
    {
        var cluster = await s.CallAsync("cluster.show");
        var self = J.Str(cluster, "self");
        var site = J.Arr(cluster, "members").Where(m => J.Str(m, "address") == self).Select(m => J.Str(m, "site")).FirstOrDefault();
        return string.IsNullOrEmpty(site) ? throw new UsageException($"disk create: give --site (the node at {s.Node} has no site yet)") : site;
    }

    private static async Task<int> ListAsync(Session s)
    {
        var result = await s.CallAsync("disk.list");
        if (s.Out.Json) { s.Out.PrintJson(result); return CliApp.Ok; }
        var disks = J.Arr(result, "disks");
        var unreachable = J.Arr(result, "unreachableSites").Select(n => n?.GetValue<string>()).ToList();
        if (disks.Count == 0) s.Out.Line("no disks");
        else
        {
            var table = Output.Table("Name", "Site", "Phase", "Epoch", "Size", "Local", "Clients", "NBD URI");
            foreach (var d in disks)
            {
                long size = J.Long(d, "size"), local = J.Long(d, "localBytes");
                table.AddRow(J.Str(d, "name"), J.Str(d, "site"), Markup.Escape(Phase(d)), J.Long(d, "epoch").ToString(),
                    Fmt.Bytes(size), Fmt.Percent(local, size), J.Long(d, "clients").ToString(), Markup.Escape(J.Str(d, "nbdUri")));
            }
            s.Out.Write(table);
        }
        if (unreachable.Count > 0) s.Out.Line($"sites not answering (their disks are missing above): {string.Join(", ", unreachable)}");
        return CliApp.Ok;
    }

    /// <summary>A copy's phase, with the other site of its relocation and whether it takes writes.</summary>
    private static string Phase(JsonNode? d)
    {
        var phase = J.Str(d, "phase");
        var peer = J.Str(d, "peer");
        var text = phase switch
        {
            "outgoing" => $"outgoing → {peer}",
            "fenced" => $"fenced → {peer}",
            "incoming" when peer.Length > 0 => $"incoming ← {peer}",
            _ => phase,
        };
        if (phase == "incoming" && J.Bool(d, "writable")) text += " (owner)";
        return text;
    }

    private static async Task<int> ShowAsync(Session s, string name)
    {
        var d = await s.CallAsync("disk.show", new JsonObject { ["name"] = name });
        if (s.Out.Json) { s.Out.PrintJson(d); return CliApp.Ok; }
        long size = J.Long(d, "size"), local = J.Long(d, "localBytes");
        var rows = new List<(string, string)>
        {
            ("owner", $"{J.Str(d, "owner")} (epoch {J.Long(d, "epoch")}, {J.Str(d, "phase")})"),
            ("size", $"{Fmt.Bytes(size)} ({size} bytes)"),
            ("local", $"{Fmt.Bytes(local)} of {Fmt.Bytes(size)} ({Fmt.Percent(local, size)}) at the owner"),
            ("NBD URI", $"{J.Str(d, "nbdUri")}  (for the hypervisor, e.g. -drive file={J.Str(d, "nbdUri")},format=raw)"),
        };
        if (d?["relocation"] is JsonObject r)
            rows.Add(("relocation", $"{J.Str(r, "fromSite")} → {J.Str(r, "toSite")}, phase {J.Str(r, "phase")} (epoch {J.Long(r, "epoch")} → {J.Long(r, "epoch") + 1})"));
        var copies = J.Arr(d, "copies");
        foreach (var c in copies)
            rows.Add(("copy at " + J.Str(c, "site"), $"{Phase(c)}, epoch {J.Long(c, "epoch")}, {Fmt.Percent(J.Long(c, "localBytes"), J.Long(c, "size"))} local, " +
                                                       $"{J.Long(c, "clients")} client(s){(J.Bool(c, "writable") ? ", takes writes" : "")}"));
        s.Out.Line(J.Str(d, "name"));
        s.Out.WriteFields(rows);
        return CliApp.Ok;
    }

    private static async Task<int> DeleteAsync(Session s, string name)
    {
        var result = await s.CallAsync("disk.delete", new JsonObject { ["name"] = name });
        if (s.Out.Json) { s.Out.PrintJson(result); return CliApp.Ok; }
        s.Out.Line($"deleted {J.Str(result, "name")} (was on {J.Str(result, "site")})");
        return CliApp.Ok;
    }
}
