using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;

namespace Reloc.Wan.Tests.Support;

/// <summary>A plain TCP listener on loopback for a link to relay to.</summary>
internal sealed class Target : IDisposable
{
    private readonly Socket _listener;

    private Target(Socket listener) => _listener = listener;

    public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndPoint!;

    public static Target Start()
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(16);
        return new Target(listener);
    }

    public async Task<Socket> AcceptAsync()
    {
        var socket = await _listener.AcceptAsync().WaitAsync(TimeSpan.FromSeconds(10));
        socket.NoDelay = true;
        return socket;
    }

    public void Dispose() => _listener.Dispose();
}

/// <summary>What a receiver saw: the bytes (as a hash), and when the first and last of them arrived.</summary>
internal sealed record Received(long Bytes, byte[] Hash, long FirstAt, long LastAt, long FirstRead)
{
    /// <summary>Rate between the first and the last read, leaving out the first read's bytes (they
    /// arrived at the first instant), so start-up latency does not count.</summary>
    public double BytesPerSecond => (Bytes - FirstRead) / Stopwatch.GetElapsedTime(FirstAt, LastAt).TotalSeconds;
}

internal static class Loopback
{
    /// <summary>A client connected through <paramref name="link"/> and the target's side of the same connection.</summary>
    public static async Task<(Socket Client, Socket Server)> ConnectAsync(WanLink link, Target target, int? bufferBytes = null)
    {
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        if (bufferBytes is { } b)
        {
            client.ReceiveBufferSize = b;
            client.SendBufferSize = b;
        }
        await client.ConnectAsync(link.LocalEndPoint).WaitAsync(TimeSpan.FromSeconds(10));
        var server = await target.AcceptAsync();
        return (client, server);
    }

    public static byte[] Random(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    /// <summary>Sends <paramref name="data"/> in pieces of varying size (so chunk boundaries vary), then
    /// optionally half-closes. <paramref name="progress"/> counts the bytes the kernel took.</summary>
    public static async Task SendAsync(Socket socket, byte[] data, bool shutdown = true, StrongBox<long>? progress = null, int seed = 1)
    {
        var sizes = new Random(seed);
        for (var offset = 0; offset < data.Length;)
        {
            var n = Math.Min(data.Length - offset, sizes.Next(1, 256 * 1024));
            n = await socket.SendAsync(data.AsMemory(offset, n), SocketFlags.None);
            offset += n;
            if (progress is not null) Interlocked.Add(ref progress.Value, n);
        }
        if (shutdown) socket.Shutdown(SocketShutdown.Send);
    }

    /// <summary>Reads until the peer half-closes, hashing everything.</summary>
    public static async Task<Received> ReceiveAllAsync(Socket socket)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[256 * 1024];
        long total = 0, firstAt = 0, lastAt = 0, firstRead = 0;
        while (true)
        {
            var n = await socket.ReceiveAsync(buffer, SocketFlags.None);
            if (n == 0) break;
            lastAt = Stopwatch.GetTimestamp();
            if (total == 0)
            {
                firstAt = lastAt;
                firstRead = n;
            }
            total += n;
            hash.AppendData(buffer, 0, n);
        }
        return new Received(total, hash.GetHashAndReset(), firstAt, lastAt, firstRead);
    }

    /// <summary>Whether the peer closes <paramref name="socket"/> (EOF or reset) within <paramref name="within"/>;
    /// any data still arriving is read and dropped.</summary>
    public static async Task<bool> ClosesWithinAsync(Socket socket, TimeSpan within)
    {
        using var timeout = new CancellationTokenSource(within);
        var buffer = new byte[64 * 1024];
        try
        {
            while (await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token) > 0)
            {
            }
            return true;
        }
        catch (SocketException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }
}

/// <summary>A mutable box a sending task reports progress through.</summary>
internal sealed class StrongBox<T>
{
    public T Value = default!;
}
