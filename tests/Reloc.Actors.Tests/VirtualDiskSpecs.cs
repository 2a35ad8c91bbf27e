using Akka.Actor;
using Reloc.Actors.Disk;
using Reloc.Actors.Source;
using Reloc.Nbd.Client;
using Reloc.Testing;
using Xunit;

namespace Reloc.Actors.Tests;

/// <summary>The relocation engine end to end in one process, with real NBD on both sides.</summary>
public sealed class VirtualDiskSpecs : Akka.TestKit.Xunit2.TestKit, IAsyncLifetime
{
    private const int Size = 8 << 20;
    private const int Block = 64 * 1024;
    private static readonly DiskSettings NoPrefetch = new() { Prefetch = false, MissTimeout = TimeSpan.FromSeconds(2) };
    private RelocationHarness _h = null!;

    private readonly string _db;

    public VirtualDiskSpecs() : this(Path.Combine(Directory.CreateTempSubdirectory("reloc-spec-db-").FullName, "reloc.db")) { }

    private VirtualDiskSpecs(string db) : base(RelocConfig.Node(RelocConfig.Sqlite(db))) => _db = db;

    public async Task InitializeAsync() => _h = await RelocationHarness.CreateAsync(Size);
    public async Task DisposeAsync() => await _h.DisposeAsync();

    private byte[] Expected(long offset, int length) => _h.Content.AsSpan((int)offset, length).ToArray();

    [Fact]
    public async Task Serves_at_once_and_completes_with_the_source_bytes()
    {
        Sys.EventStream.Subscribe(TestActor, typeof(VirtualDiskProtocol.RelocationFinished));
        await _h.StartDestinationAsync(Sys, new DiskSettings { RateBytesPerSecond = 16 << 20 });
        await using var guest = await _h.ConnectGuestAsync();
        var rnd = new Random(5);
        for (int i = 0; i < 50; i++)
        {
            long off = rnd.NextInt64(Size - 70000);
            if (off + 70000 > Size / 2 && off < Size / 2 + Size / 8) continue; // leave the zero run to the copy
            var buf = new byte[rnd.Next(1, 70000)];
            await guest.ReadAsync(off, buf);
            Assert.Equal(Expected(off, buf.Length), buf);
        }
        await ExpectMsgAsync<VirtualDiskProtocol.RelocationFinished>(TimeSpan.FromSeconds(60));
        var status = await _h.StatusAsync();
        Assert.Equal("complete", status.State);
        Assert.Equal(Size, status.LocalBytes);
        // The zero run (which the guest did not read) was skipped, not copied.
        Assert.True(status.SkippedBytes >= Size / 8 - 2 * Block, $"zero region not skipped: {status.SkippedBytes}");
        // The guest's connection survived the switch to plain serving.
        var after = new byte[4096];
        await guest.ReadAsync(Size - 4096, after);
        Assert.Equal(Expected(Size - 4096, 4096), after);
        await guest.FlushAsync();
        Assert.Equal(Tool.Sha256(_h.Source.ImagePath()), Tool.Sha256(_h.DestImagePath));
    }

    /// <summary>A source connection that counts its reads.</summary>
    private sealed class CountingSource(IBlockSource inner) : IBlockSource
    {
        public int Reads;
        public long Size => inner.Size;
        public Task ReadAsync(long offset, Memory<byte> destination, CancellationToken ct)
        {
            Interlocked.Increment(ref Reads);
            return inner.ReadAsync(offset, destination, ct);
        }
        public Task<IReadOnlyList<Reloc.Storage.Extent>?> GetExtentsAsync(long offset, long length, CancellationToken ct) => inner.GetExtentsAsync(offset, length, ct);
        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }

