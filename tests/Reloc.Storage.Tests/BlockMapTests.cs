using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Reloc.Storage;
using Xunit;

namespace Reloc.Storage.Tests;

public sealed class BlockMapTests
{
    [Fact]
    public void Ranges_map_to_blocks_and_the_last_block_may_be_short()
    {
        var map = new BlockMap(10 * 4096 + 100, 4096);
        Assert.Equal(11, map.BlockCount);
        Assert.Equal((0L, 0L), map.BlocksOf(0, 4096));
        Assert.Equal((0L, 1L), map.BlocksOf(4095, 2));
        map.Set(10, 1, BlockState.Local);
        Assert.Equal(100, map.LocalBytes);
        map.Set(0, 10, BlockState.Local);
        Assert.True(map.IsComplete);
        Assert.Equal(map.DiskSize, map.LocalBytes);
    }

    [Fact]
    public void Next_run_wraps_and_is_capped()
    {
        var map = new BlockMap(100 * 65536, 65536);
        map.Set(0, 100, BlockState.Local);
        map.Set(10, 5, BlockState.Remote);
        map.Set(90, 10, BlockState.Remote);
        Assert.Equal((90L, 4L), map.NextRun(50, BlockState.Remote, 4));
        Assert.Equal((90L, 10L), map.NextRun(16, BlockState.Remote, 64));
        map.Set(90, 10, BlockState.Local);
        Assert.Equal((10L, 5L), map.NextRun(50, BlockState.Remote, 64)); // wraps to the start
        map.Set(0, 100, BlockState.Local);
        Assert.Null(map.NextRun(0, BlockState.Remote, 64));
    }

    [Fact]
    public void Corrupt_snapshots_are_refused()
    {
        var snap = new BlockMap(1 << 20, 4096).ToSnapshot();
        Assert.Throws<InvalidDataException>(() => BlockMap.FromSnapshot(snap.AsSpan(0, snap.Length - 1)));
        var longer = snap.Concat(new byte[] { 5 }).ToArray();
        Assert.Throws<InvalidDataException>(() => BlockMap.FromSnapshot(longer));
    }

    /// <summary>Random runs of Set against a plain array model: counts, AllLocal, runs and the
    /// persisted form always agree with the model.</summary>
    [Property(MaxTest = 300)]
    public bool Agrees_with_a_model(PositiveInt blocks, (int First, int Count, byte State)[] ops, bool smallBlocks)
    {
        int n = blocks.Get % 700 + 1;
        int bs = smallBlocks ? 4096 : 65536;
        long size = (long)n * bs - (n > 1 ? 17 : 0);
        var map = new BlockMap(size, bs);
        var model = new BlockState[map.BlockCount];
        foreach (var (f, c, s) in ops)
        {
            long first = Math.Abs((long)f) % map.BlockCount;
            long count = Math.Abs((long)c) % (map.BlockCount - first + 1);
            var state = (BlockState)(s % 3);
            map.Set(first, count, state);
            for (long b = first; b < first + count; b++) model[b] = state;
        }
        bool ok = map.LocalCount == model.Count(x => x == BlockState.Local);
        for (long b = 0; b < map.BlockCount; b++) ok &= map[b] == model[b];
        long off = size / 3, len = Math.Max(1, size / 4);
        var (fb, lb) = map.BlocksOf(off, len);
        ok &= map.AllLocal(off, len) == Enumerable.Range((int)fb, (int)(lb - fb + 1)).All(b => model[b] == BlockState.Local);
        var back = BlockMap.FromSnapshot(map.ToSnapshot());
        for (long b = 0; b < map.BlockCount; b++) ok &= back.IsLocal(b) == (model[b] == BlockState.Local);
        ok &= map.Runs(0, map.BlockCount, BlockState.Remote).Sum(r => r.Count) == model.Count(x => x == BlockState.Remote);
        // The word-at-a-time search, for each state, from a place inside the disk (wrapping), against the model.
        long from = (long)(blocks.Get % map.BlockCount);
        foreach (var state in new[] { BlockState.Remote, BlockState.Fetching, BlockState.Local })
        {
            var next = map.NextRun(from, state, long.MaxValue);
            int at = Array.IndexOf(model, state, (int)from);
            if (at < 0) at = Array.IndexOf(model, state);
            ok &= next is null ? at < 0 : next.Value.First == at && model[at] == state;
        }
        return ok;
    }

    [Fact]
    public void A_TiB_of_64_KiB_blocks_takes_4_MiB()
    {
        var map = new BlockMap(1L << 40, 64 << 10);
        Assert.Equal(4L << 20, map.MemoryBytes);
        map.Set(map.BlockCount - 1, 1, BlockState.Fetching);
        map.Set(3, 200, BlockState.Local);
        Assert.Equal((0L, 3L), map.NextRun(0, BlockState.Remote, long.MaxValue));
        Assert.Equal((203L, 64L), map.NextRun(3, BlockState.Remote, 64));
        Assert.Equal((map.BlockCount - 1, 1L), map.NextRun(5, BlockState.Fetching, 10));
        Assert.Equal(200, map.LocalCount);
    }

    /// <summary>Every transition, on runs inside one word and across words: the state read back is the state set.</summary>
    [Theory]
    [InlineData(5, 3)]
    [InlineData(60, 10)]
    [InlineData(0, 200)]
    public void Every_transition_reads_back_as_set(long first, long count)
    {
        var states = new[] { BlockState.Remote, BlockState.Fetching, BlockState.Local };
        foreach (var from in states)
        foreach (var to in states)
        {
            var map = new BlockMap(256 * 4096, 4096);
            map.Set(first, count, from);
            map.Set(first, count, to);
            for (long b = 0; b < map.BlockCount; b++)
                Assert.Equal(b >= first && b < first + count ? to : BlockState.Remote, map[b]);
            Assert.Equal(to == BlockState.Local ? count : 0, map.LocalCount);
        }
    }
}
