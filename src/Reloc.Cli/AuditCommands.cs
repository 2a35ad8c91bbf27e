using System.CommandLine;
using System.Globalization;
using Reloc.Management;

namespace Reloc.Cli;

/// <summary><c>reloc audit [--limit N]</c>: the changes asked of the cluster's management APIs, allowed or refused, oldest first.</summary>
internal static class AuditCommands
{
    public static Command Create(CancellationToken stopping)
    {
        var limit = new Option<int>("--limit") { Description = "at most this many records (the newest)", DefaultValueFactory = _ => 50 };
        var command = new Command("audit", "Who asked for which change (create, delete, relocate, rate, handover, cancel, leave, down), when, and how it ended")
            { limit };
        command.SetAction((r, _) => CliApp.Execute(r, stopping, s => RunAsync(s, r.GetValue(limit))));
        return command;
    }

    private static async Task<int> RunAsync(Session s, int limit)
    {
        if (limit is < 1 or > 10_000) throw new UsageException($"--limit {limit}: expected 1..10000");
        var records = (await s.CallAsync((c, ct) => c.AuditAsync(limit, ct))).Records;
        if (s.Out.Json)
        {
            foreach (var a in records) s.Out.JsonLine(a, ManagementJson.Default.AuditRecordView);
            return CliApp.Ok;
        }
        if (records.Count == 0) s.Out.Line("no changes recorded at this node");
        foreach (var a in records)
            s.Out.Line($"{a.Time.ToLocalTime().ToString("yyyy-MM-dd HH:mm:ss.fff", CultureInfo.InvariantCulture)}  {a.Principal} ({a.Auth}) from {a.Source} at {a.Node}: " +
                       $"{a.Detail}  {a.Outcome} {a.Status}");
        return CliApp.Ok;
    }
}
