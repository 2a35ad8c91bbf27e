using Akka.Actor;
using Reloc.Actors.Disk;
using Reloc.Nbd.Client;
using Reloc.Testing;
using Xunit;
using static Reloc.Actors.Disk.VirtualDiskProtocol;

namespace Reloc.Actors.Tests;

/// <summary>The destination side of a handover between sites: invalidations keep pre-handover copies
/// coherent, writes wait for ownership, epochs fence stale messages.</summary>
public sealed class HandoverSpecs : Akka.TestKit.Xunit2.TestKit, IAsyncLifetime
{
    private const int Size = 4 << 20;
    private const int Block = 64 * 1024;
    private static readonly DiskSettings Settings = new() { Prefetch = false, MissTimeout = TimeSpan.FromSeconds(5) };
    private RelocationHarness _h = null!;

    public HandoverSpecs() : base(RelocConfig.Node(RelocConfig.Sqlite(Path.Combine(Directory.CreateTempSubdirectory("reloc-handover-db-").FullName, "reloc.db")))) { }

    public async Task InitializeAsync() => _h = await RelocationHarness.CreateAsync(Size, seed: 7);
    public async Task DisposeAsync() => await _h.DisposeAsync();

    /// <summary>The guest at the source writes a block (straight into the source image, as the source site would).</summary>
    private async Task SourceWritesAsync(long offset, byte[] data)
    {
        await using var c = await NbdClient.ConnectAsync(_h.SourceOptions);
        await c.WriteAsync(offset, data);
        await c.FlushAsync();
    }

    [Fact]
    public async Task Invalidated_blocks_are_fetched_again_with_the_sources_new_bytes()
    {
        await _h.StartDestinationAsync(Sys, Settings, owner: false);
        await using var guest = await _h.ConnectGuestAsync();
        var before = new byte[Block];
        await guest.ReadAsync(3 * Block, before); // copied to the destination
        var update = Tool.RandomBytes(Block, 99);
        await SourceWritesAsync(3 * Block, update);

        var ack = await _h.Disk.Ask<object>(new Invalidate(0, [(3, 1)]), TimeSpan.FromSeconds(10));
        Assert.IsType<Invalidated>(ack);
        var after = new byte[Block];
        await guest.ReadAsync(3 * Block, after);
        Assert.Equal(update, after);
    }

    [Fact]
    public async Task A_fetch_issued_before_an_invalidation_never_marks_its_block_local()
    {
        // A source that accepts connections and never answers: the fetch of block 5 stays in flight.
        using var blackHole = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        blackHole.Start();
        var silent = new NbdClientOptions { Host = "127.0.0.1", Port = ((System.Net.IPEndPoint)blackHole.LocalEndpoint).Port, Export = "disk" };
        await _h.StartDestinationAsync(Sys, Settings, owner: false, source: silent);
        _h.Disk.Tell(new Warm(5 * Block, 1));
        await AwaitAssertAsync(() => Assert.Equal(Reloc.Storage.BlockState.Fetching, _h.State.Map[5]), TimeSpan.FromSeconds(5));
        // The invalidation arrives while the fetch is in flight; then the fetch "lands" with old data.
        Assert.IsType<Invalidated>(await _h.Disk.Ask<object>(new Invalidate(0, [(5, 1)]), TimeSpan.FromSeconds(10)));
        _h.Disk.Tell(new Landed(5, 1, LandKind.Fetched, Block));
        var status = await _h.StatusAsync();
        Assert.NotEqual(Reloc.Storage.BlockState.Local, _h.State.Map[5]);
        Assert.Equal(0, status.LocalBytes);
    }

    /// <summary>The source's zero region made a real hole, which the destination's scan reports; prefetch
    /// paused so that nothing is copied before the source writes.</summary>
    private async Task StartOverSparseSourceAsync()
    {
        await using (var c = await NbdClient.ConnectAsync(_h.SourceOptions))
        {
            await c.TrimAsync(HoleFirst * Block, HoleBlocks * Block);
            await c.FlushAsync();
        }
        Sys.EventStream.Subscribe(TestActor, typeof(RelocationFinished));
        await _h.StartDestinationAsync(Sys, Settings with { Prefetch = true }, owner: false);
        _h.Disk.Tell(new PausePrefetch());
        await AwaitAssertAsync(async () => Assert.Equal(HoleBlocks * Block, (await _h.StatusAsync()).SourceZeroBytes), TimeSpan.FromSeconds(10));
    }

