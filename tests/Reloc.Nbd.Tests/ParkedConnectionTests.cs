using Microsoft.Extensions.Logging;
using Reloc.Nbd.Client;
using Reloc.Nbd.Server;
using Reloc.Nbd.Tests.Support;
using Reloc.Nbd.Tls;
using Reloc.Testing;
using Xunit;

namespace Reloc.Nbd.Tests;

/// <summary>A connection parked in the option phase (TCP, greeting, TLS, STRUCTURED_REPLY done) and finished later for an
/// export is the same connection a new one would be, against our server and the real ones, with and without TLS; and
/// the pool of them never hands out one that the server's handshake timeout has closed.</summary>
public sealed class ParkedConnectionTests(TlsFixture pki) : IClassFixture<TlsFixture>
{
    private const long Size = 8 << 20;

    [Theory]
    [InlineData("reloc", false)]
    [InlineData("reloc", true)]
    [InlineData("qemu-nbd", false)]
    [InlineData("qemu-nbd", true)]
    [InlineData("nbdkit", false)]
    [InlineData("nbdkit", true)]
    public async Task A_parked_connection_finished_for_an_export_reads_writes_and_has_block_status(string server, bool tls)
    {
        var image = Path.Combine(Path.GetTempPath(), $"reloc-parked-{Guid.NewGuid():N}.img");
        using (var f = File.Create(image)) f.SetLength(Size);
        try
        {
            string[] qemuTls = tls ? ["--object", $"tls-creds-x509,id=tls0,endpoint=server,dir={pki.Good},verify-peer=off", "--tls-creds", "tls0"] : [];
            string[] nbdkitTls = tls ? ["--tls=require", $"--tls-certificates={pki.Good}"] : [];
            await using var external = server switch
            {
                "qemu-nbd" => await ExternalServer.StartQemuNbdAsync(image, "disk", qemuTls),
                "nbdkit" => await ExternalServer.StartNbdkitAsync([.. nbdkitTls, "memory", "8M"]),
                _ => null,
            };
            await using var own = server == "reloc"
                ? await TestServer.StartAsync(Size, settings: tls ? TlsFixture.Settings(NbdTlsMode.Require, pki.Good) : new NbdServerSettings())
                : null;
            var endpoint = new NbdClientOptions { Host = "127.0.0.1", Port = own?.Port ?? external!.Port };
            if (tls) endpoint = endpoint with { Tls = NbdClientTlsMode.Require, TlsCertificates = pki.Good };
            string export = server == "nbdkit" ? "" : "disk";

            await using var parked = await NbdClient.ParkAsync(endpoint with { Export = "ignored" });
            Assert.Equal(tls, parked.IsTls);
            Assert.True(parked.StructuredReplies);
            Assert.False(parked.LooksClosed);
            await using var c = await parked.FinishAsync(export);
            Assert.True(parked.LooksClosed); // spent
            await Assert.ThrowsAsync<ObjectDisposedException>(() => parked.FinishAsync(export));

            Assert.Equal(export, c.Export);
            Assert.Equal(Size, c.Size);
            Assert.Equal(tls, c.IsTls);
            Assert.True(c.StructuredReplies);
            Assert.True(c.CanBlockStatus);
            var data = Tool.RandomBytes(70_000, 5);
            await c.WriteAsync(4096, data);
            var back = new byte[data.Length];
            await c.ReadAsync(4096, back);
            Assert.Equal(data, back);
            Assert.NotEmpty(await c.BlockStatusAsync(0, 1 << 20));
        }
        finally
        {
            File.Delete(image);
        }
    }

    [Fact]
    public async Task A_parked_connection_finished_for_an_unknown_export_fails_as_a_new_one_would()
    {
        await using var server = await TestServer.StartAsync(Size);
        await using var parked = await NbdClient.ParkAsync(NbdClientOptions.FromUri(server.Uri("")));
        var ex = await Assert.ThrowsAsync<NbdHandshakeException>(() => parked.FinishAsync("no-such-disk"));
        Assert.Equal(Protocol.OptionReplyType.ErrUnknown, ex.Reply);
    }