    [Fact]
    public async Task Two_background_connections_share_the_copy_and_the_image_ends_as_the_guest_wrote_it()
    {
        Sys.EventStream.Subscribe(TestActor, typeof(VirtualDiskProtocol.RelocationFinished));
        var background = new System.Collections.Concurrent.ConcurrentQueue<CountingSource>();
        await _h.StartDestinationAsync(Sys, new DiskSettings { PrefetchConnections = 2, RateBytesPerSecond = 8 << 20 },
            sources: inner => lane =>
            {
                if (lane != SourceLane.Background) return inner(lane);
                var counting = new CountingSource(inner(lane));
                background.Enqueue(counting);
                return counting;
            });
        var expected = _h.Content.ToArray();
        await using var guest = await _h.ConnectGuestAsync();
        async Task WriteAsync(long offset, int length, byte fill)
        {
            var data = Enumerable.Repeat(fill, length).ToArray();
            await guest.WriteAsync(offset, data);
            data.CopyTo(expected, offset);
        }
        await WriteAsync(Size / 2 + Block + 100, 300, 0x5a);     // into the source's zero run (a hole), after the start
        await WriteAsync(3 * Block - 1000, 2000, 0xa5);         // spanning two blocks
        await WriteAsync(Size - Block, Block, 0x11);            // a whole block, the last one
        await WriteAsync(3 * Block - 500, 100, 0x22);           // a rewrite of what was just written
        await guest.FlushAsync();
        await ExpectMsgAsync<VirtualDiskProtocol.RelocationFinished>(TimeSpan.FromSeconds(60));
        Assert.Equal(2, background.Count);
        Assert.All(background, c => Assert.True(c.Reads > 0, "each background connection carried reads"));
        await guest.FlushAsync();
        Assert.Equal(expected, await File.ReadAllBytesAsync(_h.DestImagePath));
    }

    [Fact]
    public async Task A_small_miss_is_answered_ahead_of_its_block_which_lands_under_later_writes()
    {
        await _h.StartDestinationAsync(Sys, NoPrefetch);
        await using var guest = await _h.ConnectGuestAsync();
        const long block = 3 * Block;
        var small = new byte[1024];
        await guest.ReadAsync(block + 4096, small); // range first: read from the source, the block fetched behind it
        Assert.Equal(Expected(block + 4096, 1024), small);
        // A write into the same block right after, over part of what was read: it waits for the block or lands on it.
        var data = Tool.RandomBytes(3000, 9);
        await guest.WriteAsync(block + 4000, data);
        await guest.FlushAsync();
        var back = new byte[2 * Block];
        await guest.ReadAsync(block, back);
        var expected = Expected(block, 2 * Block);
        data.CopyTo(expected, 4000);
        Assert.Equal(expected, back);
        var status = await _h.StatusAsync();
        Assert.Equal(2, status.OnDemandFetches); // the small read's block, then the next one: never the same block twice
        Assert.Equal(2L * Block, status.LocalBytes);
    }

    [Fact]
    public async Task Concurrent_misses_on_one_block_cause_one_fetch()
    {
        await _h.StartDestinationAsync(Sys, NoPrefetch);
        await using var guest = await _h.ConnectGuestAsync();
        var reads = Enumerable.Range(0, 16).Select(async i =>
        {
            var buf = new byte[512];
            await guest.ReadAsync(3 * Block + i * 512, buf);
            Assert.Equal(Expected(3 * Block + i * 512, 512), buf);
        });
        await Task.WhenAll(reads);
        var status = await _h.StatusAsync();
        Assert.Equal(1, status.OnDemandFetches);
        Assert.Equal(Block, status.FetchedBytes);
    }

    [Fact]
    public async Task Whole_block_writes_skip_the_fetch_and_partial_writes_keep_both_sides()
    {
        await _h.StartDestinationAsync(Sys, NoPrefetch);
        await using var guest = await _h.ConnectGuestAsync();
        var whole = Tool.RandomBytes(2 * Block, 9);
        await guest.WriteAsync(4 * Block, whole);
        var part = Tool.RandomBytes(100, 10);
        await guest.WriteAsync(9 * Block + 1000, part);
        await guest.FlushAsync();

        var status = await _h.StatusAsync();
        Assert.Equal(Block, status.FetchedBytes);            // only block 9, for read-modify-write
        Assert.Equal(2 * Block, status.WrittenBytes);

        var back = new byte[2 * Block];
        await guest.ReadAsync(4 * Block, back);
        Assert.Equal(whole, back);
        var block9 = new byte[Block];
        await guest.ReadAsync(9 * Block, block9);
        var expected = Expected(9 * Block, Block);
        part.CopyTo(expected, 1000);
        Assert.Equal(expected, block9);
    }

