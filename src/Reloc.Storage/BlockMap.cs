namespace Reloc.Storage;

/// <summary>Where a block's current data is.</summary>
public enum BlockState : byte
{
    /// <summary>Only at the source.</summary>
    Remote = 0,
    /// <summary>A fetch (or a whole-block guest write) is under way; nobody else may start one.</summary>
    Fetching = 1,
    /// <summary>Its data has landed in the local image.</summary>
    Local = 2,
}

/// <summary>
/// Per-block state of a disk being relocated. One writer (the disk's actor) and many readers (NBD
/// connection threads on the hot path): states are single bytes written and read with volatile
/// semantics, and a block only becomes Local after its data is in the image, so a reader that sees
/// Local may read the image without asking anyone.
/// </summary>
public sealed class BlockMap
{
    private readonly byte[] _states;
    private long _localCount;

    public BlockMap(long diskSize, int blockSize)
    {
        if (blockSize < 512 || !int.IsPow2(blockSize)) throw new ArgumentOutOfRangeException(nameof(blockSize), "block size must be a power of two >= 512");
        ArgumentOutOfRangeException.ThrowIfNegative(diskSize);
        DiskSize = diskSize;
        BlockSize = blockSize;
        BlockShift = int.Log2(blockSize);
        BlockCount = (diskSize + blockSize - 1) >> BlockShift;
        if (BlockCount > Array.MaxLength) throw new ArgumentOutOfRangeException(nameof(diskSize), "too many blocks: use a larger block size");
        _states = new byte[BlockCount];
    }

    public long DiskSize { get; }
    public int BlockSize { get; }
    public int BlockShift { get; }
    public long BlockCount { get; }
    public long LocalCount => Volatile.Read(ref _localCount);
    public bool IsComplete => LocalCount == BlockCount;

    /// <summary>Bytes of the disk held locally (the last block may be short).</summary>
    public long LocalBytes
    {
        get
        {
            long bytes = LocalCount << BlockShift;
            long shortBy = (BlockCount << BlockShift) - DiskSize; // the last block's missing tail
            return IsLocal(BlockCount - 1) ? bytes - shortBy : bytes;
        }
    }

    public BlockState this[long block] => (BlockState)Volatile.Read(ref _states[block]);

    public bool IsLocal(long block) => block >= 0 && block < BlockCount && this[block] == BlockState.Local;

    /// <summary>Blocks [first, last] touched by a byte range (length > 0).</summary>
    public (long First, long Last) BlocksOf(long offset, long length) => (offset >> BlockShift, (offset + length - 1) >> BlockShift);

    /// <summary>Hot-path check: is every block of a byte range local?</summary>
    public bool AllLocal(long offset, long length)
    {
        if (length <= 0 || IsComplete) return true;
        var (first, last) = BlocksOf(offset, length);
        for (long b = first; b <= last; b++)
            if (this[b] != BlockState.Local) return false;
        return true;
    }

    /// <summary>Sets a run of blocks; the single writer only.</summary>
    public void Set(long first, long count, BlockState state)
    {
        if (first < 0 || count < 0 || first + count > BlockCount) throw new ArgumentOutOfRangeException(nameof(first), $"blocks {first}+{count} outside 0..{BlockCount}");
        long delta = 0;
        for (long b = first; b < first + count; b++)
        {
            var old = (BlockState)_states[b];
            if (old == state) continue;
            if (old == BlockState.Local) delta--;
            if (state == BlockState.Local) delta++;
            Volatile.Write(ref _states[b], (byte)state);
        }
        if (delta != 0) Volatile.Write(ref _localCount, _localCount + delta);
    }

    /// <summary>The first run of blocks in <paramref name="state"/> at or after <paramref name="from"/>
    /// (wrapping around to the start), at most <paramref name="maxBlocks"/> long; null if none.</summary>
    public (long First, long Count)? NextRun(long from, BlockState state, long maxBlocks)
    {
        if (BlockCount == 0) return null;
        from = Math.Clamp(from, 0, BlockCount - 1);
        long start = Find(from, BlockCount, state);
        if (start < 0) start = Find(0, from, state);
        if (start < 0) return null;
        long end = start + 1;
        while (end < BlockCount && end - start < maxBlocks && this[end] == state) end++;
        return (start, end - start);
    }

    private long Find(long from, long to, BlockState state)
    {
        var span = _states.AsSpan((int)from, (int)(to - from));
        int i = span.IndexOf((byte)state);
        return i < 0 ? -1 : from + i;
    }

    /// <summary>Runs of blocks within [first, first+count) that are in <paramref name="state"/>.</summary>
    public IEnumerable<(long First, long Count)> Runs(long first, long count, BlockState state)
    {
        long end = first + count;
        long b = first;
        while (b < end)
        {
            if (this[b] != state) { b++; continue; }
            long s = b;
            while (b < end && this[b] == state) b++;
            yield return (s, b - s);
        }
    }

    /// <summary>Compact persisted form: which blocks are local, as alternating run lengths (varints),
    /// starting with a run of non-local blocks. Fetching counts as not local: a fetch in flight at a
    /// crash never landed as far as anyone can prove; so do the blocks of <paramref name="notDurable"/>
    /// (landed in the image, not yet synced).</summary>
    public byte[] ToSnapshot(BlockRuns? notDurable = null)
    {
        var output = new List<byte>(64);
        WriteVarint(output, (ulong)DiskSize);
        WriteVarint(output, (ulong)BlockSize);
        bool local = false;
        long b = 0;
        while (b < BlockCount)
        {
            long s = b;
            while (b < BlockCount && (this[b] == BlockState.Local && notDurable?.Contains(b) != true) == local) b++;
            WriteVarint(output, (ulong)(b - s));
            local = !local;
        }
        return output.ToArray();
    }

    /// <summary>Replaces every state with those of <paramref name="other"/> (same geometry): recovery
    /// restores into the instance the data path already holds.</summary>
    public void CopyFrom(BlockMap other)
    {
        if (other.DiskSize != DiskSize || other.BlockSize != BlockSize)
            throw new InvalidDataException($"block map of {other.DiskSize} bytes in {other.BlockSize}-byte blocks does not fit a disk of {DiskSize} in {BlockSize}");
        for (long b = 0; b < BlockCount; b++) Set(b, 1, other[b]);
    }

    public static BlockMap FromSnapshot(ReadOnlySpan<byte> data)
    {
        int pos = 0;
        var map = new BlockMap((long)ReadVarint(data, ref pos), (int)ReadVarint(data, ref pos));
        bool local = false;
        long b = 0;
        while (pos < data.Length)
        {
            long run = (long)ReadVarint(data, ref pos);
            if (run < 0 || b + run > map.BlockCount) throw new InvalidDataException("block map snapshot runs past the disk");
            if (local) map.Set(b, run, BlockState.Local);
            b += run;
            local = !local;
        }
        if (b != map.BlockCount) throw new InvalidDataException($"block map snapshot covers {b} of {map.BlockCount} blocks");
        return map;
    }

    private static void WriteVarint(List<byte> o, ulong v)
    {
        while (v >= 0x80) { o.Add((byte)(v | 0x80)); v >>= 7; }
        o.Add((byte)v);
    }

    private static ulong ReadVarint(ReadOnlySpan<byte> d, ref int pos)
    {
        ulong v = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (pos >= d.Length) throw new InvalidDataException("truncated block map snapshot");
            byte b = d[pos++];
            v |= (ulong)(b & 0x7f) << shift;
            if (b < 0x80) return v;
        }
        throw new InvalidDataException("bad varint in block map snapshot");
    }
}