    [Fact]
    public async Task A_parked_connection_the_server_closed_is_seen_closed_and_fails_to_finish_at_once()
    {
        var log = new LogCapture();
        await using var server = await TestServer.StartAsync(Size, settings: new NbdServerSettings { HandshakeTimeout = TimeSpan.FromMilliseconds(300) }, loggers: log);
        await using var parked = await NbdClient.ParkAsync(NbdClientOptions.FromUri(server.Uri("")));
        await log.WaitForAsync(LogLevel.Information, "handshake not finished within 0.3 s");
        await SiteCluster.WaitAsync(() => Task.FromResult(parked.LooksClosed), TimeSpan.FromSeconds(5), "the parked connection looks closed");
        await Assert.ThrowsAnyAsync<IOException>(() => parked.FinishAsync("disk").WaitAsync(TimeSpan.FromSeconds(5)));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task The_pool_hands_out_warm_connections_and_retires_them_before_the_servers_handshake_timeout(bool tls)
    {
        // The server closes handshakes after 2 s; the pool retires its parked connections at 600 ms (the margin is for a
        // loaded machine: the retirement is a task that must get a thread).
        var log = new LogCapture();
        var settings = (tls ? TlsFixture.Settings(NbdTlsMode.Require, pki.Good) : new NbdServerSettings()) with { HandshakeTimeout = TimeSpan.FromSeconds(2) };
        await using var server = await TestServer.StartAsync(Size, settings: settings, loggers: log);
        var endpoint = new NbdClientOptions { Host = "127.0.0.1", Port = server.Port };
        if (tls) endpoint = endpoint with { Tls = NbdClientTlsMode.Require, TlsCertificates = pki.Good };
        await using var pool = new PeerConnectionPool(endpoint, new PeerPoolSettings { Parked = 2, MaxAge = TimeSpan.FromMilliseconds(600) });

        await SiteCluster.WaitAsync(() => Task.FromResult(pool.ParkedCount >= 2), TimeSpan.FromSeconds(10), "two parked");
        await using (var a = await pool.TakeAsync("disk"))
        await using (var b = await pool.TakeAsync("disk"))
        {
            Assert.Equal((2, 0L), (pool.Warm, pool.Fresh));
            Assert.Equal((tls, tls), (a.IsTls, b.IsTls));
            await a.WriteAsync(0, new byte[] { 1, 2, 3 });
            var back = new byte[3];
            await b.ReadAsync(0, back);
            Assert.Equal(new byte[] { 1, 2, 3 }, back);
        }

        // Refilled, then renewed by age several times over: none lived to the server's timeout.
        await SiteCluster.WaitAsync(() => Task.FromResult(pool.Retired >= 6), TimeSpan.FromSeconds(20), "six retired by age");
        for (int i = 0; i < 4; i++)
        {
            await using var c = await pool.TakeAsync("disk");
            Assert.Equal(Size, c.Size);
        }
        Assert.Equal(0, pool.Discarded);
        Assert.DoesNotContain(log.Lines, l => l.Line.Contains("handshake not finished"));
    }

    [Fact]
    public async Task A_pool_whose_parked_connections_the_server_closes_still_hands_out_working_ones()
    {
        // The server's handshake timeout (300 ms) is far below the pool's max age: the parked ones die parked.
        var log = new LogCapture();
        await using var server = await TestServer.StartAsync(Size, settings: new NbdServerSettings { HandshakeTimeout = TimeSpan.FromMilliseconds(300) }, loggers: log);
        await using var pool = new PeerConnectionPool(NbdClientOptions.FromUri(server.Uri("")), new PeerPoolSettings { Parked = 2, MaxAge = TimeSpan.FromSeconds(30) });
        await SiteCluster.WaitAsync(() => Task.FromResult(log.Lines.Count(l => l.Line.Contains("handshake not finished")) >= 2),
            TimeSpan.FromSeconds(10), "the server closed two parked connections");
        for (int i = 0; i < 3; i++)
        {
            await using var c = await pool.TakeAsync("disk");
            var back = new byte[4096];
            await c.ReadAsync(0, back);
        }
        Assert.Equal(3, pool.Warm + pool.Fresh);
    }

    [Fact]
    public async Task A_parked_connection_that_breaks_when_finished_is_dropped_and_a_new_connection_made()
    {
        // Between the pool and the server, a relay that cuts every connection parked so far at its next byte: the
        // connections look open while parked and fail only when finished, as one the server dropped silently would.
        await using var server = await TestServer.StartAsync(Size);
        await using var relay = new CuttingRelay(server.Port);
        await using var pool = new PeerConnectionPool(new NbdClientOptions { Host = "127.0.0.1", Port = relay.Port },
            new PeerPoolSettings { Parked = 2, MaxAge = TimeSpan.FromSeconds(30) });
        await SiteCluster.WaitAsync(() => Task.FromResult(pool.ParkedCount >= 2), TimeSpan.FromSeconds(10), "two parked");
        relay.CutThoseOpenNow();

        await using var c = await pool.TakeAsync("disk");
        var back = new byte[4096];
        await c.ReadAsync(0, back);
        Assert.Equal(Size, c.Size);
        Assert.True(pool.Discarded >= 1, $"discarded {pool.Discarded}");
        Assert.Equal(1, pool.Warm + pool.Fresh);
    }

    /// <summary>A TCP relay to a server on loopback; <see cref="CutThoseOpenNow"/> makes each connection open now close
    /// (both sides) at the client's next byte instead of passing it on.</summary>
    private sealed class CuttingRelay : IAsyncDisposable
    {
        private readonly System.Net.Sockets.TcpListener _listener = new(System.Net.IPAddress.Loopback, 0);
        private readonly int _target;
        private readonly List<Task> _pumps = [];
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _accepting;
        private long _generation;

        public CuttingRelay(int target)
        {
            _target = target;
            _listener.Start();
            _accepting = AcceptAsync();
        }

        public int Port => ((System.Net.IPEndPoint)_listener.LocalEndpoint).Port;

        public void CutThoseOpenNow() => Interlocked.Increment(ref _generation);

        private async Task AcceptAsync()
        {
            try
            {
                while (true)
                {
                    var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                    var upstream = new System.Net.Sockets.TcpClient();
                    await upstream.ConnectAsync(System.Net.IPAddress.Loopback, _target, _stop.Token);
                    long born = Interlocked.Read(ref _generation);
                    lock (_pumps)
                    {
                        _pumps.Add(PumpAsync(client, upstream, () => Interlocked.Read(ref _generation) != born));
                        _pumps.Add(PumpAsync(upstream, client, () => false));
                    }
                }
            }
            catch (Exception) when (_stop.IsCancellationRequested) { }
        }

        private async Task PumpAsync(System.Net.Sockets.TcpClient from, System.Net.Sockets.TcpClient to, Func<bool> cut)
        {
            var buffer = new byte[64 * 1024];
            try
            {
                while (true)
                {
                    int n = await from.GetStream().ReadAsync(buffer, _stop.Token);
                    if (n == 0 || cut()) break;
                    await to.GetStream().WriteAsync(buffer.AsMemory(0, n), _stop.Token);
                }
            }
            catch (Exception) { } // either side gone, or stopped: the relay's connection ends either way
            from.Dispose();
            to.Dispose();
        }

        public async ValueTask DisposeAsync()
        {
            _stop.Cancel();
            _listener.Stop();
            await _accepting;
            Task[] pumps;
            lock (_pumps) pumps = [.. _pumps];
            await Task.WhenAll(pumps);
        }
    }

    [Fact]
    public async Task A_pool_of_a_server_that_is_down_connects_afresh_and_fails_as_a_new_connection_would()
    {
        int port = Ports.Free();
        await using var pool = new PeerConnectionPool(new NbdClientOptions { Host = "127.0.0.1", Port = port, ConnectTimeout = TimeSpan.FromSeconds(2) },
            new PeerPoolSettings());
        await Assert.ThrowsAnyAsync<IOException>(() => pool.TakeAsync("disk"));
        Assert.Equal((0L, 1L), (pool.Warm, pool.Fresh));
    }
}