    [Fact]
    public async Task Restart_resumes_without_refetching_what_landed()
    {
        var settings = NoPrefetch;
        await _h.StartDestinationAsync(Sys, settings);
        await using (var guest = await _h.ConnectGuestAsync())
        {
            var buf = new byte[20 * Block];
            await guest.ReadAsync(0, buf);
            await guest.WriteAsync(30 * Block + 7, new byte[] { 1, 2, 3 });
            await guest.FlushAsync(); // data and bits durable
        }
        await _h.StopDestinationAsync(Sys);

        using var second = ActorSystem.Create("second", RelocConfig.Node(RelocConfig.Sqlite(_db)));
        await _h.StartDestinationAsync(second, settings with { Prefetch = true });
        second.EventStream.Subscribe(TestActor, typeof(VirtualDiskProtocol.RelocationFinished));
        await ExpectMsgAsync<VirtualDiskProtocol.RelocationFinished>(TimeSpan.FromSeconds(60));
        var status = await _h.StatusAsync();
        // Blocks 0-19 and 30 landed before the restart and are not fetched again.
        // Every block landed exactly once over both runs: blocks 0-19 and 30, persisted by the FLUSH
        // before the restart, were not fetched again.
        Assert.Equal(Size, status.FetchedBytes + status.SkippedBytes + status.WrittenBytes);
        var expected = (byte[])_h.Content.Clone();
        new byte[] { 1, 2, 3 }.CopyTo(expected, 30 * Block + 7);
        await _h.StopDestinationAsync(second);
        Assert.Equal(expected, File.ReadAllBytes(_h.DestImagePath));
    }

    /// <summary>Issue 10: a disk actor that dies is created again (with backoff) by its supervisor, which its site
    /// addresses; the new one recovers from the journal into the reset state and serves on, the same bytes.</summary>
    [Fact]
    public async Task A_disk_actor_that_dies_is_created_again_and_resumes_from_its_journal()
    {
        var settings = NoPrefetch with { RestartBackoffMin = TimeSpan.FromMilliseconds(100), RestartBackoffMax = TimeSpan.FromMilliseconds(200) };
        await _h.StartDestinationAsync(Sys, settings, supervised: true);
        await using var guest = await _h.ConnectGuestAsync();
        var buf = new byte[20 * Block];
        await guest.ReadAsync(0, buf);
        await guest.WriteAsync(30 * Block + 7, new byte[] { 1, 2, 3 });
        await guest.FlushAsync(); // data and bits durable
        var child = await Sys.ActorSelection(_h.Disk.Path / "disk").ResolveOne(TimeSpan.FromSeconds(10));
        Watch(child);
        child.Tell(Kill.Instance);
        await ExpectTerminatedAsync(child, TimeSpan.FromSeconds(10));
        // The same supervisor answers again once the new incarnation recovered.
        await AwaitAssertAsync(async () => Assert.True((await _h.StatusAsync()).LocalBytes >= 21L * Block), TimeSpan.FromSeconds(20), TimeSpan.FromMilliseconds(100));
        var whole = new byte[Size];
        await guest.ReadAsync(0, whole);
        var expected = (byte[])_h.Content.Clone();
        new byte[] { 1, 2, 3 }.CopyTo(expected, 30 * Block + 7);
        Assert.Equal(expected, whole);
    }

