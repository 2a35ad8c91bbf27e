using System.Buffers;
using Reloc.Storage;
using Xunit;

namespace Reloc.Storage.Tests;

/// <summary>RawImage on a real file system: sparse files, hole punching, SEEK_DATA/SEEK_HOLE.</summary>
public sealed class RawImageTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("reloc-storage-test-").FullName;
    private string PathOf(string name) => Path.Combine(_dir, name);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static async Task WriteAsync(RawImage image, long offset, byte[] data, WriteOptions options = WriteOptions.None) =>
        await image.WriteAsync(offset, new ReadOnlySequence<byte>(data), options, CancellationToken.None);

    [Fact]
    public async Task Created_image_is_sparse_and_reads_zero()
    {
        using var image = RawImage.Create(PathOf("a.img"), 8 << 20);
        Assert.Equal(8L << 20, image.Size);
        var extents = await image.GetExtentsAsync(0, image.Size, 100, CancellationToken.None);
        Assert.Equal([new Extent(8 << 20, ExtentFlags.Hole | ExtentFlags.Zero)], extents);
        var buf = new byte[4096];
        Array.Fill(buf, (byte)1);
        Assert.True(image.TryRead(1 << 20, buf));
        Assert.All(buf, b => Assert.Equal(0, b));
    }

    [Fact]
    public async Task Writes_multi_segment_payloads_and_reports_data_extents()
    {
        using var image = RawImage.Create(PathOf("a.img"), 8 << 20);
        var a = Enumerable.Range(0, 4096).Select(i => (byte)i).ToArray();
        var b = Enumerable.Range(0, 8192).Select(i => (byte)(i * 7)).ToArray();
        var first = new Seg(a);
        var last = first.Append(b);
        await image.WriteAsync(1 << 20, new ReadOnlySequence<byte>(first, 0, last, b.Length), WriteOptions.Fua, CancellationToken.None);
        var back = new byte[12288];
        await image.ReadAsync(1 << 20, back, CancellationToken.None);
        Assert.Equal(a.Concat(b).ToArray(), back);
        var extents = await image.GetExtentsAsync(0, image.Size, 100, CancellationToken.None);
        Assert.Equal(new Extent(1 << 20, ExtentFlags.Hole | ExtentFlags.Zero), extents[0]);
        Assert.Equal(ExtentFlags.Data, extents[1].Flags);
        Assert.Equal(image.Size, extents.Sum(e => e.Length));
    }

    [Fact]
    public async Task Trim_and_write_zeroes_read_back_as_zeros_and_punch_or_allocate()
    {
        using var image = RawImage.Create(PathOf("a.img"), 4 << 20);
        await WriteAsync(image, 0, Enumerable.Repeat((byte)0xee, 4 << 20).ToArray());
        await image.TrimAsync(0, 1 << 20, WriteOptions.None, CancellationToken.None);
        await image.WriteZeroesAsync(1 << 20, 1 << 20, WriteOptions.None, CancellationToken.None);
        await image.WriteZeroesAsync(2 << 20, 1 << 20, WriteOptions.NoHole | WriteOptions.Fua, CancellationToken.None);
        var buf = new byte[3 << 20];
        image.TryRead(0, buf);
        Assert.True(buf.AsSpan().IndexOfAnyExcept((byte)0) < 0);
        var extents = await image.GetExtentsAsync(0, image.Size, 100, CancellationToken.None);
        Assert.Equal(new Extent(2 << 20, ExtentFlags.Hole | ExtentFlags.Zero), extents[0]); // trimmed + punched
        Assert.Equal(ExtentFlags.Data, extents[1].Flags);                                    // NO_HOLE allocated
    }

    [Fact]
    public async Task Extents_respect_the_limit_and_the_range()
    {
        using var image = RawImage.Create(PathOf("a.img"), 16 << 20);
        for (int i = 0; i < 8; i++) await WriteAsync(image, i * (2L << 20), new byte[4096].Select(_ => (byte)1).ToArray());
        var two = await image.GetExtentsAsync(0, image.Size, 2, CancellationToken.None);
        Assert.Equal(2, two.Count);
        var inner = await image.GetExtentsAsync(100, 1000, 10, CancellationToken.None);
        Assert.Equal([new Extent(1000, ExtentFlags.Data)], inner);
    }

    [Fact]
    public async Task Read_only_image_refuses_writes_with_a_typed_error()
    {
        var path = PathOf("ro.img");
        File.WriteAllBytes(path, new byte[8192]);
        using var image = RawImage.Open(path, readOnly: true);
        var ex = await Assert.ThrowsAsync<BlockDeviceException>(() => WriteAsync(image, 0, [1]));
        Assert.Equal(DeviceError.ReadOnly, ex.Error);
        await Assert.ThrowsAsync<BlockDeviceException>(() => image.TrimAsync(0, 10, WriteOptions.None, CancellationToken.None).AsTask());
        await image.FlushAsync(CancellationToken.None);
    }

    [Fact]
    public void Opening_a_missing_image_says_which()
    {
        var ex = Assert.Throws<FileNotFoundException>(() => RawImage.Open(PathOf("nope.img"), false));
        Assert.Contains("nope.img", ex.Message);
    }

    [Fact]
    public async Task Flush_makes_data_durable_without_error()
    {
        using var image = RawImage.Create(PathOf("a.img"), 1 << 20);
        await WriteAsync(image, 0, [1, 2, 3]);
        await image.FlushAsync(CancellationToken.None);
        Assert.Equal(new byte[] { 1, 2, 3 }, File.ReadAllBytes(PathOf("a.img"))[..3]);
    }

    private sealed class Seg : ReadOnlySequenceSegment<byte>
    {
        public Seg(byte[] m) => Memory = m;
        public Seg Append(byte[] m)
        {
            var s = new Seg(m) { RunningIndex = RunningIndex + Memory.Length };
            Next = s;
            return s;
        }
    }
}
