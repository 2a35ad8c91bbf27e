using System.Numerics;

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
/// connection threads on the hot path), lock-free. Two bits a block, in two bitmaps of 64-bit words
/// (4 MiB per TiB of disk at 64 KiB blocks): <c>local</c> and <c>fetching</c>; a set local bit wins, so the
/// writer orders its two word writes to let a reader see only the old or the new state. A block only
/// becomes Local after its data is in the image, so a reader that sees Local may read the image without
/// asking anyone.
/// </summary>
public sealed class BlockMap
{
    private readonly ulong[] _local;
    private readonly ulong[] _fetching;
    private long _localCount;

    public BlockMap(long diskSize, int blockSize)
    {
        if (blockSize < 512 || !int.IsPow2(blockSize)) throw new ArgumentOutOfRangeException(nameof(blockSize), "block size must be a power of two >= 512");
        ArgumentOutOfRangeException.ThrowIfNegative(diskSize);
        DiskSize = diskSize;
        BlockSize = blockSize;
        BlockShift = int.Log2(blockSize);
        BlockCount = (diskSize + blockSize - 1) >> BlockShift;
        long words = (BlockCount + 63) >> 6;
        if (words > Array.MaxLength) throw new ArgumentOutOfRangeException(nameof(diskSize), "too many blocks: use a larger block size");
        _local = new ulong[words];
        _fetching = new ulong[words];
    }

    /// <summary>Bytes the map itself holds (its two bitmaps).</summary>
    public long MemoryBytes => ((long)_local.Length + _fetching.Length) * sizeof(ulong);

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

    public BlockState this[long block]
    {
        get
        {
            if ((ulong)block >= (ulong)BlockCount) throw new IndexOutOfRangeException($"block {block} outside 0..{BlockCount}");
            ulong bit = 1UL << (int)(block & 63);
            if ((Volatile.Read(ref _local[block >> 6]) & bit) != 0) return BlockState.Local;
            return (Volatile.Read(ref _fetching[block >> 6]) & bit) != 0 ? BlockState.Fetching : BlockState.Remote;
        }
    }

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
        long b = first, end = first + count;
        while (b < end)
        {
            int word = (int)(b >> 6), from = (int)(b & 63);
            int upto = (int)Math.Min(64, from + (end - b));
            ulong mask = (upto == 64 ? ulong.MaxValue : (1UL << upto) - 1) & ~((1UL << from) - 1);
            ulong local = _local[word], fetching = _fetching[word];
            switch (state)
            {
                case BlockState.Local:
                    delta += BitOperations.PopCount(mask & ~local);
                    Volatile.Write(ref _local[word], local | mask); // Local from here on (a set local bit wins)
                    if ((fetching & mask) != 0) Volatile.Write(ref _fetching[word], fetching & ~mask);
                    break;
                case BlockState.Fetching:
                    // Fetching bit first: a Local block reads Local until its local bit goes.
                    if ((~fetching & mask) != 0) Volatile.Write(ref _fetching[word], fetching | mask);
                    delta -= BitOperations.PopCount(mask & local);
                    if ((local & mask) != 0) Volatile.Write(ref _local[word], local & ~mask);
                    break;
                default:
                    delta -= BitOperations.PopCount(mask & local);
                    if ((local & mask) != 0) Volatile.Write(ref _local[word], local & ~mask);
                    if ((fetching & mask) != 0) Volatile.Write(ref _fetching[word], fetching & ~mask);
                    break;
            }
            b += upto - from;
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

    /// <summary>The first block in [from, to) in <paramref name="state"/>, or -1: a word (64 blocks) at a time.</summary>
    private long Find(long from, long to, BlockState state)
    {
        for (long b = from; b < to;)
        {
            int word = (int)(b >> 6);
            ulong local = Volatile.Read(ref _local[word]), fetching = Volatile.Read(ref _fetching[word]);
            ulong match = state switch
            {
                BlockState.Local => local,
                BlockState.Fetching => fetching & ~local,
                _ => ~(local | fetching),
            };
            match &= ulong.MaxValue << (int)(b & 63);
            if (match != 0)
            {
                long found = ((long)word << 6) + BitOperations.TrailingZeroCount(match);
                return found < to ? found : -1;
            }
            b = ((long)word + 1) << 6;
        }
        return -1;
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
