using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace Reloc.Wan;

/// <summary>
/// One accepted client and its connection to the target, relayed through the link's two bottlenecks.
/// Four loops: per direction a reader (window, read, admit onto the bottleneck) and a writer (wait until
/// due, write). A FIN goes on after the data read before it; a reset or error anywhere aborts the whole
/// connection, and both sockets are then closed with a reset so each side learns the stream broke.
/// </summary>
internal sealed class RelayedConnection
{
    // A fixed size turns off the kernel's receive/send autotuning, which would otherwise grow every relay
    // socket to megabytes of hidden queue outside the emulated bottleneck; 256 KiB still moves GB/s on loopback.
    internal const int SocketBufferBytes = 256 * 1024;

    // Largest batch of due chunks taken at once; a writer then writes them back to back.
    private const int MaxBatchBytes = 4 * Bottleneck.MaxChunkBytes;

    private readonly Socket _client;
    private readonly EndPoint _targetEndPoint;
    private readonly Bottleneck _toTarget;
    private readonly Bottleneck _toClient;
    private readonly Scheduler _scheduler;
    private readonly BlackHole _blackHole;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _cts;
    private readonly string _peer;
    private int _aborted;

    public RelayedConnection(Socket client, EndPoint target, Bottleneck toTarget, Bottleneck toClient, Scheduler scheduler, BlackHole blackHole, ILogger log, CancellationToken stopping)
    {
        _scheduler = scheduler;
        _blackHole = blackHole;
        _client = client;
        _targetEndPoint = target;
        _toTarget = toTarget;
        _toClient = toClient;
        _log = log;
        _peer = client.RemoteEndPoint?.ToString() ?? "client";
        _cts = CancellationTokenSource.CreateLinkedTokenSource(stopping);
    }

    public async Task RunAsync()
    {
        Socket? target = null;
        var toTarget = new DelayLine();
        var toClient = new DelayLine();
        try
        {
            target = await ConnectAsync();
            if (target is null) return;
            await Task.WhenAll(
                ReadAsync(_client, toTarget, _toTarget),
                WriteAsync(toTarget, target, _toTarget),
                ReadAsync(target, toClient, _toClient),
                WriteAsync(toClient, _client, _toClient));
        }
        finally
        {
            // Aborted, or stopped with bytes possibly still in flight: a reset, not a clean FIN.
            var reset = Volatile.Read(ref _aborted) == 1 || _cts.IsCancellationRequested || target is null;
            Close(_client, reset);
            if (target is not null) Close(target, reset);
            Discard(toTarget, _toTarget);
            Discard(toClient, _toClient);
            _cts.Dispose();
        }
    }