    /// <summary>Issue 10: an arrival that is over (dropped, or complete and owned by the site's registry) deletes its
    /// journal; a disk actor with the same persistence id afterwards recovers nothing.</summary>
    [Fact]
    public async Task A_deleted_journal_is_not_replayed()
    {
        await _h.StartDestinationAsync(Sys, NoPrefetch, supervised: true);
        await using (var guest = await _h.ConnectGuestAsync())
        {
            await guest.ReadAsync(0, new byte[8 * Block]);
            await guest.FlushAsync(); // 8 blocks' bits in the journal
        }
        Assert.Equal(8L * Block, (await _h.StatusAsync()).LocalBytes);
        Watch(_h.Disk);
        _h.Disk.Tell(new VirtualDiskProtocol.DeleteJournal(ThenStop: true));
        await ExpectTerminatedAsync(_h.Disk, TimeSpan.FromSeconds(10)); // the supervisor too: its child ended on purpose
        await _h.StopDestinationAsync(Sys);
        File.Delete(_h.DestImagePath);
        await _h.StartDestinationAsync(Sys, NoPrefetch);
        Assert.Equal(0L, (await _h.StatusAsync()).LocalBytes);
    }

    [Fact]
    public async Task Source_failure_keeps_local_reads_going_and_fails_misses_cleanly_until_it_returns()
    {
        await _h.StartDestinationAsync(Sys, NoPrefetch);
        await using var guest = await _h.ConnectGuestAsync();
        var local = new byte[Block];
        await guest.ReadAsync(0, local);
        await _h.Source.StopAsync();

        var again = new byte[Block];
        await guest.ReadAsync(0, again); // local: served without the source
        Assert.Equal(Expected(0, Block), again);
        var miss = await Assert.ThrowsAsync<NbdClientException>(() => guest.ReadAsync(5 * Block, new byte[4096]));
        Assert.Equal(Reloc.Nbd.Protocol.NbdError.Io, miss.Error);

        await _h.RestartSourceAsync();
        var later = new byte[4096];
        await guest.ReadAsync(5 * Block, later); // the fetcher reconnected by itself
        Assert.Equal(Expected(5 * Block, 4096), later);
    }

    [Fact]
    public async Task Trim_and_write_zeroes_make_remote_blocks_local_without_fetching()
    {
        await _h.StartDestinationAsync(Sys, NoPrefetch);
        await using var guest = await _h.ConnectGuestAsync();
        await guest.TrimAsync(10 * Block, 4 * Block);
        await guest.WriteZeroesAsync(20 * Block, 2 * Block);
        var status = await _h.StatusAsync();
        Assert.Equal(0, status.FetchedBytes);
        Assert.Equal(6 * Block, status.LocalBytes);
        var buf = new byte[2 * Block];
        await guest.ReadAsync(20 * Block, buf);
        Assert.All(buf, b => Assert.Equal(0, b));
        Assert.Equal(0, (await _h.StatusAsync()).FetchedBytes); // read from the local zeros, no fetch
    }

    [Fact]
    public async Task Prefetch_pauses_resumes_and_takes_a_new_rate_at_run_time()
    {
        Sys.EventStream.Subscribe(TestActor, typeof(VirtualDiskProtocol.RelocationFinished));
        await _h.StartDestinationAsync(Sys, new DiskSettings { RateBytesPerSecond = 1 << 20 });
        _h.Disk.Tell(new VirtualDiskProtocol.PausePrefetch());
        await AwaitAssertAsync(async () => Assert.True((await _h.StatusAsync()).PrefetchPaused), TimeSpan.FromSeconds(10));
        // Chunks in flight when paused still land; then nothing moves for a while.
        long paused = 0;
        await AwaitAssertAsync(async () =>
        {
            paused = (await _h.StatusAsync()).LocalBytes;
            await ExpectNoMsgAsync(TimeSpan.FromMilliseconds(500)); // an interval with nothing to wait for
            Assert.Equal(paused, (await _h.StatusAsync()).LocalBytes);
        }, TimeSpan.FromSeconds(15));
        Assert.True(paused < Size, "finished before the pause could be seen");
        _h.Disk.Tell(new VirtualDiskProtocol.SetRate(0));
        _h.Disk.Tell(new VirtualDiskProtocol.ResumePrefetch());
        await ExpectMsgAsync<VirtualDiskProtocol.RelocationFinished>(TimeSpan.FromSeconds(30));
        Assert.Equal(Tool.Sha256(_h.Source.ImagePath()), Tool.Sha256(_h.DestImagePath));
    }
}
