using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace Reloc.Cli;

/// <summary><c>reloc cluster show|leave|down</c>.</summary>
internal static class ClusterCommands
{
    public static Command Create(CancellationToken stopping)
    {
        var group = new Command("cluster", "Cluster members: show them, make one leave gracefully, or down an unreachable one");

        var show = new Command("show", "Members, their sites, status and reachability; the leader and the coordinator's node");
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
        var result = await s.CallAsync("cluster.show");
        if (s.Out.Json) { s.Out.PrintJson(result); return CliApp.Ok; }
        var self = J.Str(result, "self");
        var leader = J.Str(result, "leader");
        var coordinator = J.Str(result, "coordinator");
        var members = J.Arr(result, "members");
        var table = Output.Table("Site", "Address", "Status", "Reachable", "Role");
        foreach (var m in members.OrderBy(m => J.Str(m, "site"), StringComparer.Ordinal))
        {
            var address = J.Str(m, "address");
            var roles = new List<string>();
            if (address == leader) roles.Add("leader");
            if (address == coordinator) roles.Add("coordinator");
            if (address == self) roles.Add("this node");
            bool reachable = J.Bool(m, "reachable");
            var status = J.Str(m, "status");
            table.AddRow(
                new Text(J.Str(m, "site")),
                new Text(address),
                new Markup(status == "Up" ? "[green]Up[/]" : $"[yellow]{Markup.Escape(status)}[/]"),
                new Markup(reachable ? "yes" : "[red]no[/]"),
                new Text(string.Join(", ", roles)));
        }
        int up = members.Count(m => J.Str(m, "status") == "Up");
        s.Out.Line($"{members.Count} member{(members.Count == 1 ? "" : "s")}, {up} up, {members.Count(m => !J.Bool(m, "reachable"))} unreachable (asked {s.Node})");
        s.Out.Write(table);
        return CliApp.Ok;
    }

    private static async Task<int> ChangeAsync(Session s, string address, bool leave)
    {
        var result = await s.CallAsync(leave ? "cluster.leave" : "cluster.down", new JsonObject { ["address"] = address });
        if (s.Out.Json) { s.Out.PrintJson(result); return CliApp.Ok; }
        var site = J.Str(result, "site");
        s.Out.Line($"{J.Str(result, "address")}{(site.Length > 0 ? $" (site {site})" : "")}: {J.Str(result, "action")}");
        return CliApp.Ok;
    }
}