    private const int HoleFirst = 32, HoleBlocks = 8; // RelocationHarness's zero region of a 4 MiB disk

    [Fact]
    public async Task Source_writes_into_holes_after_the_scan_are_copied_not_punched()
    {
        await StartOverSparseSourceAsync();
        // The guest at the source writes into the hole: one block reported by an invalidation, one (spanning
        // two blocks) only in the final dirty set of the handover.
        await SourceWritesAsync((HoleFirst + 1) * Block, Tool.RandomBytes(Block, 11));
        Assert.IsType<Invalidated>(await _h.Disk.Ask<object>(new Invalidate(0, [(HoleFirst + 1, 1)]), TimeSpan.FromSeconds(10)));
        await SourceWritesAsync((HoleFirst + 5) * Block - 512, Tool.RandomBytes(1024, 12));
        Assert.Equal(new OwnershipConfirmed(1), await _h.Disk.Ask<object>(new TakeOwnership(1, [(HoleFirst + 4, 2)]), TimeSpan.FromSeconds(10)));
        _h.Disk.Tell(new ResumePrefetch());
        await ExpectMsgAsync<RelocationFinished>(TimeSpan.FromSeconds(30));

        var status = await _h.StatusAsync();
        await _h.StopDestinationAsync(Sys);
        Assert.Equal(Tool.Sha256(_h.Source.ImagePath()), Tool.Sha256(_h.DestImagePath));
        Assert.True(status.SkippedBytes >= (HoleBlocks - 3) * Block, $"the rest of the hole was not skipped: {status.SkippedBytes}");
    }

    [Fact]
    public async Task After_the_source_reports_every_block_written_its_holes_are_asked_for_again()
    {
        await StartOverSparseSourceAsync();
        await SourceWritesAsync(HoleFirst * Block, Tool.RandomBytes(Block, 13));
        // A source that restarted counts every block as written: nothing it said about holes stands.
        Assert.IsType<Invalidated>(await _h.Disk.Ask<object>(new Invalidate(0, [(0, Size / Block)]), TimeSpan.FromSeconds(10)));
        await AwaitAssertAsync(async () => Assert.Equal((HoleBlocks - 1) * Block, (await _h.StatusAsync()).SourceZeroBytes), TimeSpan.FromSeconds(10));
        Assert.Equal(new OwnershipConfirmed(1), await _h.Disk.Ask<object>(new TakeOwnership(1, []), TimeSpan.FromSeconds(10)));
        _h.Disk.Tell(new ResumePrefetch());
        await ExpectMsgAsync<RelocationFinished>(TimeSpan.FromSeconds(30));

        var status = await _h.StatusAsync();
        await _h.StopDestinationAsync(Sys);
        Assert.Equal(Tool.Sha256(_h.Source.ImagePath()), Tool.Sha256(_h.DestImagePath));
        Assert.True(status.SkippedBytes >= (HoleBlocks - 1) * Block, $"the hole was not skipped: {status.SkippedBytes}");
    }

    [Fact]
    public async Task Writes_wait_for_ownership_and_stale_epochs_are_refused()
    {
        Sys.EventStream.Subscribe(TestActor, typeof(WriteHeldForHandover));
        await _h.StartDestinationAsync(Sys, Settings, owner: false);
        await using var guest = await _h.ConnectGuestAsync();
        var write = guest.WriteAsync(Block, Tool.RandomBytes(Block, 5));
        await ExpectMsgAsync<WriteHeldForHandover>(TimeSpan.FromSeconds(10)); // the handover trigger
        Assert.False(write.IsCompleted, "a write was accepted before this site owned the disk");

        // The source's final dirty set: block 2 changed there after we may have copied it.
        var reply = await _h.Disk.Ask<object>(new TakeOwnership(1, [(2, 1)]), TimeSpan.FromSeconds(10));
        Assert.Equal(new OwnershipConfirmed(1), reply);
        await write.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(_h.State.IsOwner);

        Assert.IsType<StaleEpoch>(await _h.Disk.Ask<object>(new Invalidate(0, [(7, 1)]), TimeSpan.FromSeconds(10)));
        Assert.IsType<StaleEpoch>(await _h.Disk.Ask<object>(new TakeOwnership(0, []), TimeSpan.FromSeconds(10)));
        Assert.Equal(new OwnershipConfirmed(1), await _h.Disk.Ask<object>(new TakeOwnership(1, []), TimeSpan.FromSeconds(10)));
    }
}
