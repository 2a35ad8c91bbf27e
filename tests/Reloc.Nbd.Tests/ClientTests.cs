using Reloc.Testing;
using Reloc.Nbd.Client;
using Reloc.Nbd.Protocol;
using Reloc.Nbd.Server;
using Reloc.Nbd.Tests.Support;
using Reloc.Storage;
using Xunit;

namespace Reloc.Nbd.Tests;

/// <summary>NbdClient against our own server (in-process): every operation checked against the image file.</summary>
public sealed class ClientTests : IAsyncLifetime
{
    private const int Size = 64 << 20;
    private TestServer _server = null!;

    public async Task InitializeAsync() => _server = await TestServer.StartAsync(Size, roContent: Tool.RandomBytes(1 << 20, 3));
    public async Task DisposeAsync() => await _server.DisposeAsync();

    private NbdClientOptions Options(string export = "disk", bool structured = true) =>
        NbdClientOptions.FromUri(_server.Uri(export)) with { StructuredReplies = structured };

    private byte[] Image(long offset, int count)
    {
        using var f = new FileStream(_server.ImagePath(), FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var b = new byte[count];
        f.Position = offset;
        f.ReadExactly(b);
        return b;
    }

    [Fact]
    public async Task Handshake_negotiates_structured_replies_block_status_and_block_sizes()
    {
        await using var c = await NbdClient.ConnectAsync(Options());
        Assert.Equal(Size, c.Size);
        Assert.True(c.StructuredReplies);
        Assert.True(c.CanBlockStatus);
        Assert.True(c.IsConnected);
        Assert.False(c.IsReadOnly);
        Assert.True(c.TransmissionFlags.HasFlag(TransmissionFlags.SendWriteZeroes | TransmissionFlags.SendTrim | TransmissionFlags.SendFua));
        Assert.Equal((1, 4096, 32 << 20), (c.MinBlockSize, c.PreferredBlockSize, c.MaxBlockSize));

        await using var ro = await NbdClient.ConnectAsync(NbdClientOptions.FromUri(_server.UnixUri("ro")) with { BlockStatus = false });
        Assert.True(ro.IsReadOnly);
        Assert.False(ro.CanBlockStatus);
        Assert.Equal(1 << 20, ro.Size);
        var ex = await Assert.ThrowsAsync<NbdClientException>(() => ro.WriteAsync(0, new byte[512]));
        Assert.Equal(NbdError.Perm, ex.Error);
        await Assert.ThrowsAsync<NotSupportedException>(() => ro.BlockStatusAsync(0, 4096));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Read_write_flush_trim_and_zero_round_trip_through_the_image(bool structured)
    {
        await using var c = await NbdClient.ConnectAsync(Options(structured: structured));
        Assert.Equal(structured, c.StructuredReplies);
        Assert.Equal(structured, c.CanBlockStatus); // base:allocation needs structured replies

        var data = Tool.RandomBytes(1 << 20, 21);
        await c.WriteAsync(1 << 20, data);
        await c.FlushAsync();
        Assert.Equal(data, Image(1 << 20, data.Length));
        var back = new byte[data.Length];
        await c.ReadAsync(1 << 20, back);
        Assert.Equal(data, back);

        var fua = Tool.RandomBytes(4099, 22); // unaligned offset and length
        await c.WriteAsync(3 * 4096 + 5, fua, fua: true);
        Assert.Equal(fua, Image(3 * 4096 + 5, fua.Length));

        await c.TrimAsync(1 << 20, 256 << 10);
        await c.WriteZeroesAsync((1 << 20) + (512 << 10), 128 << 10, noHole: true);
        await c.WriteZeroesAsync((1 << 20) + (768 << 10), 64 << 10);
        var expected = (byte[])data.Clone();
        Array.Clear(expected, 0, 256 << 10);
        Array.Clear(expected, 512 << 10, 128 << 10);
        Array.Clear(expected, 768 << 10, 64 << 10);
        await c.ReadAsync(1 << 20, back);
        Assert.Equal(expected, back);
        Assert.Equal(expected, Image(1 << 20, expected.Length));
    }

    [Fact]
    public async Task Holes_read_as_zeros_over_a_dirty_buffer()
    {
        await using var c = await NbdClient.ConnectAsync(Options());
        await c.WriteAsync(8 << 20, Tool.RandomBytes(4096, 5));
        var buffer = new byte[1 << 20];
        Array.Fill(buffer, (byte)0xee);
        await c.ReadAsync(16 << 20, buffer); // never written: the server answers with a hole chunk
        Assert.All(buffer, b => Assert.Equal(0, b));
    }

    [Fact]
    public async Task Block_status_maps_a_sparse_image()
    {
        await using var c = await NbdClient.ConnectAsync(Options());
        await c.WriteAsync(1 << 20, Tool.RandomBytes(1 << 20, 6));
        var map = await c.BlockStatusAsync(0, 4 << 20);
        Assert.Equal(0, map[0].Offset);
        Assert.Contains(map, e => e.Offset == 0 && e.Extent == new Extent(1 << 20, ExtentFlags.Hole | ExtentFlags.Zero));
        Assert.Contains(map, e => e.Offset == 1 << 20 && e.Extent == new Extent(1 << 20, ExtentFlags.Data));
        for (int i = 1; i < map.Count; i++) Assert.Equal(map[i - 1].Offset + map[i - 1].Extent.Length, map[i].Offset);
        Assert.True(map[^1].Offset + map[^1].Extent.Length <= 4 << 20);
    }

    [Fact]
    public async Task Hundreds_of_concurrent_reads_each_get_their_own_data()
    {
        const int block = 64 << 10, count = 256;
        var data = Tool.RandomBytes(count * block, 7);
        await using var c = await NbdClient.ConnectAsync(Options() with { MaxInFlight = 64 });
        await c.WriteAsync(0, data);
        var buffers = Enumerable.Range(0, count).Select(_ => new byte[block]).ToArray();
        // Scrambled offsets, so neighbouring cookies ask for unrelated blocks.
        var order = Enumerable.Range(0, count).OrderBy(i => (i * 7919) % count).ToArray();
        await Task.WhenAll(order.Select(i => c.ReadAsync((long)i * block, buffers[i])));
        for (int i = 0; i < count; i++) Assert.True(data.AsSpan(i * block, block).SequenceEqual(buffers[i]), $"block {i}");
        Assert.Equal(0, c.InFlight);
    }

    [Fact]
    public async Task A_40_MiB_read_and_write_are_split_below_the_servers_32_MiB_limit()
    {
        var data = Tool.RandomBytes(40 << 20, 8);
        await using var c = await NbdClient.ConnectAsync(Options());
        await c.WriteAsync(4096, data); // unsplit, the server would refuse these with EINVAL/EOVERFLOW
        var back = new byte[data.Length];
        await c.ReadAsync(4096, back);
        Assert.True(data.AsSpan().SequenceEqual(back));
        Assert.True(data.AsSpan().SequenceEqual(Image(4096, data.Length)));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Server_errors_become_NbdClientException_and_the_connection_goes_on(bool structured)
    {
        await using var c = await NbdClient.ConnectAsync(Options(structured: structured));
        var ex = await Assert.ThrowsAsync<NbdClientException>(() => c.ReadAsync(Size - 10, new byte[20]));
        Assert.Equal(NbdError.Inval, ex.Error);
        Assert.Equal(NbdCommand.Read, ex.Command);
        Assert.Contains("'disk'", ex.Message);
        var nospc = await Assert.ThrowsAsync<NbdClientException>(() => c.WriteAsync(Size - 10, new byte[20]));
        Assert.Equal(NbdError.NoSpc, nospc.Error);
        Assert.True(c.IsConnected);
        await c.ReadAsync(0, new byte[512]);
    }

    [Fact]
    public async Task Unknown_export_fails_with_a_message_naming_it()
    {
        var ex = await Assert.ThrowsAsync<NbdHandshakeException>(() => NbdClient.ConnectAsync(Options("nosuchdisk")));
        Assert.Equal(OptionReplyType.ErrUnknown, ex.Reply);
        Assert.Equal("nosuchdisk", ex.Export);
        Assert.Contains("'nosuchdisk'", ex.Message);
        Assert.Contains("no such export", ex.Message);
    }

    [Fact]
    public async Task Nothing_listening_fails_with_IOException()
    {
        var port = _server.Port;
        await _server.Server.StopAsync();
        await Assert.ThrowsAsync<IOException>(() => NbdClient.ConnectAsync(new NbdClientOptions { Host = "127.0.0.1", Port = port, Export = "disk" }));
    }

    [Fact]
    public async Task Server_shutdown_closes_the_client_and_later_calls_fail_fast()
    {
        var c = await NbdClient.ConnectAsync(Options());
        await c.ReadAsync(0, new byte[4096]);
        await _server.Server.StopAsync();
        await c.Closed.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(c.IsConnected);
        Assert.IsType<NbdConnectionLostException>(c.CloseReason);
        await Assert.ThrowsAsync<NbdConnectionLostException>(() => c.ReadAsync(0, new byte[4096]));
        await Assert.ThrowsAsync<NbdConnectionLostException>(() => c.FlushAsync());
        await c.DisposeAsync();
        await Assert.ThrowsAsync<NbdConnectionLostException>(() => c.ReadAsync(0, new byte[4096]));
    }

    [Fact]
    public async Task Dispose_answers_requests_in_flight_then_fails_later_calls_as_disposed()
    {
        var c = await NbdClient.ConnectAsync(Options());
        var buffers = Enumerable.Range(0, 32).Select(_ => new byte[256 << 10]).ToArray();
        var reads = buffers.Select((b, i) => c.ReadAsync(i * (long)b.Length, b)).ToArray();
        await c.DisposeAsync();
        await Task.WhenAll(reads); // the server answered them before it saw NBD_CMD_DISC close the connection
        Assert.False(c.IsConnected);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => c.ReadAsync(0, new byte[1]));
    }

    [Fact]
    public async Task Unix_socket_uri_connects()
    {
        await using var c = await NbdClient.ConnectAsync(NbdClientOptions.FromUri(_server.UnixUri()));
        var data = Tool.RandomBytes(8192, 9);
        await c.WriteAsync(0, data);
        var back = new byte[8192];
        await c.ReadAsync(0, back);
        Assert.Equal(data, back);
    }

    [Fact]
    public async Task Reconnecting_client_rides_out_a_server_restart_on_the_same_socket()
    {
        var data = Tool.RandomBytes(64 << 10, 10);
        // The Unix socket, unlike a freed TCP port, cannot be taken by a test running in parallel.
        await using var rc = await ReconnectingNbdClient.ConnectAsync(NbdClientOptions.FromUri(_server.UnixUri()),
            new ReconnectOptions { InitialDelay = TimeSpan.FromMilliseconds(20), MaxDelay = TimeSpan.FromMilliseconds(100) });
        await (await rc.GetClientAsync()).WriteAsync(0, data);
        await _server.Server.StopAsync();

        // While the server is down a read waits, and the caller's token decides when to give up.
        using (var giveUp = new CancellationTokenSource(TimeSpan.FromMilliseconds(300)))
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => rc.ReadAsync(0, new byte[16], giveUp.Token));
        Assert.False(rc.IsConnected);
        Assert.IsAssignableFrom<IOException>(rc.LastError);

        var back = new byte[data.Length];
        var read = rc.ReadAsync(0, back);
        // A second server over the same image and socket stands in for the restarted node.
        var catalog = new ExportCatalog();
        using var image = RawImage.Open(_server.ImagePath(), readOnly: false);
        catalog.Add(new NbdExport("disk", image));
        await using var restarted = new NbdServer(catalog);
        restarted.ListenUnix(_server.UnixSocket);
        await read.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(data, back);
        Assert.Equal(2, rc.Connections);
        Assert.True(rc.IsConnected);
    }

    [Fact]
    public async Task A_waiting_read_cuts_a_long_reconnect_backoff_short()
    {
        // Down long enough that the next attempt is seconds away: a read that starts waiting must not wait for it
        // (a guest's miss timeout can be shorter than the backoff), while nobody waiting keeps the long backoff.
        var data = Tool.RandomBytes(4096, 11);
        await using var rc = await ReconnectingNbdClient.ConnectAsync(NbdClientOptions.FromUri(_server.UnixUri()),
            new ReconnectOptions { InitialDelay = TimeSpan.FromSeconds(20), MaxDelay = TimeSpan.FromSeconds(20) });
        await (await rc.GetClientAsync()).WriteAsync(0, data);
        await _server.Server.StopAsync();
        // The supervisor notices the loss, fails its first reconnect on the dead socket and sleeps 20 s.
        using (var giveUp = new CancellationTokenSource(TimeSpan.FromMilliseconds(300)))
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => rc.ReadAsync(0, new byte[16], giveUp.Token));
        var catalog = new ExportCatalog();
        using var image = RawImage.Open(_server.ImagePath(), readOnly: false);
        catalog.Add(new NbdExport("disk", image));
        await using var restarted = new NbdServer(catalog);
        restarted.ListenUnix(_server.UnixSocket);

        var back = new byte[data.Length];
        await rc.ReadAsync(0, back).WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(data, back);
        Assert.Equal(2, rc.Connections);
    }

