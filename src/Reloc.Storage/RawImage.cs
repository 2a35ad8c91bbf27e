using System.Buffers;
using Microsoft.Win32.SafeHandles;

namespace Reloc.Storage;

/// <summary>
/// A raw, sparse disk image file. Reads and writes go straight to the page cache with pread/pwrite
/// (synchronously: that is the fast path); durability (FLUSH, FUA) is fdatasync, run off the caller's
/// thread so one connection's flush does not hold up its other requests. One handle serves every
/// connection, so a FLUSH on any of them covers writes completed on all (NBD multi-conn).
/// </summary>
public sealed class RawImage : IBlockDevice, IDisposable
{
    private static readonly ReadOnlyMemory<byte> ZeroChunk = new byte[1 << 20];
    private readonly SafeFileHandle _handle;
    private readonly TimeSpan _syncDelay;

    private RawImage(string path, SafeFileHandle handle, long size, bool readOnly, TimeSpan syncDelay = default)
    {
        Path = path;
        _handle = handle;
        Size = size;
        IsReadOnly = readOnly;
        _syncDelay = syncDelay;
    }

    public string Path { get; }
    public long Size { get; }
    public bool IsReadOnly { get; }

    /// <param name="syncDelay">Fault injection for fault campaigns only (reloc.disk.fault-injection.fsync-delay):
    /// every FLUSH/FUA waits this long before its fdatasync, as a slow disk would; zero in production.</param>
    public static RawImage Open(string path, bool readOnly, TimeSpan syncDelay = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(syncDelay, TimeSpan.Zero);
        if (!File.Exists(path)) throw new FileNotFoundException($"image {path} does not exist", path);
        var handle = File.OpenHandle(path, FileMode.Open, readOnly ? FileAccess.Read : FileAccess.ReadWrite,
            FileShare.ReadWrite | FileShare.Delete);
        return new RawImage(path, handle, RandomAccess.GetLength(handle), readOnly, syncDelay);
    }