    private async Task<Socket?> ConnectAsync()
    {
        var socket = _targetEndPoint switch
        {
            UnixDomainSocketEndPoint => new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified),
            IPEndPoint ip => new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp),
            _ => new Socket(SocketType.Stream, ProtocolType.Tcp), // DnsEndPoint: dual mode reaches v4 and v6
        };
        try
        {
            Tune(socket);
            await _blackHole.WaitPassAsync(_cts.Token); // a connection made during a black hole gets no answer until it ends
            await socket.ConnectAsync(_targetEndPoint, _cts.Token);
            return socket;
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException)
        {
            if (ex is SocketException) _log.LogWarning("{Peer}: connecting to {Target} failed: {Reason}", _peer, _targetEndPoint, ex.Message);
            socket.Dispose();
            return null;
        }
    }

    internal static void Tune(Socket socket)
    {
        if (socket.AddressFamily != AddressFamily.Unix) socket.NoDelay = true; // the link does the pacing, not Nagle
        socket.ReceiveBufferSize = SocketBufferBytes;
        socket.SendBufferSize = SocketBufferBytes;
    }

    private async Task ReadAsync(Socket from, DelayLine line, Bottleneck link)
    {
        var ct = _cts.Token;
        var buffer = ArrayPool<byte>.Shared.Rent(Bottleneck.MaxChunkBytes);
        var window = () => link.WindowBytes; // re-read each time: SetRate moves it
        try
        {
            while (true)
            {
                await line.WaitForRoomAsync(window, ct);
                var n = await from.ReceiveAsync(buffer.AsMemory(0, link.ChunkBytes), SocketFlags.None, ct);
                if (n == 0)
                {
                    line.End();
                    return;
                }
                link.OnRead(n);
                // A big read keeps its buffer; a small one is copied so the memory held follows the bytes held.
                byte[] data;
                if (n >= buffer.Length / 4)
                {
                    data = buffer;
                    buffer = ArrayPool<byte>.Shared.Rent(Bottleneck.MaxChunkBytes);
                }
                else
                {
                    data = ArrayPool<byte>.Shared.Rent(n);
                    buffer.AsSpan(0, n).CopyTo(data);
                }
                long dueAt;
                try
                {
                    dueAt = await link.AdmitAsync(n, _scheduler, ct);
                }
                catch
                {
                    link.OnDiscarded(n);
                    ArrayPool<byte>.Shared.Return(data);
                    throw;
                }
                line.Add(new Chunk(data, n, dueAt));
            }
        }
        catch (Exception ex) when (IsConnectionEnd(ex))
        {
            Abort(ex);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private async Task WriteAsync(DelayLine line, Socket to, Bottleneck link)
    {
        var ct = _cts.Token;
        var batch = new List<Chunk>();
        var written = 0;
        try
        {
            while (await line.NextDueAsync(ct) is { } dueAt)
            {
                await _scheduler.DelayUntilAsync(dueAt, ct);
                await _blackHole.WaitPassAsync(ct); // held, not lost: see BlackHole
                line.TakeDue(Clock.Now, batch, MaxBatchBytes);
                for (written = 0; written < batch.Count; written++)
                {
                    var chunk = batch[written];
                    await SendAllAsync(to, chunk.Buffer.AsMemory(0, chunk.Length), ct);
                    line.Release(chunk.Length);
                    link.OnDelivered(chunk.Length);
                    ArrayPool<byte>.Shared.Return(chunk.Buffer);
                }
                batch.Clear();
            }
            to.Shutdown(SocketShutdown.Send); // the sender's FIN, after everything it sent before it
        }
        catch (Exception ex) when (IsConnectionEnd(ex))
        {
            Abort(ex);
        }
        finally
        {
            for (var i = written; i < batch.Count; i++)
            {
                line.Release(batch[i].Length);
                link.OnDiscarded(batch[i].Length);
                ArrayPool<byte>.Shared.Return(batch[i].Buffer);
            }
        }
    }

    private static async ValueTask SendAllAsync(Socket to, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        while (!data.IsEmpty)
        {
            var n = await to.SendAsync(data, SocketFlags.None, ct);
            data = data[n..];
        }
    }

    private static bool IsConnectionEnd(Exception ex) => ex is OperationCanceledException or SocketException or ObjectDisposedException;

    private void Abort(Exception reason)
    {
        if (Interlocked.Exchange(ref _aborted, 1) == 1) return;
        if (reason is not OperationCanceledException)
            _log.LogDebug("{Peer}: relay aborted: {Reason}", _peer, reason.Message);
        _cts.Cancel(); // unblocks the other three loops
    }

    private static void Close(Socket socket, bool reset)
    {
        try
        {
            if (reset) socket.LingerState = new LingerOption(true, 0);
        }
        catch (SocketException)
        {
            // already broken; closing is all that is left
        }
        socket.Dispose();
    }

    private static void Discard(DelayLine line, Bottleneck link)
    {
        var left = new List<Chunk>();
        line.Drain(left);
        foreach (var chunk in left)
        {
            link.OnDiscarded(chunk.Length);
            ArrayPool<byte>.Shared.Return(chunk.Buffer);
        }
    }
}
