using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;

namespace Reloc.Vm.Tests;

/// <summary>
/// A TCP relay in front of an NBD server that records what crosses it: each connection's export, every
/// request (command, offset, length, flags) with the time it was sent and the time and error of its reply.
/// Bytes are forwarded unchanged and at once; the NBD parsing runs beside the relay on copies, and stops
/// (the relay goes on) at anything it does not understand. Handles fixed-newstyle handshakes ending in
/// NBD_OPT_GO, simple and structured replies; that is what QEMU and Reloc's client speak. After an accepted
/// NBD_OPT_STARTTLS the stream is encrypted: the tap marks the connection as TLS and only counts its bytes.
/// </summary>
public sealed class NbdTap : IAsyncDisposable
{
    private const ulong OptMagic = 0x49484156454F5054; // IHAVEOPT
    private const ulong OptReplyMagic = 0x0003e889045565a9;
    private const uint RequestMagic = 0x25609513;
    private const uint SimpleReplyMagic = 0x67446698;
    private const uint StructuredReplyMagic = 0x668e33ef;
    private const int OptGo = 7, OptExportName = 1, OptStartTls = 5;

    private readonly Socket _listener;
    private readonly Func<double> _clock;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<TapConnection> _connections = [];
    private readonly List<Task> _tasks = [];
    private readonly Task _accept;
    private int _next;

    public NbdTap(string name, Func<double> clock)
    {
        Name = name;
        _clock = clock;
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(64);
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        _accept = AcceptLoopAsync();
    }

    public string Name { get; }
    public int Port { get; }
    public string Address => $"127.0.0.1:{Port}";

    /// <summary>Where connections are relayed to (set before the first client connects).</summary>
    public IPEndPoint? Upstream { get; set; }

    public IReadOnlyList<TapConnection> Connections { get { lock (_connections) return _connections.ToList(); } }

    private async Task AcceptLoopAsync()
    {
        try
        {
            while (true)
            {
                var client = await _listener.AcceptAsync(_stop.Token);
                client.NoDelay = true;
                var conn = new TapConnection(Interlocked.Increment(ref _next), _clock());
                lock (_connections)
                {
                    _connections.Add(conn);
                    _tasks.Add(RelayAsync(client, conn));
                }
            }
        }
        catch (OperationCanceledException) { }
        catch (SocketException) { }
        catch (ObjectDisposedException) { }
    }

    private async Task RelayAsync(Socket client, TapConnection conn)
    {
        using var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using (client)
        {
            try
            {
                await server.ConnectAsync(Upstream ?? throw new InvalidOperationException($"tap {Name} has no upstream"), _stop.Token);
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException or InvalidOperationException)
            {
                conn.Close(_clock(), "upstream connect failed: " + ex.Message);
                return;
            }
            var toServer = Channel.CreateUnbounded<(double, byte[])>();
            var toClient = Channel.CreateUnbounded<(double, byte[])>();
            var up = PumpAsync(client, server, toServer.Writer, n => conn.CountToServer(n));
            var down = PumpAsync(server, client, toClient.Writer, n => conn.CountToClient(n));
            var parse = ParseAsync(conn, new ChunkReader(toServer.Reader), new ChunkReader(toClient.Reader));
            var first = await Task.WhenAny(up, down);
            // One side closed: close the other (a guest leaving must look like one to the server).
            try { client.Shutdown(SocketShutdown.Both); } catch (SocketException) { }
            try { server.Shutdown(SocketShutdown.Both); } catch (SocketException) { }
            await Task.WhenAll(up, down);
            await parse;
            conn.Close(_clock(), first == up ? "client closed" : "server closed");
        }
    }

    private async Task PumpAsync(Socket from, Socket to, ChannelWriter<(double, byte[])> copy, Action<int> count)
    {
        var buffer = new byte[256 * 1024];
        try
        {
            while (true)
            {
                int n = await from.ReceiveAsync(buffer, SocketFlags.None);
                if (n == 0) break;
                var at = _clock();
                await to.SendAsync(buffer.AsMemory(0, n), SocketFlags.None);
                count(n);
                copy.TryWrite((at, buffer.AsSpan(0, n).ToArray()));
            }
        }
        catch (SocketException) { }
        catch (ObjectDisposedException) { }
        finally
        {
            copy.TryComplete();
        }
    }

    private async Task ParseAsync(TapConnection conn, ChunkReader client, ChunkReader server)
    {
        try
        {
            if (!await HandshakeAsync(conn, client, server)) return;
            var replies = ParseRepliesAsync(conn, server);
            await ParseRequestsAsync(conn, client);
            await replies;
        }
        catch (EndOfStreamException) { }
        catch (InvalidDataException ex) { conn.Note(_clock(), "parser stopped: " + ex.Message); }
        finally
        {
            await client.DrainAsync();
            await server.DrainAsync();
        }
    }

