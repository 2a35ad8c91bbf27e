using Reloc.Testing.Faults;
using Xunit;
using Xunit.Abstractions;

namespace Reloc.Node.Tests;

/// <summary>
/// The fault campaign (bench/Reloc.Faults, docs/faults.md) in the normal test run: fixed seeds replayed, each a
/// relocation between three site processes hit by one fault, ending with one writer and the owner's image equal
/// to what the guest flushed. The plans themselves are drawn from the seed alone.
/// </summary>
public sealed class FaultCampaignReplayTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(1)]
    public async Task A_fixed_seed_of_the_fault_campaign_ends_with_one_writer_and_the_flushed_log(int seed)
    {
        var result = await FaultCampaign.RunAsync(FaultPlan.From(seed), output.WriteLine);
        output.WriteLine(result.Line());
        Assert.True(result.Ok, result.Line());
        Assert.True(result.BytesCompared == FaultCampaign.Size, result.Line());
    }

    [Fact]
    public void A_seed_names_its_plan_and_the_seeds_cover_every_fault_and_point()
    {
        Assert.Equal(FaultPlan.From(17), FaultPlan.From(17));
        var plans = Enumerable.Range(1, 200).Select(s => FaultPlan.From(s)).ToList();
        // Every kind but ClusterBlackHole, which only --fault forces (the seeds before it keep their plans).
        Assert.Equal(Enum.GetValues<FaultKind>().Where(k => k != FaultKind.ClusterBlackHole).Order(), plans.Select(p => p.Kind).Distinct().Order());
        var cut = Enumerable.Range(1, 40).Select(s => FaultPlan.From(s, FaultKind.ClusterBlackHole)).ToList();
        Assert.Equal(["b", "c"], cut.Select(p => p.Target.ToString()).Distinct().Order());
        Assert.Contains(cut, p => p.Target == p.Source);
        Assert.Contains(cut, p => p.Target == p.Destination);
        Assert.All(cut, p => Assert.Equal(FaultPoint.Handover, p.Point));
        Assert.All(cut, p => Assert.InRange(p.Duration, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(60)));
        foreach (var kill in new[] { FaultKind.KillSource, FaultKind.KillDestination, FaultKind.KillCoordinator })
            Assert.Equal([FaultPoint.Serving, FaultPoint.Handover, FaultPoint.Postcopy], plans.Where(p => p.Kind == kill).Select(p => p.Point).Distinct().Order());
        Assert.All(plans, p => Assert.NotEqual(p.Source, p.Destination));
        Assert.All(plans.Where(p => p.Kind == FaultKind.BlackHole), p =>
            Assert.InRange(p.Duration, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(60)));
        Assert.Equal('a', FaultPlan.From(1, FaultKind.KillCoordinator).Target);
        Assert.Equal(FaultPlan.From(3).Source, FaultPlan.From(3, FaultKind.KillSource).Target);
    }
}
