using Reloc.Actors.Disk;
using Xunit;

namespace Reloc.Actors.Tests;

/// <summary>What a destination may believe about the source's holes: a source write takes a block out,
/// whenever it is reported relative to a scan (issue 9: writes into holes were punched instead of copied).</summary>
public sealed class SourceZerosTests
{
    private static SourceZeros Known(params (long First, long Count)[] zeros)
    {
        var z = new SourceZeros(10_000);
        z.ScanCompleted(z.BeginScan([(0, 1000)]), zeros);
        return z;
    }

    public static TheoryData<string, Action<SourceZeros>, long, (long, long, bool)> Cases => new()
    {
        // what happens after a scan of 0..1000 found 100..200 zero | block asked | how a run of 50 from there is copied
        { "nothing written: the hole is punched", _ => { }, 100, (100, 50, true) },
        { "a run is clipped where the known zeros end", _ => { }, 180, (180, 20, true) },
        { "a run is clipped where the known zeros begin", _ => { }, 80, (80, 20, false) },
        { "an invalidation of a block in the hole: it is copied", z => z.Written(120, 1), 120, (120, 1, false) },
        { "the blocks before it stay known", z => z.Written(120, 1), 100, (100, 20, true) },
        { "the blocks after it stay known", z => z.Written(120, 1), 121, (121, 50, true) },
        { "a final dirty set over the hole's end", z => z.Written(190, 40), 150, (150, 40, true) },
        { "every block written (a source restart)", z => z.Written(0, 1000), 100, (100, 50, false) },
        { "a write elsewhere changes nothing", z => z.Written(500, 10), 100, (100, 50, true) },
        {
            "a scan that began before a write does not bring the block back", z =>
            {
                long scan = z.BeginScan([(0, 1000)]);
                z.Written(150, 1);
                z.ScanCompleted(scan, [(100, 100)]);
            }, 150, (150, 1, false)
        },
        {
            "a scan that began after the write is believed", z =>
            {
                z.Written(150, 1);
                z.ScanCompleted(z.BeginScan([(150, 1)]), [(150, 1)]);
            }, 150, (150, 50, true)
        },
        {
            "a duplicate answer to a scan changes nothing", z =>
            {
                long scan = z.BeginScan([(0, 1000)]);
                z.ScanCompleted(scan, []);
                z.Written(300, 10);
                z.ScanCompleted(scan, [(300, 10)]);
            }, 300, (300, 50, false)
        },
        {
            "a scan's answer outside its ranges is ignored", z => z.ScanCompleted(z.BeginScan([(600, 10)]), [(600, 100)]),
            610, (610, 50, false)
        },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Classify(string why, Action<SourceZeros> then, long block, (long, long, bool) expected)
    {
        var z = Known((100, 100));
        then(z);
        Assert.True(expected == z.Classify(block, 50), $"{why}: {z.Classify(block, 50)}");
    }

    [Fact]
    public void Nothing_is_known_zero_before_a_scan_answers()
    {
        var z = new SourceZeros(10_000);
        Assert.False(z.FirstScanDone);
        Assert.Equal((0L, 50L, false), z.Classify(0, 50));
        z.ScanFailed(z.BeginScan([(0, 1000)]));
        Assert.True(z.FirstScanDone);
        Assert.Equal((0L, 50L, false), z.Classify(0, 50));
    }

    [Fact]
    public void Small_losses_are_not_scanned_again_large_ones_are_once()
    {
        var z = Known((0, 1000));
        z.Written(10, 1); // a write into a hole: that block holds data now, a scan would find nothing
        Assert.Null(z.Rescan());
        z.Written(0, 1000); // a source restart: every block counts as written
        var ranges = Assert.IsAssignableFrom<IReadOnlyList<(long, long)>>(z.Rescan());
        Assert.Equal([(0L, 1000L)], ranges);
        long scan = z.BeginScan(ranges);
        Assert.Null(z.Rescan()); // one scan at a time
        z.ScanCompleted(scan, [(0, 400), (500, 500)]);
        Assert.Equal(900, z.KnownBlocks);
        Assert.Equal(0, z.LostBlocks);
        Assert.Null(z.Rescan());
    }

    [Fact]
    public void A_restart_of_the_source_during_the_first_scan_is_scanned_again()
    {
        var z = new SourceZeros(10_000);
        long first = z.BeginScan([(0, 1000)]);
        z.Written(0, 1000);
        z.ScanCompleted(first, [(0, 1000)]);
        Assert.Equal(0, z.KnownBlocks); // the answer may predate the writes
        Assert.Equal([(0L, 1000L)], z.Rescan());
    }
}
