using Reloc.Actors.Site.Core;
using Xunit;

namespace Reloc.Actors.Tests;

/// <summary>Whether a relocation's destination can hold the disk (<see cref="RoomCheck"/>): a table.</summary>
public sealed class RoomCheckTests
{
    private const long MiB = 1L << 20, GiB = 1L << 30;

    public static TheoryData<string, long, long, long, long, string> Table => new()
    {
        // name | size | allocated | free | needed | verdict (ok, warn, refuse)
        { "empty thin disk, plenty of room", 10 * GiB, 0, 100 * GiB, 512 * MiB, "ok" },
        { "full disk, room for all of it", 10 * GiB, 10 * GiB, 11 * GiB, 10 * GiB, "ok" },
        { "full disk, exactly its size free", 10 * GiB, 10 * GiB, 10 * GiB, 10 * GiB, "ok" },
        { "full disk, one byte short", 10 * GiB, 10 * GiB, 10 * GiB - 1, 10 * GiB, "refuse" },
        { "thin disk: data + 5% margin fits, not its full size", 10 * GiB, 2 * GiB, 3 * GiB, 2 * GiB + 512 * MiB, "warn" },
        { "thin disk: data fits, not the margin", 10 * GiB, 2 * GiB, 2 * GiB + 100 * MiB, 2 * GiB + 512 * MiB, "refuse" },
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
        Assert.Equal("site site-b has 1 GiB free in /data: disk needs 2.5 GiB (2 GiB of data + 512 MiB margin); nothing was started, the disk stays where it is", d.Refusal);
    }
}
