using System.Net;
using System.Net.Sockets;
using Reloc.Wan.Tests.Support;
using Xunit;

namespace Reloc.Wan.Tests;

/// <summary>The link as a black hole (fault campaigns): nothing crosses in either direction, nothing is closed
/// or reset, new connections get no answer; afterwards everything held arrives intact and in order.</summary>
public sealed class BlackHoleTests
{
    private static readonly IPEndPoint AnyLoopback = new(IPAddress.Loopback, 0);
    // How long "nothing arrives" is watched for: many times the link's delay.
    private static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(600);

    public BlackHoleTests() => TestHost.EnsurePoolHeadroom();

    [Fact]
    public async Task Bytes_sent_into_a_black_hole_arrive_intact_after_it_and_neither_side_sees_a_close()
    {
        using var target = Target.Start();
        await using var link = await WanLink.StartAsync(AnyLoopback, target.EndPoint, new WanLinkSettings { Rtt = TimeSpan.FromMilliseconds(10) });
        var (client, server) = await Loopback.ConnectAsync(link, target);
        using (client)
        using (server)
        {
            link.StartBlackHole();
            Assert.True(link.IsBlackHoled);
            var up = Loopback.Random(1 << 20, seed: 5);
            var down = Loopback.Random(300_000, seed: 6);
            var sending = Task.WhenAll(Loopback.SendAsync(client, up, shutdown: false), Loopback.SendAsync(server, down, shutdown: false));

            Assert.Equal(0, await BytesWithinAsync(server, Quiet));
            Assert.Equal(0, await BytesWithinAsync(client, Quiet));
            Assert.Equal(1, link.ActiveConnections);

            link.EndBlackHole();
            Assert.Equal(up, await ReceiveExactlyAsync(server, up.Length));
            Assert.Equal(down, await ReceiveExactlyAsync(client, down.Length));
            await sending.WaitAsync(TimeSpan.FromSeconds(10));
            // Still one healthy connection: a byte more goes through.
            await Loopback.SendAsync(client, [42], shutdown: false);
            Assert.Equal(new byte[] { 42 }, await ReceiveExactlyAsync(server, 1));
        }
    }

    [Fact]
    public async Task A_connection_made_during_a_black_hole_reaches_the_target_only_after_it()
    {
        using var target = Target.Start();
        await using var link = await WanLink.StartAsync(AnyLoopback, target.EndPoint, new WanLinkSettings { Rtt = TimeSpan.FromMilliseconds(10) });
        await link.BlackHoleAsync(TimeSpan.Zero); // on and off again: the link passes traffic afterwards
        Assert.False(link.IsBlackHoled);

        link.StartBlackHole();
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(link.LocalEndPoint).WaitAsync(TimeSpan.FromSeconds(10));
        await Loopback.SendAsync(client, [1, 2, 3], shutdown: false);
        var accepted = target.AcceptAsync();
        Assert.NotSame(accepted, await Task.WhenAny(accepted, Task.Delay(Quiet)));
        Assert.Equal(0, await BytesWithinAsync(client, Quiet)); // and no close either

        link.EndBlackHole();
        using var server = await accepted;
        Assert.Equal(new byte[] { 1, 2, 3 }, await ReceiveExactlyAsync(server, 3));
    }

    /// <summary>Bytes read from <paramref name="socket"/> within <paramref name="within"/>; -1 if it closed.</summary>
    private static async Task<int> BytesWithinAsync(Socket socket, TimeSpan within)
    {
        using var timeout = new CancellationTokenSource(within);
        var buffer = new byte[64 * 1024];
        try
        {
            var n = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
            return n == 0 ? -1 : n;
        }
        catch (OperationCanceledException)
        {
            return 0;
        }
    }

    private static async Task<byte[]> ReceiveExactlyAsync(Socket socket, int length)
    {
        var data = new byte[length];
        for (int got = 0; got < length;)
        {
            var n = await socket.ReceiveAsync(data.AsMemory(got), SocketFlags.None).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
            if (n == 0) throw new IOException($"closed after {got} of {length} bytes");
            got += n;
        }
        return data;
    }
}
