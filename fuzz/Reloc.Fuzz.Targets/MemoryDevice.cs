using System.Buffers;
using Reloc.Storage;

namespace Reloc.Fuzz.Targets;

/// <summary>A small in-memory disk that remembers the first out-of-range call: the server must validate
/// every range before it reaches a device, so one that gets through is a finding.</summary>
internal sealed class MemoryDevice(int size) : IBlockDevice
{
    private const int Block = 4096;
    private readonly byte[] _data = new byte[size];

    public long Size => _data.Length;
    public bool IsReadOnly => false;
    public string? Violation { get; private set; }

    public bool TryRead(long offset, Span<byte> destination)
    {
        if (!InRange(offset, destination.Length, "read")) throw Invalid();
        _data.AsSpan((int)offset, destination.Length).CopyTo(destination);
        return true;
    }

    public ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken ct)
    {
        TryRead(offset, destination.Span);
        return ValueTask.CompletedTask;
    }

    public ValueTask WriteAsync(long offset, in ReadOnlySequence<byte> data, WriteOptions options, CancellationToken ct)
    {
        if (!InRange(offset, data.Length, "write")) return ValueTask.FromException(Invalid());
        data.CopyTo(_data.AsSpan((int)offset));
        return ValueTask.CompletedTask;
    }

    public ValueTask FlushAsync(CancellationToken ct) => ValueTask.CompletedTask;

    public ValueTask TrimAsync(long offset, long length, WriteOptions options, CancellationToken ct) =>
        WriteZeroesAsync(offset, length, options, ct);

    public ValueTask WriteZeroesAsync(long offset, long length, WriteOptions options, CancellationToken ct)
    {
        if (!InRange(offset, length, "zero")) return ValueTask.FromException(Invalid());
        _data.AsSpan((int)offset, (int)length).Clear();
        return ValueTask.CompletedTask;
    }

    public ValueTask CacheAsync(long offset, long length, CancellationToken ct) =>
        InRange(offset, length, "cache") ? ValueTask.CompletedTask : ValueTask.FromException(Invalid());

    public ValueTask<IReadOnlyList<Extent>> GetExtentsAsync(long offset, long length, int maxExtents, CancellationToken ct)
    {
        if (!InRange(offset, length, "extents") || maxExtents < 1) return ValueTask.FromException<IReadOnlyList<Extent>>(Invalid());
        var extents = new List<Extent>();
        for (long at = offset; at < offset + length && extents.Count < maxExtents;)
        {
            long len = Math.Min(Block - at % Block, offset + length - at);
            var flags = _data.AsSpan((int)at, (int)len).IndexOfAnyExcept((byte)0) < 0 ? ExtentFlags.Hole | ExtentFlags.Zero : ExtentFlags.Data;
            extents.Add(new Extent(len, flags));
            at += len;
        }
        return ValueTask.FromResult<IReadOnlyList<Extent>>(extents);
    }

    private bool InRange(long offset, long length, string what)
    {
        if (offset >= 0 && length >= 0 && offset <= _data.Length && length <= _data.Length - offset) return true;
        Violation ??= $"{what} at {offset}+{length} reached a device of {_data.Length} bytes";
        return false;
    }

    private static BlockDeviceException Invalid() => new(DeviceError.InvalidArgument, "out of range");
}
