using Reloc.Actors.Disk;
using Xunit;

namespace Reloc.Actors.Tests;

public sealed class DiskStateTests
{
    [Fact]
    public void Events_set_bits_and_count_by_kind()
    {
        var s = new DiskState(1L << 20, 65536);
        s.Apply(new DiskEvents.BlocksLanded(0, 4, LandKind.Fetched, 4 * 65536));
        s.Apply(new DiskEvents.BlocksLanded(4, 4, LandKind.Skipped, 4 * 65536));
        s.Apply(new DiskEvents.BlocksLanded(8, 8, LandKind.Written, 8 * 65536));
        Assert.True(s.Map.IsComplete);
        Assert.Equal((4L * 65536, 4L * 65536, 8L * 65536), (s.FetchedBytes, s.SkippedBytes, s.WrittenBytes));
        Assert.False(s.Completed);
        s.Apply(new DiskEvents.RelocationCompleted());
        Assert.True(s.Completed);
    }

    [Fact]
    public void Restore_keeps_the_map_instance_the_data_path_holds()
    {
        var s = new DiskState(1L << 20, 4096);
        var map = s.Map;
        var other = new DiskState(1L << 20, 4096);
        other.Apply(new DiskEvents.BlocksLanded(10, 5, LandKind.Fetched, 5 * 4096));
        s.Restore(other.ToSnapshot());
        Assert.Same(map, s.Map);
        Assert.Equal(5, map.LocalCount);
        Assert.Throws<InvalidDataException>(() => new DiskState(2L << 20, 4096).Restore(other.ToSnapshot()));
    }

    [Fact]
    public void A_snapshot_leaves_out_blocks_whose_data_is_not_synced_yet()
    {
        var s = new DiskState(1L << 20, 4096);
        s.Apply(new DiskEvents.BlocksLanded(0, 10, LandKind.Fetched, 10 * 4096));
        s.Map.Set(10, 6, Reloc.Storage.BlockState.Local); // landed in the image, waiting for the next fdatasync
        var restored = new DiskState(1L << 20, 4096);
        restored.Restore(s.ToSnapshot([new DiskEvents.BlocksLanded(10, 6, LandKind.Written, 6 * 4096)]));
        Assert.Equal(10, restored.Map.LocalCount);
        Assert.False(restored.Map.IsLocal(10));
    }
}
