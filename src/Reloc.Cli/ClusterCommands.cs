using System.CommandLine;
using Reloc.Management;
using Spectre.Console;

namespace Reloc.Cli;

/// <summary><c>reloc cluster show|leave|down</c>.</summary>
internal static class ClusterCommands
{
    public static Command Create(CancellationToken stopping)
    {
        var group = new Command("cluster", "Cluster members: show them, make one leave gracefully, or down an unreachable one");

        var show = new Command("show", "Members, their sites, status, reachability and version; the leader and the coordinator's node");
        show.SetAction((r, _) => CliApp.Execute(r, stopping, ShowAsync));
        group.Subcommands.Add(show);

        foreach (var (name, help, leave) in new[]
                 {
                     ("leave", "Make a member leave the cluster gracefully (its site stops taking part)", true),
                     ("down", "Mark a member down (one that is unreachable and will not come back as it was)", false),
                 })
        {
            var address = new Argument<string>("ADDR") { Description = "the member's address (akka.tcp://reloc@HOST:PORT) or its site name" };
            var command = new Command(name, help) { address };
            command.SetAction((r, _) => CliApp.Execute(r, stopping, s => ChangeAsync(s, r.GetValue(address)!, leave)));
            group.Subcommands.Add(command);
        }
        return group;
    }

    private static async Task<int> ShowAsync(Session s)
    {
        var result = await s.CallAsync((c, ct) => c.ClusterAsync(ct));
        if (s.Out.Json) { s.Out.PrintJson(result, ManagementJson.Default.ClusterView); return CliApp.Ok; }
        var members = result.Members;
        var table = Output.Table("Site", "Address", "Status", "Reachable", "Version", "Role");
        foreach (var m in members.OrderBy(m => m.Site ?? "", StringComparer.Ordinal))
        {
            var roles = new List<string>();
            if (m.Address == result.Leader) roles.Add("leader");
            if (m.Address == result.Coordinator) roles.Add("coordinator");
            if (m.Address == result.Self) roles.Add("this node");
            table.AddRow(
                new Text(m.Site ?? ""),
                new Text(m.Address),
                new Markup(m.Status == "Up" ? "[green]Up[/]" : $"[yellow]{Markup.Escape(m.Status)}[/]"),
                new Markup(m.Reachable ? "yes" : "[red]no[/]"),
                new Text(m.Version ?? ""),
                new Text(string.Join(", ", roles)));
        }
        int up = members.Count(m => m.Status == "Up");
        s.Out.Line($"{members.Count} member{(members.Count == 1 ? "" : "s")}, {up} up, {members.Count(m => !m.Reachable)} unreachable (asked {s.Node}, version {result.Version})");
        s.Out.Write(table);
        return CliApp.Ok;
    }

    private static async Task<int> ChangeAsync(Session s, string address, bool leave)
    {
        var result = await s.CallAsync((c, ct) => leave ? c.LeaveAsync(address, ct) : c.DownAsync(address, ct));
        if (s.Out.Json) { s.Out.PrintJson(result, ManagementJson.Default.MemberChange); return CliApp.Ok; }
        s.Out.Line($"{result.Address}{(result.Site is { Length: > 0 } site ? $" (site {site})" : "")}: {result.Action}");
        return CliApp.Ok;
    }
}
