using System.CommandLine;
using Reloc.Management;
using Spectre.Console;

namespace Reloc.Cli;

/// <summary><c>reloc link show|set</c>: the budgets the relocations between two sites share.</summary>
internal static class LinkCommands
{
    public static Command Create(CancellationToken stopping)
    {
        var group = new Command("link", "Link budgets: the bandwidth the relocations between two sites share (each direction)");

        var show = new Command("show", "Every link with a budget or with relocations on it: the budget and each relocation's rate");
        show.SetAction((r, _) => CliApp.Execute(r, stopping, ShowAsync));
        group.Subcommands.Add(show);

        var siteA = new Argument<string>("SITE") { Description = "one end of the link" };
        var siteB = new Argument<string>("SITE") { Description = "the other end" };
        var bandwidth = new Argument<string>("RATE") { Description = "the budget each way, e.g. 100MB/s, 1Gbit/s, or 0 for none" };
        var set = new Command("set", "Change a link's budget now (persisted at both sites of the pair: a new coordinator keeps it; it overrides reloc.links)")
            { siteA, siteB, bandwidth };
        set.SetAction((r, _) => CliApp.Execute(r, stopping, s => SetAsync(s, r.GetValue(siteA)!, r.GetValue(siteB)!, r.GetValue(bandwidth)!)));
        group.Subcommands.Add(set);
        return group;
    }

    private static async Task<int> ShowAsync(Session s)
    {
        var list = await s.CallAsync((c, ct) => c.LinksAsync(ct));
        if (s.Out.Json) { s.Out.PrintJson(list, ManagementJson.Default.LinkListView); return CliApp.Ok; }
        if (list.Links.Count == 0) { s.Out.Line("no link budgets and no relocations under way"); return CliApp.Ok; }
        var table = Output.Table("Link", "Budget each way", "Relocation", "Direction", "Weight", "Cap", "Rate");
        foreach (var l in list.Links)
        {
            var link = $"{l.SiteA} ↔ {l.SiteB}";
            var budget = (l.Bandwidth == 0 ? "none" : Fmt.Rate(l.Bandwidth)) + (l.SetAtRunTime ? " (set at run time)" : "");
            if (l.Relocations.Count == 0) table.AddRow(link, budget, "-", "", "", "", "");
            foreach (var r in l.Relocations)
                table.AddRow(link, budget, r.Disk, $"{r.FromSite} → {r.ToSite}", r.Weight.ToString(), Fmt.Cap(r.Cap), Fmt.Cap(r.Rate));
        }
        s.Out.Write(table);
        return CliApp.Ok;
    }

    private static async Task<int> SetAsync(Session s, string siteA, string siteB, string bandwidthText)
    {
        long bandwidth = Args.Rate("link set", bandwidthText);
        var link = await s.CallAsync((c, ct) => c.SetLinkAsync(siteA, siteB, bandwidth, ct));
        if (s.Out.Json) { s.Out.PrintJson(link, ManagementJson.Default.LinkView); return CliApp.Ok; }
        s.Out.Line($"link {link.SiteA} ↔ {link.SiteB}: " + (link.Bandwidth == 0 ? "no budget" : $"{Fmt.Rate(link.Bandwidth)} each way")
            + $", {link.Relocations.Count} relocation{(link.Relocations.Count == 1 ? "" : "s")} on it");
        return CliApp.Ok;
    }
}