    /// <summary>Creates a sparse image of <paramref name="size"/> bytes (no blocks allocated).</summary>
    public static RawImage Create(string path, long size)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
        RandomAccess.SetLength(handle, size);
        return new RawImage(path, handle, size, false);
    }

    /// <summary>Copies a raw file into a new sparse image: the source's holes stay holes without being read (its data
    /// extents, SEEK_DATA/SEEK_HOLE, so a thin 1 TiB file costs its allocated bytes, not its size), and zero MiBs
    /// inside its data are not written either. A file system without SEEK_DATA reports the whole file as data: then
    /// every byte is read, as before.</summary>
    public static RawImage ImportSparse(string sourcePath, string path)
    {
        using var source = File.OpenHandle(sourcePath, FileMode.Open, FileAccess.Read);
        long size = RandomAccess.GetLength(source);
        var image = Create(path, size);
        try
        {
            var buffer = new byte[1 << 20];
            foreach (var (start, length) in DataRuns(source, 0, size))
                for (long offset = start, end = start + length; offset < end;)
                {
                    int n = RandomAccess.Read(source, buffer.AsSpan(0, (int)Math.Min(buffer.Length, end - offset)), offset);
                    if (n <= 0) break; // the file shrank while we read it: the rest reads as zeros, a hole
                    if (buffer.AsSpan(0, n).IndexOfAnyExcept((byte)0) >= 0) RandomAccess.Write(image._handle, buffer.AsSpan(0, n), offset);
                    offset += n;
                }
            Native.DataSync(image._handle);
            return image;
        }
        catch
        {
            image.Dispose();
            throw;
        }
    }

    /// <summary>The data runs (offset, length) of a file in [<paramref name="from"/>, <paramref name="end"/>), in order,
    /// by SEEK_DATA/SEEK_HOLE. Where the file system cannot tell (no SEEK_DATA), the rest counts as data: an
    /// over-estimate, never a lost byte.</summary>
    private static IEnumerable<(long Offset, long Length)> DataRuns(SafeFileHandle handle, long from, long end)
    {
        long pos = from;
        while (pos < end)
        {
            long data = Native.Seek(handle, pos, Native.SeekData);
            if (data == -Native.ENXIO || data >= end) yield break; // only holes from pos on
            if (data < 0) { yield return (pos, end - pos); yield break; }
            long hole = Native.Seek(handle, data, Native.SeekHole);
            long stop = hole < 0 ? end : Math.Min(hole, end);
            if (stop <= data) { yield return (data, end - data); yield break; }
            yield return (data, stop - data);
            pos = stop;
        }
    }

    public bool TryRead(long offset, Span<byte> destination)
    {
        while (!destination.IsEmpty)
        {
            int n = RandomAccess.Read(_handle, destination, offset);
            if (n <= 0)
            {
                // The file shrank under us (someone truncated it): what is past the end reads as zeros.
                destination.Clear();
                break;
            }
            destination = destination[n..];
            offset += n;
        }
        return true;
    }

    public ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken ct)
    {
        TryRead(offset, destination.Span);
        return ValueTask.CompletedTask;
    }

    public ValueTask WriteAsync(long offset, in ReadOnlySequence<byte> data, WriteOptions options, CancellationToken ct)
    {
        ThrowIfReadOnly();
        try
        {
            if (data.IsSingleSegment)
            {
                RandomAccess.Write(_handle, data.First.Span, offset);
            }
            else
            {
                foreach (var segment in data)
                {
                    RandomAccess.Write(_handle, segment.Span, offset);
                    offset += segment.Length;
                }
            }
        }
        catch (IOException ex) when (IsNoSpace(ex))
        {
            // The write failed (part of it may be on disk): the caller answers ENOSPC, never an acknowledgement.
            throw new BlockDeviceException(DeviceError.NoSpace, $"no space left on the device of image {Path}", ex);
        }
        return SyncIf(options);
    }

    /// <summary>.NET reports a failed pwrite as an IOException whose HResult is the errno.</summary>
    public static bool IsNoSpace(Exception ex) => ex is BlockDeviceException { Error: DeviceError.NoSpace }
        || (ex is IOException { HResult: Native.ENOSPC } && ex is not BlockDeviceException);

    public ValueTask FlushAsync(CancellationToken ct) =>
        IsReadOnly ? ValueTask.CompletedTask : new ValueTask(Task.Run(SyncAsync, ct));

    public ValueTask TrimAsync(long offset, long length, WriteOptions options, CancellationToken ct)
    {
        ThrowIfReadOnly();
        // Trimmed space must read back as zeros (clients such as qemu-io check that): if the file system
        // cannot punch holes, write zeros instead.
        if (Native.Fallocate(_handle, Native.FallocPunchHole | Native.FallocKeepSize, offset, length) != 0)
            WriteZeroBytes(offset, length);
        return SyncIf(options);
    }

    public ValueTask WriteZeroesAsync(long offset, long length, WriteOptions options, CancellationToken ct)
    {
        ThrowIfReadOnly();
        int mode = options.HasFlag(WriteOptions.NoHole)
            ? Native.FallocZeroRange | Native.FallocKeepSize
            : Native.FallocPunchHole | Native.FallocKeepSize;
        int err = Native.Fallocate(_handle, mode, offset, length);
        if (err == Native.ENOSPC) throw new BlockDeviceException(DeviceError.NoSpace, "no space left to allocate zeros");
        if (err != 0)
        {
            if (options.HasFlag(WriteOptions.FastZero))
                throw new BlockDeviceException(DeviceError.NotSupported, $"fast zeroing is not available (errno {err})");
            WriteZeroBytes(offset, length);
        }
        return SyncIf(options);
    }

    public ValueTask CacheAsync(long offset, long length, CancellationToken ct)
    {
        Native.WillNeed(_handle, offset, length);
        return ValueTask.CompletedTask;
    }

    public ValueTask<IReadOnlyList<Extent>> GetExtentsAsync(long offset, long length, int maxExtents, CancellationToken ct)
    {
        var extents = new List<Extent>();
        long end = Math.Min(offset + length, Size);
        long pos = offset;
        while (pos < end && extents.Count < maxExtents)
        {
            long data = Native.Seek(_handle, pos, Native.SeekData);
            if (data == -Native.ENXIO) data = end;          // no data after pos: the rest is a hole
            else if (data < 0) { AddDataToEnd(); break; }    // no SEEK_DATA here: report all as data
            if (data > pos)
            {
                long holeEnd = Math.Min(data, end);
                extents.Add(new Extent(holeEnd - pos, ExtentFlags.Hole | ExtentFlags.Zero));
                pos = holeEnd;
                continue;
            }
            long hole = Native.Seek(_handle, pos, Native.SeekHole);
            long dataEnd = hole < 0 ? end : Math.Min(hole, end);
            if (dataEnd <= pos) dataEnd = end;
            extents.Add(new Extent(dataEnd - pos, ExtentFlags.Data));
            pos = dataEnd;
        }
        if (extents.Count == 0) AddDataToEnd();
        return ValueTask.FromResult<IReadOnlyList<Extent>>(extents);

        void AddDataToEnd()
        {
            if (pos < end) extents.Add(new Extent(end - pos, ExtentFlags.Data));
        }
    }

    /// <summary>The bytes of data the image holds (SEEK_DATA/SEEK_HOLE; holes take no room). A file system without
    /// them counts everything as data: an over-estimate, never an under-estimate.</summary>
    public long AllocatedBytes() => DataRuns(_handle, 0, Size).Sum(r => r.Length);

    public void Dispose() => _handle.Dispose();

    private void WriteZeroBytes(long offset, long length)
    {
        try
        {
            while (length > 0)
            {
                int n = (int)Math.Min(length, ZeroChunk.Length);
                RandomAccess.Write(_handle, ZeroChunk.Span[..n], offset);
                offset += n;
                length -= n;
            }
        }
        catch (IOException ex) when (IsNoSpace(ex))
        {
            throw new BlockDeviceException(DeviceError.NoSpace, $"no space left on the device of image {Path}", ex);
        }
    }

    private ValueTask SyncIf(WriteOptions options) =>
        options.HasFlag(WriteOptions.Fua) ? new ValueTask(Task.Run(SyncAsync)) : ValueTask.CompletedTask;

    private async Task SyncAsync()
    {
        if (_syncDelay > TimeSpan.Zero) await Task.Delay(_syncDelay);
        Native.DataSync(_handle);
    }

    private void ThrowIfReadOnly()
    {
        if (IsReadOnly) throw new BlockDeviceException(DeviceError.ReadOnly, $"image {Path} is read-only");
    }
}
