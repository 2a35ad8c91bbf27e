using System.CommandLine;
using Reloc.Testing.Faults;

// reloc-faults faults [--seed N | --first-seed N --runs N] [--fault KIND] [--minutes M] [--out FILE]
// reloc-faults load [--seconds S] [--out FILE]
var seed = new Option<int?>("--seed") { Description = "replay one run: its seed, as printed" };
var firstSeed = new Option<int>("--first-seed") { Description = "seed of the first run; the next runs take the next seeds", DefaultValueFactory = _ => 1 };
var runs = new Option<int>("--runs") { Description = "how many runs at most", DefaultValueFactory = _ => 20 };
var fault = new Option<FaultKind?>("--fault") { Description = "force this fault instead of the seed's choice" };
var minutes = new Option<double>("--minutes") { Description = "start no new run after this many minutes (0 = no limit)", DefaultValueFactory = _ => 0 };
var output = new Option<string?>("--out") { Description = "write the per-run lines and the summary table (Markdown) to this file" };
var corrupt = new Option<bool>("--corrupt-expectation") { Description = "flip one byte the guest expects before the checks (to see them fail)" };
var faults = new Command("faults", "Relocations under kill -9, black-holed WAN, full disk and slow fsync") { seed, firstSeed, runs, fault, minutes, output, corrupt };
faults.SetAction((r, ct) => FaultsMain.RunAsync(r.GetValue(seed), r.GetValue(firstSeed), r.GetValue(runs), r.GetValue(fault), r.GetValue(minutes), r.GetValue(output), r.GetValue(corrupt)));

var seconds = new Option<int>("--seconds") { Description = "length of each load phase", DefaultValueFactory = _ => 20 };
var loadOut = new Option<string?>("--out") { Description = "write the table (Markdown) to this file" };
var load = new Command("load", "One site under many NBD clients, connection churn, slow handshakes and a management flood") { seconds, loadOut };
load.SetAction((r, ct) => LoadCampaign.RunAsync(r.GetValue(seconds), r.GetValue(loadOut)));

return await new RootCommand("Reloc fault and load campaigns") { faults, load }.Parse(args).InvokeAsync();

internal static class FaultsMain
{
    public static async Task<int> RunAsync(int? seed, int firstSeed, int runs, FaultKind? fault, double minutes, string? output, bool corrupt)
    {
        var seeds = seed is { } s ? [s] : Enumerable.Range(firstSeed, runs).ToList();
        var started = DateTime.UtcNow;
        var results = new List<FaultRunResult>();
        foreach (var n in seeds)
        {
            if (minutes > 0 && DateTime.UtcNow - started > TimeSpan.FromMinutes(minutes)) break;
            var plan = FaultPlan.From(n, fault);
            Console.WriteLine($"run seed={n}: {plan}");
            var result = await FaultCampaign.RunAsync(plan, Console.WriteLine, corrupt);
            results.Add(result);
            Console.WriteLine(result.Line());
            if (output is not null) await File.WriteAllTextAsync(output, FaultReport.Markdown(results));
        }
        Console.WriteLine();
        Console.WriteLine(FaultReport.Summary(results));
        Console.WriteLine($"{results.Count(r => r.Ok)} passed, {results.Count(r => !r.Ok)} failed");
        return results.All(r => r.Ok) ? 0 : 1;
    }
}
