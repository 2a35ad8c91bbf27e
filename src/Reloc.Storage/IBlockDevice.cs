using System.Buffers;

namespace Reloc.Storage;

/// <summary>Allocation state of a byte range, as NBD's base:allocation context reports it.</summary>
[Flags]
public enum ExtentFlags : uint
{
    Data = 0,
    /// <summary>Not allocated: reading it costs nothing.</summary>
    Hole = 1,
    /// <summary>Reads as zeros.</summary>
    Zero = 2,
}

/// <summary>A run of bytes with one allocation state; extents are reported back to back from a start offset.</summary>
public readonly record struct Extent(long Length, ExtentFlags Flags);

/// <summary>Flags that change how a write-like operation is made durable or laid out.</summary>
[Flags]
public enum WriteOptions
{
    None = 0,
    /// <summary>Force unit access: the data is durable when the operation completes.</summary>
    Fua = 1,
    /// <summary>WRITE_ZEROES must allocate (not punch a hole).</summary>
    NoHole = 2,
    /// <summary>WRITE_ZEROES must fail with <see cref="DeviceError.NotSupported"/> rather than be slow.</summary>
    FastZero = 4,
}

/// <summary>
/// A byte-addressed disk the NBD server exports. Callers validate ranges against <see cref="Size"/>
/// before calling; implementations may still throw <see cref="BlockDeviceException"/>.
/// </summary>
/// <remarks>
/// Every call may complete synchronously (a page-cache hit) or asynchronously (a fetch from a remote
/// site); the server handles both without a thread hop in the synchronous case.
/// </remarks>
public interface IBlockDevice
{
    long Size { get; }
    bool IsReadOnly { get; }

    /// <summary>Fast path: fill <paramref name="destination"/> if that can be done without waiting;
    /// false means "use <see cref="ReadAsync"/>" (nothing was read).</summary>
    bool TryRead(long offset, Span<byte> destination);

    ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken ct);

    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/>. The sequence is only valid
    /// until this method returns (not until the task completes): an implementation that needs the bytes
    /// later copies them first.</summary>
    ValueTask WriteAsync(long offset, in ReadOnlySequence<byte> data, WriteOptions options, CancellationToken ct);

    /// <summary>Makes every completed write durable (NBD FLUSH: fdatasync semantics).</summary>
    ValueTask FlushAsync(CancellationToken ct);

    /// <summary>Discards a range; afterwards it reads as zeros.</summary>
    ValueTask TrimAsync(long offset, long length, WriteOptions options, CancellationToken ct);

    ValueTask WriteZeroesAsync(long offset, long length, WriteOptions options, CancellationToken ct);

    /// <summary>Hint that the range will be read soon.</summary>
    ValueTask CacheAsync(long offset, long length, CancellationToken ct);

    /// <summary>Allocation map of [offset, offset+length): extents back to back from offset, at least one,
    /// at most <paramref name="maxExtents"/>, possibly covering less than the whole range.</summary>
    ValueTask<IReadOnlyList<Extent>> GetExtentsAsync(long offset, long length, int maxExtents, CancellationToken ct);
}