    private async Task<bool> HandshakeAsync(TapConnection conn, ChunkReader client, ChunkReader server)
    {
        await server.SkipAsync(18);                // NBDMAGIC, IHAVEOPT, handshake flags
        await client.SkipAsync(4);                 // client flags
        var header = new byte[20];
        while (true)
        {
            await client.ReadAsync(header.AsMemory(0, 16));
            if (BinaryPrimitives.ReadUInt64BigEndian(header) != OptMagic) throw new InvalidDataException("no option magic");
            int option = (int)BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(8));
            int length = (int)BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12));
            var data = new byte[length];
            await client.ReadAsync(data);
            if (option == OptExportName) { conn.Note(_clock(), "old-style NBD_OPT_EXPORT_NAME: not parsed"); return false; }
            if (option == OptGo && length >= 4)
            {
                int nameLength = (int)BinaryPrimitives.ReadUInt32BigEndian(data);
                conn.Export = Encoding.UTF8.GetString(data, 4, Math.Min(nameLength, length - 4));
            }
            // The server answers each option with replies until a final one (ACK or an error).
            while (true)
            {
                await server.ReadAsync(header.AsMemory(0, 20));
                if (BinaryPrimitives.ReadUInt64BigEndian(header) != OptReplyMagic) throw new InvalidDataException("no option reply magic");
                uint type = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12));
                int replyLength = (int)BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(16));
                await server.SkipAsync(replyLength);
                if (type == 1 /* ACK */ || (type & 0x80000000) != 0)
                {
                    if (option == OptGo && type == 1)
                    {
                        conn.Transmission(_clock());
                        return true;
                    }
                    if (option == OptStartTls && type == 1)
                    {
                        conn.StartTls(_clock());
                        return false;
                    }
                    break;
                }
            }
        }
    }

    private async Task ParseRequestsAsync(TapConnection conn, ChunkReader client)
    {
        var header = new byte[28];
        while (true)
        {
            var at = await client.ArrivalAsync();
            await client.ReadAsync(header);
            if (BinaryPrimitives.ReadUInt32BigEndian(header) != RequestMagic) throw new InvalidDataException("no request magic");
            var request = new TapRequest(
                conn.Id, at,
                (NbdCommand)BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(6)),
                BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(4)),
                BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(8)),
                (long)BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(16)),
                BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(24)));
            conn.Sent(request);
            if (request.Command == NbdCommand.Write) await client.SkipAsync(request.Length);
            if (request.Command == NbdCommand.Disc)
            {
                conn.Replied(request.Handle, at, 0, done: true); // no reply comes to a disconnect
                return;
            }
        }
    }

    private async Task ParseRepliesAsync(TapConnection conn, ChunkReader server)
    {
        var header = new byte[20];
        while (true)
        {
            var at = await server.ArrivalAsync();
            await server.ReadAsync(header.AsMemory(0, 4));
            uint magic = BinaryPrimitives.ReadUInt32BigEndian(header);
            if (magic == SimpleReplyMagic)
            {
                await server.ReadAsync(header.AsMemory(4, 12));
                uint error = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(4));
                ulong handle = BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(8));
                var request = await conn.WaitForRequestAsync(handle);
                if (request?.Command == NbdCommand.Read && error == 0) await server.SkipAsync(request.Length);
                conn.Replied(handle, at, error, done: true);
            }
            else if (magic == StructuredReplyMagic)
            {
                await server.ReadAsync(header.AsMemory(4, 16));
                ushort flags = BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(4));
                ushort type = BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(6));
                ulong handle = BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(8));
                int length = (int)BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(16));
                uint error = 0;
                if ((type & 0x8000) != 0 && length >= 4)
                {
                    var e = new byte[4];
                    await server.ReadAsync(e);
                    error = BinaryPrimitives.ReadUInt32BigEndian(e);
                    await server.SkipAsync(length - 4);
                }
                else await server.SkipAsync(length);
                await conn.WaitForRequestAsync(handle);
                conn.Replied(handle, at, error, done: (flags & 1) != 0);
            }
            else throw new InvalidDataException($"unknown reply magic {magic:x8}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Dispose();
        await _accept;
        Task[] tasks;
        lock (_connections) tasks = _tasks.ToArray();
        await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { });
    }

    /// <summary>Reads exact byte counts from the chunks one pump copies, each stamped with its arrival time.</summary>
    private sealed class ChunkReader(ChannelReader<(double, byte[])> chunks)
    {
        private byte[] _current = [];
        private double _arrived;
        private int _offset;

        private async ValueTask<bool> EnsureAsync()
        {
            while (_offset >= _current.Length)
            {
                if (!await chunks.WaitToReadAsync()) return false;
                if (chunks.TryRead(out var next)) { (_arrived, _current) = next; _offset = 0; }
            }
            return true;
        }

        /// <summary>When the next byte arrived at the tap.</summary>
        public async ValueTask<double> ArrivalAsync()
        {
            if (!await EnsureAsync()) throw new EndOfStreamException();
            return _arrived;
        }

        public async ValueTask ReadAsync(Memory<byte> into)
        {
            while (into.Length > 0)
            {
                if (!await EnsureAsync()) throw new EndOfStreamException();
                int n = Math.Min(into.Length, _current.Length - _offset);
                _current.AsMemory(_offset, n).CopyTo(into);
                _offset += n;
                into = into[n..];
            }
        }

        public async ValueTask SkipAsync(long count)
        {
            while (count > 0)
            {
                if (!await EnsureAsync()) throw new EndOfStreamException();
                int n = (int)Math.Min(count, _current.Length - _offset);
                _offset += n;
                count -= n;
            }
        }

        public async Task DrainAsync()
        {
            while (await chunks.WaitToReadAsync()) while (chunks.TryRead(out _)) { }
        }
    }
}

