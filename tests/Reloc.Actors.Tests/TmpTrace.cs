using System.Collections.Concurrent;
using Reloc.Actors.Tests.Model;
using Xunit;
using Xunit.Abstractions;
namespace Reloc.Actors.Tests;
public sealed class TmpTrace(ITestOutputHelper output)
{
    [Fact]
    public void Trace()
    {
        int seed = int.Parse(Environment.GetEnvironmentVariable("SEED") ?? "150");
        var (v, sim) = OwnershipProtocolModelTests.RunSeed(seed, null, trace: true);
        File.WriteAllLines("/tmp/trace.txt", sim.TraceLines);
        output.WriteLine(v?.Message ?? "none");
    }

    [Fact]
    public void Find()
    {
        var hits = new ConcurrentBag<(string, int)>();
        Parallel.For(0, 4000, seed =>
        {
            var (v, sim) = OwnershipProtocolModelTests.RunSeed(seed);
            if (v is not null) return;
            foreach (var p in new[] { Paths.DropAfterStop, Paths.FreshJournal, Paths.HoleWritten, Paths.EndedAttemptRefused })
                if (sim.Stats[p] > 0) hits.Add((p, seed));
        });
        foreach (var g in hits.GroupBy(h => h.Item1)) File.AppendAllText("/tmp/find.txt", $"{g.Key}: {string.Join(",", g.Select(x => x.Item2).Order().Take(30))}\n");
    }
}
