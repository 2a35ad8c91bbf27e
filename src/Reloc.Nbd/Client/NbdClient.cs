using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net.Security;
using System.Net.Sockets;
using Reloc.Nbd.Protocol;
using Reloc.Storage;

namespace Reloc.Nbd.Client;

/// <summary>
/// An NBD client over one TCP or Unix connection, with many requests in flight.
/// </summary>
/// <remarks>
/// Requests get unique cookies and are written whole under a lock; a single receive loop (a tracked
/// task, awaited by <see cref="DisposeAsync"/>) matches replies to requests in whatever order they
/// come. At most <see cref="NbdClientOptions.MaxInFlight"/> requests are outstanding; further callers
/// wait. When the connection breaks, every pending request fails with
/// <see cref="NbdConnectionLostException"/>, as does every later call, and <see cref="Closed"/> completes.
/// Reads and writes larger than <see cref="MaxBlockSize"/> are split into several requests.
/// </remarks>
public sealed partial class NbdClient : IAsyncDisposable
{
    /// <summary>TRIM and WRITE_ZEROES carry no payload; they are split only to fit the 32-bit length.</summary>
    private const int RangeChunk = 1 << 30;
    private const int SendBufferSize = 64 * 1024;

    private readonly Socket _socket;
    private Stream _stream;      // the SslStream after STARTTLS
    private PipeReader _reader;  // rebuilt over it
    private NbdClientOptions _options; // its Export is set when a parked connection is finished
    private readonly SemaphoreSlim _slots;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly byte[] _sendBuffer = new byte[SendBufferSize]; // used under _writeLock only
    private readonly ConcurrentDictionary<ulong, PendingRequest> _pending = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _receiveLoop = Task.CompletedTask;
    private Exception? _closeReason;
    private long _nextCookie;
    private int _disposing;
    private bool _noZeroes;
    private bool _structured;
    private bool _hasContext;
    private uint _contextId;

    private NbdClient(Socket socket, NbdClientOptions options)
    {
        _socket = socket;
        _options = options;
        _stream = new NetworkStream(socket, ownsSocket: false);
        _reader = CreateReader(_stream);
        _slots = new SemaphoreSlim(options.MaxInFlight, options.MaxInFlight);
    }