    [Fact]
    public async Task Reconnecting_client_starts_on_the_open_connection_it_is_given()
    {
        var first = await NbdClient.ConnectAsync(Options());
        await using var rc = new ReconnectingNbdClient(Options(), first: first);
        Assert.Same(first, await rc.GetClientAsync());
        var back = new byte[4096];
        await rc.ReadAsync(0, back);
        Assert.Equal(1, rc.Connections);
        Assert.True(_server.Server.Catalog.TryGet("disk", out var export));
        Assert.Equal(1, export.Clients.Count); // no second connection was made
    }

    [Fact]
    public async Task Warm_up_runs_every_request_once_plain_and_over_TLS_and_leaves_no_file_behind()
    {
        var dir = Directory.CreateTempSubdirectory("reloc-warm-up").FullName;
        try
        {
            // The TLS pass (throwaway CA, client certificate required) is what a TLS site's first connection needs warm.
            var both = await NbdWarmUp.TryRunAsync(dir, tls: true, TimeSpan.FromMinutes(1));
            Assert.Equal((true, true, null), (both.Plain, both.Tls, both.Failure));
            Assert.Empty(Directory.EnumerateFileSystemEntries(dir)); // image and certificates removed
            var plain = await NbdWarmUp.TryRunAsync(dir, tls: false, TimeSpan.FromMinutes(1));
            Assert.Equal((true, false, null), (plain.Plain, plain.Tls, plain.Failure));
            // It never fails its caller: a directory it cannot write to is a reason, not an exception.
            var missing = await NbdWarmUp.TryRunAsync(Path.Combine(dir, "missing"), tls: true, TimeSpan.FromMinutes(1));
            Assert.Equal((false, false), (missing.Plain, missing.Tls));
            Assert.NotNull(missing.Failure);
            // Bounded in time: past its timeout it gives up and says so.
            var late = await NbdWarmUp.TryRunAsync(dir, tls: true, TimeSpan.FromTicks(1));
            Assert.Equal((false, false), (late.Plain, late.Tls));
            Assert.Contains("timed out", late.Failure);
            Assert.Empty(Directory.EnumerateFileSystemEntries(dir));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
