using Reloc.Nbd.Client;
using Reloc.Storage;

namespace Reloc.Node.Demo;

/// <summary>
/// The demo's disk: random data in extents of 1 to 4 MiB that make up a given share of it, holes
/// everywhere else (a thin-provisioned VM disk). Extents are whole, aligned MiBs because a site imports
/// an image in 1 MiB pieces and keeps only all-zero pieces as holes.
/// </summary>
internal sealed class SparseDisk
{
    public const int Unit = 1 << 20;

    private SparseDisk(byte[] model, List<(long Offset, long Length)> extents)
    {
        Model = model;
        Extents = extents;
        AllocatedBytes = extents.Sum(e => e.Length);
        _holes = new bool[model.Length / GuestWorkload.BlockSize];
        Array.Fill(_holes, true);
        foreach (var (offset, length) in extents)
            _holes.AsSpan((int)(offset / GuestWorkload.BlockSize), (int)(length / GuestWorkload.BlockSize)).Clear();
    }

    private readonly bool[] _holes; // per 4 KiB block: a hole at the start

    /// <summary>The initial content, zeros in the holes.</summary>
    public byte[] Model { get; }
    public IReadOnlyList<(long Offset, long Length)> Extents { get; }
    public long AllocatedBytes { get; }
    public long Size => Model.Length;

    /// <summary>Whether the 4 KiB block at <paramref name="offset"/> was a hole at the start.</summary>
    public bool WasHole(long offset) => _holes[offset / GuestWorkload.BlockSize];

    /// <param name="allocated">share of the disk holding data, from 0 to 1 (rounded to whole MiBs).</param>
    public static SparseDisk Generate(long size, double allocated, int seed)
    {
        var rng = new Random(seed);
        var model = new byte[size];
        int units = (int)((size + Unit - 1) / Unit);
        int dataUnits = (int)Math.Round(allocated * units);
        if (dataUnits == 0 && allocated > 0) dataUnits = 1;
        if (dataUnits == units && allocated < 1 && units > 1) dataUnits--;
        // Data runs of 1-4 MiB; the hole MiBs spread at random over the gaps before, between and after them.
        var runs = new List<int>();
        for (int left = dataUnits; left > 0; left -= runs[^1]) runs.Add(Math.Min(left, rng.Next(1, 5)));
        var gaps = new int[runs.Count + 1];
        for (int h = units - dataUnits; h > 0; h--) gaps[rng.Next(gaps.Length)]++;
        var extents = new List<(long, long)>();
        long at = (long)gaps[0] * Unit;
        for (int i = 0; i < runs.Count; i++)
        {
            long length = Math.Min((long)runs[i] * Unit, size - at);
            if (extents.Count > 0 && extents[^1].Item1 + extents[^1].Item2 == at) extents[^1] = (extents[^1].Item1, extents[^1].Item2 + length);
            else extents.Add((at, length));
            rng.NextBytes(model.AsSpan((int)at, (int)length));
            at += length + (long)gaps[i + 1] * Unit;
        }
        return new SparseDisk(model, extents);
    }

    /// <summary>A sparse image file: its length set, only the data extents written.</summary>
    public void WriteImage(string path)
    {
        using var file = File.OpenHandle(path, FileMode.CreateNew, FileAccess.Write);
        RandomAccess.SetLength(file, Size);
        foreach (var (offset, length) in Extents) RandomAccess.Write(file, Model.AsSpan((int)offset, (int)length), offset);
    }

    /// <summary>The bytes a server reports as data (not holes) over NBD BLOCK_STATUS, or null if it does not answer it.</summary>
    public static async Task<long?> DataBytesAsync(NbdClient client, CancellationToken ct)
    {
        if (!client.CanBlockStatus) return null;
        long data = 0;
        for (long at = 0; at < client.Size;)
        {
            var extents = await client.BlockStatusAsync(at, (uint)Math.Min(client.Size - at, 1L << 30), ct);
            foreach (var (_, extent) in extents)
            {
                if ((extent.Flags & ExtentFlags.Hole) == 0) data += extent.Length;
                at += extent.Length;
            }
        }
        return data;
    }
}
