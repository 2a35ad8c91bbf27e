namespace Reloc.Actors.Site.Core;

/// <summary>
/// Whether a relocation's destination can hold the disk, decided before anything starts (the destination answers from
/// its data directory's file system at that moment, statvfs: not a cached number).
/// </summary>
/// <remarks>
/// What a disk needs is what will land: its images are sparse at both ends, so only the bytes its source holds
/// (<c>allocated</c>, the source image's SEEK_DATA extents) arrive; the holes are never fetched and take no room. On top
/// of that a margin for the file system's own blocks and the destination's metadata (a TiB's block map is 4 MiB) and for
/// the guest writing into holes while the copy runs: the larger of <see cref="MinMargin"/> and 1/<see cref="MarginFraction"/>
/// of the allocated bytes, never more than the disk's size in all. It used to be 1/20 of the virtual size, which refused
/// a 1 TiB disk holding 10 GiB at a site with 43 GiB free (61 GiB asked): a thin disk is judged by its data, not its size.
/// Refused when the free space is below that (data that obviously cannot land). When it fits now but not the disk's
/// full size, the relocation goes on with a warning.
/// What the margin does not cover, a guest filling holes faster than it during the copy (or later), is covered by the
/// destination failing safe, not by this guess: a fetch that meets ENOSPC stalls the copy with every block not yet
/// landed still at the source, which keeps its copy until every block has landed (<see cref="Disk.DiskCore"/>'s
/// OnNoSpace; the copy goes on once room frees), and a guest write that meets ENOSPC is answered ENOSPC, never acknowledged. Nothing is lost.
/// </remarks>
public static class RoomCheck
{
    public const long MinMargin = 64L << 20;
    public const int MarginFraction = 20; // 5 % of the allocated bytes

    /// <param name="Needed">The bytes the decision asked for (allocated + margin, at most the size).</param>
    /// <param name="Refusal">null: it fits.</param>
    /// <param name="Warning">It fits, but not the disk's full size.</param>
    public sealed record Decision(long Needed, string? Refusal, string? Warning);

    public static long Margin(long allocated) => Math.Max(MinMargin, allocated / MarginFraction);

    public static long Needed(long size, long allocated)
    {
        long data = Math.Clamp(allocated, 0, size);
        return Math.Min(size, data + Margin(data));
    }

    public static Decision Decide(string site, string dataDir, long size, long allocated, long free)
    {
        long needed = Needed(size, allocated), data = Math.Clamp(allocated, 0, size);
        if (free < needed)
            return new Decision(needed, $"site {site} has {Bytes(free)} free in {dataDir}: disk needs {Bytes(needed)} "
                + $"({Bytes(data)} of data + {Bytes(needed - data)} margin); nothing was started, the disk stays where it is", null);
        if (free < size)
            return new Decision(needed, null, $"site {site} has {Bytes(free)} free in {dataDir}: enough for the disk's {Bytes(data)} of data, "
                + $"not for its full {Bytes(size)} (if the guest fills its holes there, its writes will fail with ENOSPC)");
        return new Decision(needed, null, null);
    }

    private static string Bytes(long n) => n switch
    {
        >= 1L << 30 => $"{n / (double)(1L << 30):0.##} GiB",
        >= 1L << 20 => $"{n / (double)(1L << 20):0.##} MiB",
        >= 1L << 10 => $"{n / (double)(1L << 10):0.##} KiB",
        _ => $"{n} bytes",
    };
}