public enum NbdCommand : ushort { Read = 0, Write = 1, Disc = 2, Flush = 3, Trim = 4, Cache = 5, WriteZeroes = 6, BlockStatus = 7 }

public sealed record TapRequest(int Connection, double SentAt, NbdCommand Command, ushort Flags, ulong Handle, long Offset, uint Length)
{
    public double RepliedAt { get; set; } = double.NaN;
    public uint Error { get; set; }
    public double LatencyMs => double.IsNaN(RepliedAt) ? double.NaN : (RepliedAt - SentAt) * 1000;
    public bool Fua => (Flags & 1) != 0;

    public static string ErrorName(uint e) => e switch
    {
        0 => "ok", 1 => "EPERM", 5 => "EIO", 12 => "ENOMEM", 22 => "EINVAL", 28 => "ENOSPC", 75 => "EOVERFLOW", 95 => "ENOTSUP", 108 => "ESHUTDOWN",
        _ => "error " + e,
    };
}

/// <summary>One relayed connection: its export and its requests in the order they were sent.</summary>
public sealed class TapConnection(int id, double openedAt)
{
    private readonly List<TapRequest> _requests = [];
    // QEMU reuses a handle as soon as its reply is in; the two directions are parsed independently, so a
    // handle's next request may be parsed before its previous reply: oldest first.
    private readonly Dictionary<ulong, Queue<TapRequest>> _pending = [];
    private readonly List<(double, string)> _notes = [];
    private TaskCompletionSource _sent = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public int Id { get; } = id;
    public double OpenedAt { get; } = openedAt;
    public double TransmissionAt { get; private set; } = double.NaN;
    public double ClosedAt { get; private set; } = double.NaN;
    public string CloseReason { get; private set; } = "";
    public string Export { get; set; } = "?";
    /// <summary>When the server accepted NBD_OPT_STARTTLS (NaN: never; the connection stayed plain).</summary>
    public double TlsAt { get; private set; } = double.NaN;
    public bool Tls => !double.IsNaN(TlsAt);
    public long BytesToServer => Interlocked.Read(ref _bytesToServer);
    public long BytesToClient => Interlocked.Read(ref _bytesToClient);
    private long _bytesToServer, _bytesToClient;
    public IReadOnlyList<TapRequest> Requests { get { lock (_requests) return _requests.ToList(); } }
    public IReadOnlyList<(double At, string What)> Notes { get { lock (_requests) return _notes.ToList(); } }

    internal void Transmission(double at) => TransmissionAt = at;
    internal void StartTls(double at) => TlsAt = at;
    internal void CountToServer(int n) => Interlocked.Add(ref _bytesToServer, n);
    internal void CountToClient(int n) => Interlocked.Add(ref _bytesToClient, n);
    internal void Note(double at, string what) { lock (_requests) _notes.Add((at, what)); }

    internal void Close(double at, string why)
    {
        ClosedAt = at;
        CloseReason = why;
        lock (_requests) _sent.TrySetResult();
    }

    internal void Sent(TapRequest r)
    {
        TaskCompletionSource sent;
        lock (_requests)
        {
            _requests.Add(r);
            if (!_pending.TryGetValue(r.Handle, out var q)) _pending[r.Handle] = q = new();
            q.Enqueue(r);
            sent = _sent;
            _sent = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        sent.TrySetResult();
    }

    /// <summary>The request a reply answers. Both directions are parsed concurrently, so the request's
    /// parse may trail the reply's by a moment.</summary>
    internal async Task<TapRequest?> WaitForRequestAsync(ulong handle)
    {
        for (int i = 0; i < 1000; i++)
        {
            Task sent;
            lock (_requests)
            {
                if (_pending.TryGetValue(handle, out var q) && q.Count > 0) return q.Peek();
                if (!double.IsNaN(ClosedAt)) return null;
                sent = _sent.Task;
            }
            if (await Task.WhenAny(sent, Task.Delay(TimeSpan.FromSeconds(5))) != sent) break;
        }
        throw new InvalidDataException($"reply to an unknown handle {handle:x}");
    }

    internal void Replied(ulong handle, double at, uint error, bool done)
    {
        lock (_requests)
        {
            if (!_pending.TryGetValue(handle, out var q) || q.Count == 0) return;
            var r = q.Peek();
            if (error != 0) r.Error = error;
            if (done)
            {
                r.RepliedAt = at;
                q.Dequeue();
            }
        }
    }
}
