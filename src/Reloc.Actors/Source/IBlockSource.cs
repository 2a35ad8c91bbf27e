using Reloc.Storage;

namespace Reloc.Actors.Source;

/// <summary>Where a relocating disk's missing blocks come from: one connection to the source site.
/// The fetcher and the prefetcher each open their own, so guest misses never queue behind
/// background copy on a shared connection.</summary>
public interface IBlockSource : IAsyncDisposable
{
    long Size { get; }

    /// <summary>Reads exactly destination.Length bytes; reconnects as needed until <paramref name="ct"/> fires.</summary>
    Task ReadAsync(long offset, Memory<byte> destination, CancellationToken ct);

    /// <summary>Allocation of the source's range, or null when the source cannot tell.</summary>
    Task<IReadOnlyList<Extent>?> GetExtentsAsync(long offset, long length, CancellationToken ct);
}

/// <summary>Which of a disk's children a source connection is for.</summary>
public enum SourceLane
{
    /// <summary>Guest misses and read-through (the fetcher): the lane a guest waits on.</summary>
    Misses,
    /// <summary>Background copy and hole scans (the prefetcher).</summary>
    Background,
}

/// <summary>Makes a new connection to the source for one lane (it reconnects by itself).</summary>
public delegate IBlockSource BlockSourceFactory(SourceLane lane);