    private static PipeReader CreateReader(Stream stream) =>
        PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 256 * 1024, minimumReadSize: 64 * 1024, leaveOpen: true));

    /// <summary>The connection runs over TLS (NBD_OPT_STARTTLS succeeded).</summary>
    public bool IsTls => _stream is SslStream;

    public string Export => _options.Export;

    /// <summary>How it was connected (with the export it was finished for).</summary>
    public NbdClientOptions Options => _options;
    public long Size { get; private set; }
    public TransmissionFlags TransmissionFlags { get; private set; }
    public bool IsReadOnly => TransmissionFlags.HasFlag(TransmissionFlags.ReadOnly);

    /// <summary>The server agreed to structured replies (reads may come back as data and hole chunks).</summary>
    public bool StructuredReplies => _structured;

    /// <summary>base:allocation was negotiated: <see cref="BlockStatusAsync"/> is available.</summary>
    public bool CanBlockStatus => _hasContext;

    public int MinBlockSize { get; private set; } = 1;
    public int PreferredBlockSize { get; private set; } = 4096;

    /// <summary>Largest single READ/WRITE request (the server's limit, at most <see cref="NbdClientOptions.MaxRequestBytes"/>).</summary>
    public int MaxBlockSize { get; private set; }

    public bool IsConnected => Volatile.Read(ref _closeReason) is null;

    /// <summary>Completes (never faults) once the connection is closed, for whatever reason.</summary>
    public Task Closed => _closed.Task;

    /// <summary>Why the connection closed; null while connected.</summary>
    public Exception? CloseReason => Volatile.Read(ref _closeReason);

    /// <summary>Requests sent and not yet answered.</summary>
    public int InFlight => _pending.Count;

    /// <summary>Reads <paramref name="destination"/>.Length bytes at <paramref name="offset"/>; holes arrive as zeros.</summary>
    public Task ReadAsync(long offset, Memory<byte> destination, CancellationToken ct = default)
    {
        CheckRange(offset, destination.Length);
        if (destination.Length <= MaxBlockSize) return ReadPartAsync(offset, destination, ct);
        var parts = new List<Task>();
        for (int at = 0; at < destination.Length; at += MaxBlockSize)
            parts.Add(ReadPartAsync(offset + at, destination.Slice(at, Math.Min(MaxBlockSize, destination.Length - at)), ct));
        return Task.WhenAll(parts);
    }

    private Task ReadPartAsync(long offset, Memory<byte> destination, CancellationToken ct) =>
        destination.Length == 0
            ? ThrowIfClosedAsync()
            : SendAsync(new PendingRequest(NbdCommand.Read, 0, offset, (uint)destination.Length) { Destination = destination }, default, ct);

    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/>; with <paramref name="fua"/> it is durable
    /// when this completes (by a FLUSH afterwards if the server has no FUA).</summary>
    public async Task WriteAsync(long offset, ReadOnlyMemory<byte> data, bool fua = false, CancellationToken ct = default)
    {
        CheckRange(offset, data.Length);
        CheckWritable();
        var flags = fua && Has(TransmissionFlags.SendFua) ? CommandFlags.Fua : CommandFlags.None;
        var parts = new List<Task>();
        for (int at = 0; at < data.Length; at += MaxBlockSize)
        {
            int n = Math.Min(MaxBlockSize, data.Length - at);
            parts.Add(SendAsync(new PendingRequest(NbdCommand.Write, flags, offset + at, (uint)n), data.Slice(at, n), ct));
        }
        await Task.WhenAll(parts);
        if (fua && flags == CommandFlags.None && data.Length > 0) await FlushAsync(ct);
    }

    /// <summary>Makes every completed write durable. A server that does not offer FLUSH has nothing to flush.</summary>
    public Task FlushAsync(CancellationToken ct = default) =>
        Has(TransmissionFlags.SendFlush)
            ? SendAsync(new PendingRequest(NbdCommand.Flush, 0, 0, 0), default, ct)
            : ThrowIfClosedAsync();

    /// <summary>Discards a range (afterwards it reads as zeros on servers that punch holes). TRIM is
    /// advisory: on a server that does not offer it this does nothing.</summary>
    public Task TrimAsync(long offset, long length, CancellationToken ct = default)
    {
        CheckRange(offset, length);
        CheckWritable();
        return Has(TransmissionFlags.SendTrim) ? SendRangeAsync(NbdCommand.Trim, CommandFlags.None, offset, length, ct) : ThrowIfClosedAsync();
    }

    /// <summary>Makes a range read as zeros; <paramref name="noHole"/> asks the server to keep it allocated.
    /// Without WRITE_ZEROES on the server, zeros are written.</summary>
    public Task WriteZeroesAsync(long offset, long length, bool noHole = false, CancellationToken ct = default)
    {
        CheckRange(offset, length);
        CheckWritable();
        if (!Has(TransmissionFlags.SendWriteZeroes)) return WriteZeroBuffersAsync(offset, length, ct);
        return SendRangeAsync(NbdCommand.WriteZeroes, noHole ? CommandFlags.NoHole : CommandFlags.None, offset, length, ct);
    }

    private async Task WriteZeroBuffersAsync(long offset, long length, CancellationToken ct)
    {
        var zeros = new byte[(int)Math.Min(length, MaxBlockSize)];
        for (long at = 0; at < length; at += zeros.Length)
            await WriteAsync(offset + at, zeros.AsMemory(0, (int)Math.Min(zeros.Length, length - at)), false, ct);
    }

    private Task SendRangeAsync(NbdCommand command, CommandFlags flags, long offset, long length, CancellationToken ct)
    {
        if (length == 0) return ThrowIfClosedAsync();
        // A multiple of any legal minimum block size (a power of two up to 64 KiB).
        var parts = new List<Task>();
        for (long at = 0; at < length; at += RangeChunk)
            parts.Add(SendAsync(new PendingRequest(command, flags, offset + at, (uint)Math.Min(RangeChunk, length - at)), default, ct));
        return Task.WhenAll(parts);
    }

    /// <summary>Allocation of [offset, offset+length) from base:allocation: extents back to back from
    /// <paramref name="offset"/>, at least one, within the range, possibly covering less than all of it.</summary>
    /// <exception cref="NotSupportedException">base:allocation was not negotiated (see <see cref="CanBlockStatus"/>).</exception>
    public async Task<IReadOnlyList<(long Offset, Extent Extent)>> BlockStatusAsync(long offset, uint length, CancellationToken ct = default)
    {
        CheckRange(offset, length);
        ArgumentOutOfRangeException.ThrowIfZero(length);
        if (!CanBlockStatus)
            throw new NotSupportedException($"the server of export '{Export}' did not agree to block status (base:allocation)");
        var request = new PendingRequest(NbdCommand.BlockStatus, 0, offset, length);
        await SendAsync(request, default, ct);
        var result = new List<(long, Extent)>(request.Descriptors!.Length);
        long at = offset, end = offset + length;
        foreach (var d in request.Descriptors)
        {
            if (at >= end) break;
            if (d.Length == 0) continue;
            long len = Math.Min(d.Length, end - at); // a server may describe past the end of the request
            result.Add((at, new Extent(len, (ExtentFlags)(d.Flags & (uint)(ExtentFlags.Hole | ExtentFlags.Zero)))));
            at += len;
        }
        return result;
    }

    private bool Has(TransmissionFlags flag) => TransmissionFlags.HasFlag(flag);

    private static void CheckRange(long offset, long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (length > long.MaxValue - offset) throw new ArgumentOutOfRangeException(nameof(length), "offset + length overflows");
    }

    private void CheckWritable()
    {
        if (IsReadOnly) throw new NbdClientException(NbdError.Perm, $"export '{Export}' is read-only");
    }

    /// <summary>Sends one request and waits for its whole reply.</summary>
    private async Task SendAsync(PendingRequest request, ReadOnlyMemory<byte> payload, CancellationToken ct)
    {
        ThrowIfClosed();
        await _slots.WaitAsync(ct);
        try
        {
            await _writeLock.WaitAsync(ct);
        }
        catch
        {
            _slots.Release();
            throw;
        }
        try
        {
            if (!IsConnected || Volatile.Read(ref _disposing) != 0)
            {
                _slots.Release();
                ThrowIfClosed();
                throw new ObjectDisposedException(nameof(NbdClient));
            }
            request.Cookie = (ulong)Interlocked.Increment(ref _nextCookie);
            _pending[request.Cookie] = request;
            // Pairs with Abort: it publishes the reason, then sweeps _pending; we publish the request, then
            // look at the reason. Whichever comes second sees the other, so no request is left behind.
            Interlocked.MemoryBarrier();
            if (!IsConnected)
            {
                Retire(request, LostError());
            }
            else
            {
                try
                {
                    await WriteRequestAsync(request.ToWire(), payload);
                }
                catch (Exception ex)
                {
                    Abort(new NbdConnectionLostException($"sending to {_options} failed: {ex.Message}", ex));
                }
            }
        }
        finally
        {
            _writeLock.Release();
        }
        // The request is on the wire and cannot be recalled: a cancelled caller stops waiting (and its
        // buffer is no longer written to) but the slot stays taken until the server answers.
        using (ct.CanBeCanceled ? ct.UnsafeRegister(static (s, t) => ((PendingRequest)s!).Cancel(t), request) : default)
        {
            await request.Task;
        }
    }

    private async ValueTask WriteRequestAsync(NbdRequest request, ReadOnlyMemory<byte> payload)
    {
        RequestCodec.Write(_sendBuffer, request);
        int inline = payload.Length <= SendBufferSize - NbdLimits.RequestHeaderSize ? payload.Length : 0;
        payload[..inline].CopyTo(_sendBuffer.AsMemory(NbdLimits.RequestHeaderSize));
        await _stream.WriteAsync(_sendBuffer.AsMemory(0, NbdLimits.RequestHeaderSize + inline), _stopping.Token);
        if (inline < payload.Length) await _stream.WriteAsync(payload, _stopping.Token);
    }

    private Task ThrowIfClosedAsync()
    {
        try
        {
            ThrowIfClosed();
            return Task.CompletedTask;
        }
        catch (Exception ex)
        {
            return Task.FromException(ex);
        }
    }

    private void ThrowIfClosed()
    {
        var reason = Volatile.Read(ref _closeReason);
        if (reason is null) return;
        if (reason is ObjectDisposedException) throw new ObjectDisposedException(nameof(NbdClient), $"the NBD client of {_options} was disposed");
        throw LostError();
    }

    private NbdConnectionLostException LostError()
    {
        var reason = Volatile.Read(ref _closeReason);
        return new NbdConnectionLostException($"connection to {_options} is closed: {reason?.Message ?? "unknown reason"}", reason);
    }

    /// <summary>Ends the connection once: records why, fails every pending request, completes <see cref="Closed"/>.</summary>
    private void Abort(Exception reason)
    {
        if (Interlocked.CompareExchange(ref _closeReason, reason, null) is not null) return;
        _stopping.Cancel(); // unblocks a write stuck on a full socket buffer
        _socket.Dispose();  // and the receive loop, which ends with an error that is no longer recorded
        foreach (var cookie in _pending.Keys)
        {
            if (_pending.TryRemove(cookie, out var request))
            {
                _slots.Release();
                request.Finish(LostError());
            }
        }
        _closed.TrySetResult();
    }

    /// <summary>Removes a request that has its answer, frees its slot, and completes it.</summary>
    private void Retire(PendingRequest request, Exception? error)
    {
        if (!_pending.TryRemove(request.Cookie, out _)) return;
        _slots.Release();
        request.Finish(error);
    }

    /// <summary>Sends NBD_CMD_DISC, lets the server answer what is in flight (bounded by
    /// <see cref="NbdClientOptions.DisconnectTimeout"/>), then closes.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposing, 1) == 0 && IsConnected) await DisconnectAsync();
        Abort(new ObjectDisposedException(nameof(NbdClient), "the client was disposed"));
        await _receiveLoop; // never faults
        _stream.Dispose();
    }

    private async Task DisconnectAsync()
    {
        using var timeout = new CancellationTokenSource(_options.DisconnectTimeout);
        try
        {
            await _writeLock.WaitAsync(timeout.Token);
            try
            {
                RequestCodec.Write(_sendBuffer, new NbdRequest(0, NbdCommand.Disc, (ulong)Interlocked.Increment(ref _nextCookie), 0, 0));
                await _stream.WriteAsync(_sendBuffer.AsMemory(0, NbdLimits.RequestHeaderSize), timeout.Token);
                _socket.Shutdown(SocketShutdown.Send);
            }
            finally
            {
                _writeLock.Release();
            }
            // The server answers what is in flight and then closes: the receive loop ends at that EOF.
            await _receiveLoop.WaitAsync(timeout.Token);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
        {
            // Best effort: the connection is closed below either way.
        }
    }
}
