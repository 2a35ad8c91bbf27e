using Akka.Actor;
using Reloc.Actors.Disk;
using Reloc.Actors.Source;
using Reloc.Nbd.Client;
using Reloc.Storage;
using Reloc.Testing;
using Xunit;

namespace Reloc.Actors.Tests;

/// <summary>A sparse disk larger than one scan piece (1 GiB): the pieces' block status requests go out together,
/// and their zero runs, put back in order, still skip every hole and copy every byte of data.</summary>
public sealed class SparseScanSpecs : Akka.TestKit.Xunit2.TestKit, IAsyncLifetime
{
    private const long Size = 5L << 30;
    private const int Block = 1 << 20;
    private readonly string _dir = Directory.CreateTempSubdirectory("reloc-sparse-scan-").FullName;
    private TestServer _source = null!;

    public SparseScanSpecs() : base(RelocConfig.Node(RelocConfig.Sqlite(Path.Combine(Directory.CreateTempSubdirectory("reloc-spec-db-").FullName, "reloc.db")))) { }

    public async Task InitializeAsync() => _source = await TestServer.StartAsync(Size);

    public async Task DisposeAsync()
    {
        await _source.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Five_GiB_with_three_pieces_of_data_copy_the_data_and_skip_the_holes()
    {
        // Data at 100 MiB, across the 2 GiB piece boundary, and at the very end.
        var writes = new (long Offset, byte[] Data)[]
        {
            (100L << 20, Tool.RandomBytes(300_000, 1)),
            ((2L << 30) - 40_000, Tool.RandomBytes(80_000, 2)),
            (Size - 5000, Tool.RandomBytes(5000, 3)),
        };
        await using (var c = await NbdClient.ConnectAsync(NbdClientOptions.FromUri(_source.Uri())))
        {
            foreach (var (offset, data) in writes) await c.WriteAsync(offset, data);
            await c.FlushAsync();
        }

        Sys.EventStream.Subscribe(TestActor, typeof(VirtualDiskProtocol.RelocationFinished));
        var destPath = Path.Combine(_dir, "dest.img");
        using var image = RawImage.Create(destPath, Size);
        var state = new DiskState(Size, Block);
        var disk = Sys.ActorOf(VirtualDiskActor.Props(new DiskId("sparse"), state, image, new DiskSettings { BlockSize = Block, PrefetchChunkBytes = 4 * Block },
            NbdBlockSource.Factory(NbdClientOptions.FromUri(_source.Uri()), Size)));
        await ExpectMsgAsync<VirtualDiskProtocol.RelocationFinished>(TimeSpan.FromSeconds(60));

        var status = await disk.Ask<VirtualDiskProtocol.Status>(new VirtualDiskProtocol.GetStatus(), TimeSpan.FromSeconds(10));
        Assert.Equal(Size, status.LocalBytes);
        Assert.True(status.FetchedBytes <= 5L * Block, $"fetched {status.FetchedBytes} bytes: holes were copied"); // 4 data blocks (one write spans two)
        // Every piece's holes are known from the scan (a hole read in full would land as zeros too, only slower).
        Assert.True(status.SourceZeroBytes >= Size - 5L * Block, $"the scan found {status.SourceZeroBytes} bytes of holes");
        // Byte for byte: where the source has data the destination has the same bytes, and the destination has
        // data nowhere else (holes and zeros read as zeros on both sides).
        using var src = RawImage.Open(_source.ImagePath(), readOnly: true);
        foreach (var (offset, data) in writes)
        {
            var back = new byte[data.Length];
            await image.ReadAsync(offset, back, CancellationToken.None);
            Assert.Equal(data, back);
        }
        long pos = 0;
        foreach (var e in await image.GetExtentsAsync(0, Size, int.MaxValue, CancellationToken.None))
        {
            if (!e.Flags.HasFlag(ExtentFlags.Zero))
            {
                var mine = new byte[e.Length];
                var theirs = new byte[e.Length];
                await image.ReadAsync(pos, mine, CancellationToken.None);
                await src.ReadAsync(pos, theirs, CancellationToken.None);
                Assert.True(mine.AsSpan().SequenceEqual(theirs), $"the destination's data at {pos}+{e.Length} differs from the source's");
                Assert.True(e.Length <= 2L * Block, $"data extent {pos}+{e.Length}: more than the blocks written");
            }
            pos += e.Length;
        }
        Assert.Equal(Size, pos);
    }
}
