namespace Reloc.Testing.Faults;

/// <summary>The campaign's tables, in Markdown.</summary>
public static class FaultReport
{
    public static string Summary(IReadOnlyList<FaultRunResult> results)
    {
        var lines = new List<string>
        {
            "| fault | runs | ok | failed | relocated | cancelled | stuck | points (phase when struck) | median time (s) | bytes compared |",
            "|---|---|---|---|---|---|---|---|---|---|",
        };
        foreach (var g in results.GroupBy(r => r.Plan.Kind).OrderBy(g => g.Key))
        {
            var times = g.Select(r => r.Elapsed.TotalSeconds).Order().ToList();
            var phases = string.Join(", ", g.GroupBy(r => r.PhaseAtFault).OrderBy(p => p.Key).Select(p => $"{p.Key} {p.Count()}"));
            lines.Add($"| {g.Key} | {g.Count()} | {g.Count(r => r.Ok)} | {g.Count(r => !r.Ok)} | {g.Count(r => r.Outcome == RunOutcome.Relocated)} | " +
                      $"{g.Count(r => r.Outcome == RunOutcome.Cancelled)} | {g.Count(r => r.Outcome is RunOutcome.Stuck or RunOutcome.Broken)} | {phases} | " +
                      $"{times[times.Count / 2]:0.0} | {g.Sum(r => r.BytesCompared)} |");
        }
        lines.Add($"| all | {results.Count} | {results.Count(r => r.Ok)} | {results.Count(r => !r.Ok)} | | | | | | {results.Sum(r => r.BytesCompared)} |");
        return string.Join('\n', lines);
    }

    public static string Markdown(IReadOnlyList<FaultRunResult> results) =>
        Summary(results) + "\n\nRuns:\n\n```\n" + string.Join('\n', results.Select(r => r.Line())) + "\n```\n";
}
