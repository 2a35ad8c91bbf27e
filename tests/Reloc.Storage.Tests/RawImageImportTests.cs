using Reloc.Storage;
using Reloc.Testing;
using Xunit;

namespace Reloc.Storage.Tests;

/// <summary><see cref="RawImage.ImportSparse"/> (<c>disk create --from FILE</c>) on a real file system: a thin file costs
/// its data, not its size, and its content arrives whole (checked by qemu-img compare).</summary>
public sealed class RawImageImportTests : IDisposable
{
    private const long MiB = 1L << 20, GiB = 1L << 30;
    private readonly string _dir = Directory.CreateTempSubdirectory("reloc-import-test-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task A_sparse_file_is_imported_by_its_extents_holes_unread_and_content_identical()
    {
        // 64 GiB virtual, 3 MiB of data: at 0, at an odd offset far in, and at the very end; plus 1 MiB of written
        // zeros (allocated in the source) that the import leaves a hole.
        string source = Path.Combine(_dir, "thin.raw"), target = Path.Combine(_dir, "imported.img");
        const long size = 64 * GiB;
        var extents = new[] { (Offset: 0L, Seed: 1), (Offset: 37 * GiB + 4096, Seed: 2), (Offset: size - MiB, Seed: 3) };
        using (var h = File.OpenHandle(source, FileMode.CreateNew, FileAccess.ReadWrite))
        {
            RandomAccess.SetLength(h, size);
            foreach (var (offset, seed) in extents) RandomAccess.Write(h, Tool.RandomBytes((int)MiB, seed), offset);
            RandomAccess.Write(h, new byte[MiB], 10 * GiB);
        }
        using (var src = RawImage.Open(source, readOnly: true))
            Assert.Equal(4 * MiB, RoundUp(src.AllocatedBytes()));

        long readBefore = BytesRead();
        using (var image = RawImage.ImportSparse(source, target))
        {
            long read = BytesRead() - readBefore;
            // Reading the whole file (the old import) would be 64 GiB here; the data extents are 4 MiB (+ the test
            // process's other reads, other classes running beside this one).
            Assert.True(read < 256 * MiB, $"the import read {read} bytes of a file holding 4 MiB");
            Assert.Equal(size, image.Size);
            Assert.Equal(3 * MiB, RoundUp(image.AllocatedBytes()));
        }
        // Byte for byte (what both have as holes reads as zeros and is compared as such).
        await Tool.CheckAsync("qemu-img", "compare", "-q", "-f", "raw", "-F", "raw", source, target);
    }

    [Fact]
    public async Task A_file_without_holes_is_copied_whole_its_zero_MiBs_left_holes()
    {
        string source = Path.Combine(_dir, "dense.raw"), target = Path.Combine(_dir, "imported.img");
        var data = new byte[8 * MiB];
        Tool.RandomBytes((int)(3 * MiB), 7).CopyTo(data, 0);
        Tool.RandomBytes((int)(2 * MiB) + 512, 8).CopyTo(data, (int)(5 * MiB)); // ends mid-way into the last MiB
        await File.WriteAllBytesAsync(source, data);
        using (var image = RawImage.ImportSparse(source, target))
            Assert.Equal(3 * MiB + 3 * MiB, RoundUp(image.AllocatedBytes())); // MiB 3 and 4 are zeros: holes
        Assert.Equal(Tool.Sha256(source), Tool.Sha256(target));
        await Tool.CheckAsync("qemu-img", "compare", "-q", "-f", "raw", "-F", "raw", source, target);
    }

    /// <summary>The file system allocates in its own blocks: round to whole MiBs.</summary>
    private static long RoundUp(long bytes) => (bytes + MiB - 1) / MiB * MiB;

    /// <summary>The bytes this process has read so far (read/pread calls, /proc/self/io's rchar).</summary>
    private static long BytesRead() =>
        long.Parse(File.ReadLines("/proc/self/io").First(l => l.StartsWith("rchar:", StringComparison.Ordinal))["rchar:".Length..].Trim());
}
