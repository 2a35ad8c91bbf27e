namespace Reloc.Actors.Site.Core;

/// <summary>
/// Whether a relocation's destination can hold the disk, decided before anything starts (the destination answers from
/// its data directory's file system at that moment, statvfs: not a cached number).
/// </summary>
/// <remarks>
/// What a disk needs: its images are sparse, so only the bytes its source holds (<c>allocated</c>) arrive, plus a
/// margin for what the guest writes into holes meanwhile and for the file system's own blocks: the larger of
/// <see cref="MinMargin"/> and 1/<see cref="MarginFraction"/> of the disk's size, never more than the disk's size in all.
/// Refused when the free space is below that. When it fits now but not the disk's full size, the relocation goes on
/// with a warning: the guest could fill its holes later, and a full destination then answers its writes ENOSPC (the
/// relocation itself fails safe: see <see cref="Disk.DiskCore"/>).
/// </remarks>
public static class RoomCheck
{
    public const long MinMargin = 64L << 20;
    public const int MarginFraction = 20; // 5%

    /// <param name="Needed">The bytes the decision asked for (allocated + margin, at most the size).</param>
    /// <param name="Refusal">null: it fits.</param>
    /// <param name="Warning">It fits, but not the disk's full size.</param>
    public sealed record Decision(long Needed, string? Refusal, string? Warning);

    public static long Margin(long size) => Math.Max(MinMargin, size / MarginFraction);

    public static long Needed(long size, long allocated) => Math.Min(size, Math.Min(allocated, size) + Margin(size));

    public static Decision Decide(string site, string dataDir, long size, long allocated, long free)
    {
        long needed = Needed(size, allocated);
        if (free < needed)
            return new Decision(needed, $"site {site} has {Bytes(free)} free in {dataDir}: disk needs {Bytes(needed)} "
                + $"({Bytes(Math.Min(allocated, size))} of data + {Bytes(needed - Math.Min(allocated, size))} margin); nothing was started, the disk stays where it is", null);
        if (free < size)
            return new Decision(needed, null, $"site {site} has {Bytes(free)} free in {dataDir}: enough for the disk's {Bytes(Math.Min(allocated, size))} of data, "
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
