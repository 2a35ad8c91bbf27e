using Reloc.Actors.Site.Core;
using Xunit;

namespace Reloc.Actors.Tests;

/// <summary>Whether a relocation's destination can hold the disk (<see cref="RoomCheck"/>): a table.</summary>
public sealed class RoomCheckTests
{
    private const long MiB = 1L << 20, GiB = 1L << 30, TiB = 1L << 40;

    public static TheoryData<string, long, long, long, long, string> Table => new()
    {
        // name | size | allocated | free | needed | verdict (ok, warn, refuse)
        { "empty thin disk, plenty of room: only the 64 MiB minimum margin", 10 * GiB, 0, 100 * GiB, 64 * MiB, "ok" },
        { "full disk, room for all of it", 10 * GiB, 10 * GiB, 11 * GiB, 10 * GiB, "ok" },
        { "full disk, exactly its size free", 10 * GiB, 10 * GiB, 10 * GiB, 10 * GiB, "ok" },
        { "full disk, one byte short", 10 * GiB, 10 * GiB, 10 * GiB - 1, 10 * GiB, "refuse" },
        { "thin disk: data + 5% of the data fits, not its full size", 10 * GiB, 2 * GiB, 3 * GiB, 2 * GiB + 2 * GiB / 20, "warn" },
        { "thin disk: data fits, not the margin", 10 * GiB, 2 * GiB, 2 * GiB + 100 * MiB, 2 * GiB + 2 * GiB / 20, "refuse" },
        { "1 TiB at 1% (10 GiB), 43 GiB free: what lands fits (was refused: 61 GiB asked)", TiB, 10 * GiB, 43 * GiB, 10 * GiB + 512 * MiB, "warn" },
        { "1 TiB at 0.1% (1 GiB): the minimum margin", TiB, 1 * GiB, 43 * GiB, 1 * GiB + 64 * MiB, "warn" },
        { "1 TiB holding 50 GiB, 43 GiB free: obviously cannot land", TiB, 50 * GiB, 43 * GiB, 50 * GiB + 50 * GiB / 20, "refuse" },
        { "1 TiB holding 40 GiB, 41 GiB free: the data fits, not its 2 GiB margin", TiB, 40 * GiB, 41 * GiB, 42 * GiB, "refuse" },
        { "1 TiB holding 40 GiB, 42 GiB free: data + margin exactly", TiB, 40 * GiB, 42 * GiB, 42 * GiB, "warn" },
        { "1 TiB, nothing allocated, 1 TiB free: fits whole", TiB, 0, TiB, 64 * MiB, "ok" },
        { "a negative allocation (a broken source) counts as none", 1 * GiB, -5, 100 * MiB, 64 * MiB, "warn" },
        { "small disk: the margin is at least 64 MiB", 100 * MiB, 10 * MiB, 80 * MiB, 74 * MiB, "warn" },
        { "small disk: never more than its size", 16 * MiB, 1 * MiB, 16 * MiB, 16 * MiB, "ok" },
        { "small disk, 1 byte short of its size", 16 * MiB, 1 * MiB, 16 * MiB - 1, 16 * MiB, "refuse" },
        { "nothing free", 1 * GiB, 0, 0, 64 * MiB, "refuse" },
        { "a source that over-reports allocation (no SEEK_DATA): capped at the size", 1 * GiB, 2 * GiB, 1 * GiB, 1 * GiB, "ok" },
    };

    [Theory]
    [MemberData(nameof(Table))]
    public void A_destination(string name, long size, long allocated, long free, long needed, string verdict)
    {
        var d = RoomCheck.Decide("site-b", "/data", size, allocated, free);
        Assert.True(needed == d.Needed, $"{name}: needed {d.Needed}");
        var got = d.Refusal is not null ? "refuse" : d.Warning is not null ? "warn" : "ok";
        Assert.True(verdict == got, $"{name}: {got}: {d.Refusal ?? d.Warning}");
    }

    [Fact]
    public void A_refusal_says_what_is_free_what_is_needed_and_that_nothing_started()
    {
        var d = RoomCheck.Decide("site-b", "/data", 10 * GiB, 2 * GiB, 1 * GiB);
        Assert.Equal("site site-b has 1 GiB free in /data: disk needs 2.1 GiB (2 GiB of data + 102.4 MiB margin); nothing was started, the disk stays where it is", d.Refusal);
    }
}
