using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Reloc.Wan.Tests.Support;
using Xunit;

// Timing tests on 2 shared cores: one test at a time, and no xunit MaxConcurrencySyncContext (its two
// threads would run every test continuation and stall the endpoints of a transfer for hundreds of ms).
[assembly: CollectionBehavior(DisableTestParallelization = true, MaxParallelThreads = -1)]

namespace Reloc.Wan.Tests;

/// <summary>The relay over real loopback TCP: bytes, half-close, resets, failures and shutdown.</summary>
public sealed class RelayTests
{
    private static readonly IPEndPoint AnyLoopback = new(IPAddress.Loopback, 0);

    public RelayTests() => TestHost.EnsurePoolHeadroom();

    [Fact]
    public async Task Bytes_arrive_intact_and_in_order_both_ways_then_the_fin()
    {
        using var target = Target.Start();
        var settings = new WanLinkSettings(TimeSpan.FromMilliseconds(10), 200_000_000, TimeSpan.FromMilliseconds(50));
        await using var link = await WanLink.StartAsync(AnyLoopback, target.EndPoint, settings);
        var (client, server) = await Loopback.ConnectAsync(link, target);
        using (client)
        using (server)
        {
            var up = Loopback.Random(24 << 20, seed: 1);
            var down = Loopback.Random(16 << 20, seed: 2);
            var serverGot = Loopback.ReceiveAllAsync(server);
            var clientGot = Loopback.ReceiveAllAsync(client);
            await Task.WhenAll(Loopback.SendAsync(client, up, seed: 3), Loopback.SendAsync(server, down, seed: 4)).WaitAsync(TimeSpan.FromSeconds(20));

            var (atServer, atClient) = (await serverGot.WaitAsync(TimeSpan.FromSeconds(20)), await clientGot.WaitAsync(TimeSpan.FromSeconds(20)));
            Assert.Equal(up.Length, atServer.Bytes);
            Assert.Equal(SHA256.HashData(up), atServer.Hash);
            Assert.Equal(down.Length, atClient.Bytes);
            Assert.Equal(SHA256.HashData(down), atClient.Hash);
        }
        Assert.Equal(24 << 20, link.GetStats(WanDirection.ToTarget).BytesRelayed);
        Assert.Equal(16 << 20, link.GetStats(WanDirection.ToClient).BytesRelayed);
    }

    [Fact]
    public async Task The_fin_follows_the_delayed_data()
    {
        using var target = Target.Start();
        await using var link = await WanLink.StartAsync(AnyLoopback, target.EndPoint, new WanLinkSettings { Rtt = TimeSpan.FromMilliseconds(100) });
        var (client, server) = await Loopback.ConnectAsync(link, target);
        using (client)
        using (server)
        {
            var sent = Stopwatch.StartNew();
            await Loopback.SendAsync(client, [1, 2, 3, 4, 5]);
            var got = await Loopback.ReceiveAllAsync(server).WaitAsync(TimeSpan.FromSeconds(5));
            Assert.Equal(5, got.Bytes);
            Assert.True(sent.Elapsed >= TimeSpan.FromMilliseconds(50), $"data and FIN took {sent.Elapsed.TotalMilliseconds} ms, less than the one-way delay");
            // The other direction stays open after the half-close.
            await Loopback.SendAsync(server, [9]);
            Assert.Equal(1, (await Loopback.ReceiveAllAsync(client).WaitAsync(TimeSpan.FromSeconds(5))).Bytes);
        }
    }

    [Fact]
    public async Task A_reset_on_one_side_closes_the_other()
    {
        using var target = Target.Start();
        await using var link = await WanLink.StartAsync(AnyLoopback, target.EndPoint, new WanLinkSettings { Rtt = TimeSpan.FromMilliseconds(20) });
        var (client, server) = await Loopback.ConnectAsync(link, target);
        using (client)
        {
            server.LingerState = new LingerOption(true, 0);
            server.Dispose(); // RST
            Assert.True(await Loopback.ClosesWithinAsync(client, TimeSpan.FromSeconds(5)));
        }
        await WaitUntilAsync(() => link.ActiveConnections == 0);
    }

    [Fact]
    public async Task A_target_that_refuses_closes_the_client()
    {
        using var nothing = Target.Start();
        var refused = nothing.EndPoint;
        nothing.Dispose(); // the port now refuses connections
        await using var link = await WanLink.StartAsync(AnyLoopback, refused, new WanLinkSettings());
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(link.LocalEndPoint);
        Assert.True(await Loopback.ClosesWithinAsync(client, TimeSpan.FromSeconds(5)));
        await WaitUntilAsync(() => link.ActiveConnections == 0);
    }

    [Fact]
    public async Task Disposing_with_open_busy_connections_is_prompt_and_closes_both_sides()
    {
        using var target = Target.Start();
        var link = await WanLink.StartAsync(AnyLoopback, target.EndPoint, new WanLinkSettings(TimeSpan.FromMilliseconds(50), 5_000_000, TimeSpan.FromMilliseconds(100)));
        var (idleClient, idleServer) = await Loopback.ConnectAsync(link, target);
        var (busyClient, busyServer) = await Loopback.ConnectAsync(link, target, bufferBytes: 64 * 1024);
        using (idleClient)
        using (idleServer)
        using (busyClient)
        using (busyServer)
        {
            // The busy server never reads: the relay has queued data and a writer blocked on it.
            var sending = Loopback.SendAsync(busyClient, new byte[8 << 20]);
            await WaitUntilAsync(() => link.GetStats(WanDirection.ToTarget).QueuedBytes > 0);
            Assert.Equal(2, link.ActiveConnections);

            var disposing = Stopwatch.StartNew();
            await link.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(5));
            Assert.True(disposing.Elapsed < TimeSpan.FromSeconds(1), $"dispose took {disposing.Elapsed.TotalMilliseconds} ms");
            Assert.True(link.Completion.IsCompletedSuccessfully);
            Assert.Equal(0, link.ActiveConnections);

            foreach (var socket in new[] { idleClient, idleServer, busyServer })
                Assert.True(await Loopback.ClosesWithinAsync(socket, TimeSpan.FromSeconds(2)));
            await Assert.ThrowsAnyAsync<SocketException>(() => sending.WaitAsync(TimeSpan.FromSeconds(5)));
            using var late = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await Assert.ThrowsAnyAsync<SocketException>(() => late.ConnectAsync(link.LocalEndPoint));
        }
    }

    [Fact]
    public async Task Cancelling_the_start_token_stops_the_link()
    {
        using var target = Target.Start();
        using var cts = new CancellationTokenSource();
        await using var link = await WanLink.StartAsync(AnyLoopback, target.EndPoint, new WanLinkSettings(), cts.Token);
        var (client, server) = await Loopback.ConnectAsync(link, target);
        using (client)
        using (server)
        {
            cts.Cancel();
            await link.Completion.WaitAsync(TimeSpan.FromSeconds(5));
            Assert.True(await Loopback.ClosesWithinAsync(client, TimeSpan.FromSeconds(2)));
        }
    }

    internal static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = Stopwatch.StartNew();
        while (!condition())
        {
            if (deadline.Elapsed > TimeSpan.FromSeconds(5)) throw new TimeoutException("condition not met within 5 s");
            await Task.Delay(5);
        }
    }
}
