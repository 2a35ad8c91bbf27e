using FsCheck;
using FsCheck.Xunit;
using Reloc.Storage;
using Xunit;

namespace Reloc.Storage.Tests;

public sealed class BlockRunsTests
{
    [Fact]
    public void Runs_merge_when_they_touch_and_split_when_cut()
    {
        var r = new BlockRuns([(10, 5), (15, 5), (30, 10)]);
        Assert.Equal("10+10,30+10", r.ToString());
        Assert.Equal(20, r.Blocks);
        Assert.Equal(4, r.Remove(12, 2) + r.Remove(35, 2));
        Assert.Equal("10+2,14+6,30+5,37+3", r.ToString());
        Assert.Equal([(14L, 6L), (30L, 2L)], r.Intersect(14, 18).ToList());
        Assert.Equal([(12L, 2L), (20L, 10L), (35L, 2L)], r.Except(12, 25).ToList());
        Assert.Equal((2L, true), r.Clip(10, 100));
        Assert.Equal((2L, false), r.Clip(12, 100));
        Assert.Equal((100L, false), r.Clip(40, 100));
        r.Add(0, 50);
        Assert.Equal("0+50", r.ToString());
    }

    /// <summary>Random adds and removes against a set of block numbers: membership, counts, runs,
    /// intersections, differences and clipping always agree with it.</summary>
    [Property(MaxTest = 300)]
    public bool Agrees_with_a_set_of_blocks((bool Add, byte First, byte Count)[] ops, byte probeFirst, byte probeCount)
    {
        var runs = new BlockRuns();
        var model = new SortedSet<long>();
        foreach (var (add, first, count) in ops)
        {
            var blocks = Enumerable.Range(first, count % 40).Select(b => (long)b);
            if (add) { runs.Add(first, count % 40); model.UnionWith(blocks); }
            else
            {
                long removed = runs.Remove(first, count % 40);
                if (removed != blocks.Count(model.Contains)) return false;
                model.ExceptWith(blocks);
            }
        }
        bool ok = runs.Blocks == model.Count && runs.Runs.Sum(r => r.Count) == model.Count;
        var list = runs.Runs.ToList();
        for (int i = 1; i < list.Count; i++) ok &= list[i - 1].First + list[i - 1].Count < list[i].First; // disjoint, not touching
        for (long b = 0; b < 300; b++) ok &= runs.Contains(b) == model.Contains(b);
        var probe = Enumerable.Range(probeFirst, probeCount).Select(b => (long)b).ToList();
        ok &= runs.Intersect(probeFirst, probeCount).SelectMany(r => Blocks(r)).SequenceEqual(probe.Where(model.Contains));
        ok &= runs.Except(probeFirst, probeCount).SelectMany(r => Blocks(r)).SequenceEqual(probe.Where(b => !model.Contains(b)));
        if (probeCount > 0)
        {
            var (count, inSet) = runs.Clip(probeFirst, probeCount);
            ok &= count > 0 && probe.Take((int)count).All(b => model.Contains(b) == inSet)
                  && (count == probeCount || model.Contains(probe[(int)count]) != inSet);
        }
        return ok;

        static IEnumerable<long> Blocks((long First, long Count) r) => Enumerable.Range((int)r.First, (int)r.Count).Select(b => (long)b);
    }
}
