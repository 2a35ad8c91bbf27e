using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Text;
using Reloc.Nbd.Protocol;
using Reloc.Nbd.Tls;

namespace Reloc.Nbd.Client;

/// <summary>Connecting and the fixed-newstyle handshake: STRUCTURED_REPLY, SET_META_CONTEXT base:allocation
/// and GO (pipelined unless <see cref="NbdClientOptions.PipelineOptions"/> is off), each refused option degrading
/// the connection rather than failing it.</summary>
public sealed partial class NbdClient
{
    private const ulong OldstyleMagic = 0x00420281861253;
    private const int MaxOptionReplyBytes = 64 * 1024;

    /// <summary>Connects, negotiates and returns a client in the transmission phase.</summary>
    /// <exception cref="NbdHandshakeException">Not an NBD server, or it refused the export.</exception>
    /// <exception cref="IOException">The connection could not be made or broke during negotiation.</exception>
    /// <exception cref="TimeoutException">Connect and handshake took longer than <see cref="NbdClientOptions.ConnectTimeout"/>.</exception>
    public static async Task<NbdClient> ConnectAsync(NbdClientOptions options, CancellationToken ct = default)
    {
        var client = await OpenAsync(options.Validate(), (c, t) => c.NegotiateAsync(parking: false, t), ct);
        client.StartReceiving();
        return client;
    }

    /// <summary>Opens a connection up to the option phase (greeting, STARTTLS and the TLS handshake when
    /// <see cref="NbdClientOptions.Tls"/> asks for it, STRUCTURED_REPLY) and parks it there, for an export named later:
    /// <see cref="NbdParkedConnection.FinishAsync"/> then costs one round trip. <paramref name="options"/>' Export is ignored.</summary>
    /// <exception cref="NbdHandshakeException">Not an NBD server, or TLS refused or failed.</exception>
    /// <exception cref="IOException">The connection could not be made or broke during negotiation.</exception>
    /// <exception cref="TimeoutException">Connect and negotiation took longer than <see cref="NbdClientOptions.ConnectTimeout"/>.</exception>
    public static async Task<NbdParkedConnection> ParkAsync(NbdClientOptions options, CancellationToken ct = default)
    {
        // Its age counts from before the connect: the server's handshake clock starts at its accept.
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        var client = await OpenAsync((options with { Export = "" }).Validate(), (c, t) => c.NegotiateAsync(parking: true, t), ct);
        return new NbdParkedConnection(client, started);
    }

    private static async Task<NbdClient> OpenAsync(NbdClientOptions options, Func<NbdClient, CancellationToken, Task> negotiate, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(options.ConnectTimeout);
        var socket = options.UnixSocketPath is not null
            ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
            : new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        NbdClient? client = null;
        try
        {
            try
            {
                if (options.UnixSocketPath is { } path) await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), timeout.Token);
                else await socket.ConnectAsync(options.Host!, options.Port, timeout.Token);
            }
            catch (SocketException ex)
            {
                throw new IOException($"cannot connect to {options}: {ex.Message}", ex);
            }
            client = new NbdClient(socket, options);
            await negotiate(client, timeout.Token);
            return client;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            await DisposeFailedAsync(client, socket);
            throw new TimeoutException($"connecting to {options} did not finish within {options.ConnectTimeout.TotalSeconds:0.###} s");
        }
        catch
        {
            await DisposeFailedAsync(client, socket);
            throw;
        }
    }

    private static async Task DisposeFailedAsync(NbdClient? client, Socket socket)
    {
        if (client is not null)
        {
            await client._reader.CompleteAsync();
            if (client._stream is SslStream ssl) await ssl.DisposeAsync();
        }
        socket.Dispose();
    }

    /// <summary>Finishes a parked connection for <paramref name="export"/>: SET_META_CONTEXT and GO (one round trip
    /// pipelined), then the transmission phase. On any failure the connection is closed.</summary>
    internal async Task FinishParkedAsync(string export, CancellationToken ct)
    {
        _options = _options with { Export = export };
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(_options.ConnectTimeout);
        try
        {
            // No TLS hint here: a refused client certificate shows while parking; an I/O error now is a closed connection.
            await NegotiateOptionsAsync(structuredDone: true, timeout.Token);
            StartReceiving();
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            await DisposeFailedAsync(this, _socket);
            throw new TimeoutException($"finishing the parked connection to {_options} did not finish within {_options.ConnectTimeout.TotalSeconds:0.###} s");
        }
        catch
        {
            await DisposeFailedAsync(this, _socket);
            throw;
        }
    }

    /// <summary>The server has closed a parked connection (or reset it): it is readable with nothing to read. Under
    /// TLS a closing server's alert may count as something to read; finishing then fails at once instead.</summary>
    internal bool ParkedLooksClosed()
    {
        try { return _socket.Poll(0, SelectMode.SelectRead) && _socket.Available == 0; }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException) { return true; }
    }

    /// <summary>Leaves a parked connection as the spec asks (NBD_OPT_ABORT; its reply is not awaited) and closes it.</summary>
    internal async Task AbortParkedAsync()
    {
        try
        {
            using var timeout = new CancellationTokenSource(_options.DisconnectTimeout);
            await SendOptionAsync(NbdOption.Abort, [], timeout.Token);
            _socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
        {
            // Best effort: the server may have closed it already; it is closed below either way.
        }
        await DisposeFailedAsync(this, _socket);
    }

    private async Task NegotiateAsync(bool parking, CancellationToken ct)
    {
        var greeting = await ReadExactAsync(18, ct);
        if (BinaryPrimitives.ReadUInt64BigEndian(greeting) != NbdMagic.InitPasswd)
            throw HandshakeError("the peer is not an NBD server (bad greeting magic)");
        var second = BinaryPrimitives.ReadUInt64BigEndian(greeting.AsSpan(8));
        if (second == OldstyleMagic) throw HandshakeError("the server only speaks oldstyle negotiation, which is not supported");
        if (second != NbdMagic.IHaveOpt) throw HandshakeError("bad handshake magic");
        var serverFlags = (HandshakeFlags)BinaryPrimitives.ReadUInt16BigEndian(greeting.AsSpan(16));
        if (!serverFlags.HasFlag(HandshakeFlags.FixedNewstyle))
            throw HandshakeError("the server does not support fixed newstyle negotiation");
        _noZeroes = serverFlags.HasFlag(HandshakeFlags.NoZeroes);
        var clientFlags = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(clientFlags, (uint)(ClientFlags.FixedNewstyle | (_noZeroes ? ClientFlags.NoZeroes : 0)));
        await _stream.WriteAsync(clientFlags, ct);

        // STARTTLS first, so that no option is exchanged in plain text (the spec's advice against downgrades).
        if (_options.Tls == NbdClientTlsMode.Require) await StartTlsAsync(ct);
        if (parking) await NegotiateStructuredRepliesAsync(ct);
        else await NegotiateOptionsWithTlsHintAsync(structuredDone: false, ct);
    }

    /// <summary>Parking: STRUCTURED_REPLY now (it applies to the connection, not to an export), the rest at finish.</summary>
    private async Task NegotiateStructuredRepliesAsync(CancellationToken ct)
    {
        if (!_options.StructuredReplies) return;
        await WithTlsHintAsync(async () =>
        {
            await SendOptionAsync(NbdOption.StructuredReply, [], ct);
            var (reply, _) = await ReadOptionReplyAsync(NbdOption.StructuredReply, ct);
            if (reply.Type == OptionReplyType.Ack) _structured = true;
            else if (!reply.IsError) throw HandshakeError($"unexpected reply {reply.Type} to NBD_OPT_STRUCTURED_REPLY");
        });
    }

    private Task NegotiateOptionsWithTlsHintAsync(bool structuredDone, CancellationToken ct) =>
        WithTlsHintAsync(() => NegotiateOptionsAsync(structuredDone, ct));

    private async Task WithTlsHintAsync(Func<Task> negotiate)
    {
        try
        {
            await negotiate();
        }
        catch (IOException ex) when (IsTls && ex is not NbdHandshakeException)
        {
            // TLS 1.3: a server that refuses our client certificate does so after our side of the handshake
            // has finished, so it shows here, on the first read.
            throw new NbdHandshakeException($"the TLS session with {_options} ended during the option phase: the server may not "
                                            + $"accept our client certificate (client-cert.pem in {_options.TlsCertificates ?? "no folder"}): {ex.Message}",
                Export, null, ex);
        }
    }

    /// <param name="structuredDone">STRUCTURED_REPLY was negotiated already (a parked connection): not sent again.</param>
    private async Task NegotiateOptionsAsync(bool structuredDone, CancellationToken ct)
    {
        // Pipelined, every option goes out in one write and the replies are read in order (a server answers the
        // options of a connection one at a time, in the order sent): one round trip instead of three, which over a
        // WAN is most of a new connection's cost. SET_META_CONTEXT is then sent before STRUCTURED_REPLY is known to
        // be granted: a server that refused structured replies refuses the context too, and a context granted
        // without them is not used.
        bool pipelined = _options.PipelineOptions;
        bool askStructured = _options.StructuredReplies && !structuredDone;
        bool askContext = _options.StructuredReplies && _options.BlockStatus && (!structuredDone || _structured);
        byte[] go = OptionMessage(NbdOption.Go, OptionCodec.EncodeExportInfo(new ExportInfoRequest(Export, [InfoType.BlockSize])));
        if (pipelined)
        {
            var all = new List<byte[]>();
            if (askStructured) all.Add(OptionMessage(NbdOption.StructuredReply, []));
            if (askContext) all.Add(MetaContextMessage());
            all.Add(go);
            await _stream.WriteAsync(all.SelectMany(m => m).ToArray(), ct);
        }

        if (askStructured)
        {
            if (!pipelined) await _stream.WriteAsync(OptionMessage(NbdOption.StructuredReply, []), ct);
            var (reply, _) = await ReadOptionReplyAsync(NbdOption.StructuredReply, ct);
            if (reply.Type == OptionReplyType.Ack) _structured = true;
            else if (!reply.IsError) throw HandshakeError($"unexpected reply {reply.Type} to NBD_OPT_STRUCTURED_REPLY");
        }

        // base:allocation needs structured replies; a server that refuses either just gets no block status.
        if (askContext && (pipelined || _structured))
        {
            if (!pipelined) await _stream.WriteAsync(MetaContextMessage(), ct);
            while (true)
            {
                var (reply, data) = await ReadOptionReplyAsync(NbdOption.SetMetaContext, ct);
                if (reply.Type == OptionReplyType.Ack || reply.IsError) break;
                if (reply.Type != OptionReplyType.MetaContext || !OptionCodec.TryParseMetaContextReply(new ReadOnlySequence<byte>(data), out var id, out var name))
                    throw HandshakeError($"malformed reply {reply.Type} to NBD_OPT_SET_META_CONTEXT");
                if (name == NbdLimits.BaseAllocation && _structured) (_contextId, _hasContext) = (id, true);
            }
        }

        if (!pipelined) await _stream.WriteAsync(go, ct);
        bool gotExport = false;
        BlockSizeInfo? blockSize = null;
        while (true)
        {
            var (reply, data) = await ReadOptionReplyAsync(NbdOption.Go, ct);
            if (reply.Type == OptionReplyType.Ack) break;
            if (reply.Type == OptionReplyType.ErrUnsup)
            {
                // A server from before NBD_OPT_GO: the old way still works, it just cannot report errors.
                await ExportNameAsync(ct);
                gotExport = true;
                break;
            }
            if (reply.IsError)
            {
                var message = Encoding.UTF8.GetString(data);
                throw new NbdHandshakeException(
                    $"server {_options.ToUri() with { Export = "" }} refused export '{Export}': {Describe(reply.Type)}"
                    + (message.Length > 0 ? $" ({message})" : ""), Export, reply.Type);
            }
            if (reply.Type != OptionReplyType.Info) throw HandshakeError($"unexpected reply {reply.Type} to NBD_OPT_GO");
            var info = new ReadOnlySequence<byte>(data);
            if (!OptionCodec.TryParseInfoType(info, out var type)) throw HandshakeError("empty NBD_REP_INFO");
            if (type == InfoType.Export)
            {
                if (!OptionCodec.TryParseInfoExport(info, out var size, out var flags)) throw HandshakeError("malformed NBD_INFO_EXPORT");
                SetExport(size, flags);
                gotExport = true;
            }
            else if (type == InfoType.BlockSize)
            {
                if (!OptionCodec.TryParseInfoBlockSize(info, out var bs)) throw HandshakeError("malformed NBD_INFO_BLOCK_SIZE");
                blockSize = bs;
            }
        }
        if (!gotExport) throw HandshakeError("NBD_OPT_GO succeeded without NBD_INFO_EXPORT");
        SetBlockSizes(blockSize);
    }

    private async Task StartTlsAsync(CancellationToken ct)
    {
        await SendOptionAsync(NbdOption.StartTls, [], ct);
        var (reply, data) = await ReadOptionReplyAsync(NbdOption.StartTls, ct);
        if (reply.Type != OptionReplyType.Ack)
        {
            var message = Encoding.UTF8.GetString(data);
            throw new NbdHandshakeException($"server {_options.ToUri() with { Export = "" }} refused TLS (NBD_OPT_STARTTLS): {Describe(reply.Type)}"
                                            + (message.Length > 0 ? $" ({message})" : ""), Export, reply.Type);
        }
        if (_reader.TryRead(out var early))
        {
            bool extra = !early.Buffer.IsEmpty;
            _reader.AdvanceTo(early.Buffer.Start);
            if (extra) throw HandshakeError("the server sent data after acknowledging STARTTLS");
        }
        await _reader.CompleteAsync();
        var ssl = new SslStream(_stream, leaveInnerStreamOpen: false);
        _stream = ssl;
        try
        {
            await ssl.AuthenticateAsClientAsync(ClientTls.Options(_options), ct);
        }
        catch (AuthenticationException ex)
        {
            throw new NbdHandshakeException($"TLS handshake with {_options} failed: {ex.Message}"
                                            + (ex.InnerException is { } inner ? $" ({inner.Message})" : ""), Export, null, ex);
        }
        _reader = CreateReader(ssl);
    }

    private async Task ExportNameAsync(CancellationToken ct)
    {
        await SendOptionAsync(NbdOption.ExportName, Encoding.UTF8.GetBytes(Export), ct);
        byte[] reply;
        try
        {
            reply = await ReadExactAsync(_noZeroes ? 10 : 134, ct);
        }
        catch (IOException ex)
        {
            // NBD_OPT_EXPORT_NAME has no error reply: hanging up is how such a server says no.
            throw new NbdHandshakeException($"server {_options.ToUri() with { Export = "" }} closed the connection on export '{Export}' "
                                            + "(unknown export, or refused)", Export, null, ex);
        }
        SetExport(BinaryPrimitives.ReadUInt64BigEndian(reply), (TransmissionFlags)BinaryPrimitives.ReadUInt16BigEndian(reply.AsSpan(8)));
    }

    private void SetExport(ulong size, TransmissionFlags flags)
    {
        if (size > long.MaxValue) throw HandshakeError($"export size {size} is too large");
        Size = (long)size;
        TransmissionFlags = flags;
    }

    private void SetBlockSizes(BlockSizeInfo? info)
    {
        uint min = 1, preferred = 4096, max = (uint)_options.MaxRequestBytes;
        if (info is { } bs)
        {
            if (bs.Minimum == 0 || !uint.IsPow2(bs.Minimum) || bs.Minimum > 64 * 1024 || bs.Maximum < bs.Minimum)
                throw HandshakeError($"invalid block sizes min {bs.Minimum} preferred {bs.Preferred} max {bs.Maximum}");
            min = bs.Minimum;
            preferred = Math.Max(bs.Preferred, min);
            max = Math.Min(bs.Maximum, max);
        }
        MinBlockSize = (int)min;
        PreferredBlockSize = (int)Math.Min(preferred, max);
        // Splitting at a multiple of the minimum keeps every piece of an aligned request aligned.
        MaxBlockSize = (int)Math.Max(min, max / min * min);
    }

    private async Task SendOptionAsync(NbdOption option, byte[] body, CancellationToken ct) =>
        await _stream.WriteAsync(OptionMessage(option, body), ct);

    private static byte[] OptionMessage(NbdOption option, byte[] body)
    {
        var message = new byte[NbdLimits.OptionHeaderSize + body.Length];
        OptionCodec.WriteOptionHeader(message, option, body.Length);
        body.CopyTo(message, NbdLimits.OptionHeaderSize);
        return message;
    }

    private byte[] MetaContextMessage() =>
        OptionMessage(NbdOption.SetMetaContext, OptionCodec.EncodeMetaContext(new MetaContextRequest(Export, [NbdLimits.BaseAllocation])));

    private async Task<(OptionReplyHeader Reply, byte[] Data)> ReadOptionReplyAsync(NbdOption option, CancellationToken ct)
    {
        OptionReplyHeader header;
        while (true)
        {
            var result = await _reader.ReadAsync(ct);
            var status = OptionCodec.TryParseReplyHeader(result.Buffer, out header);
            if (status == ParseStatus.BadMagic) throw HandshakeError("bad option reply magic");
            if (status == ParseStatus.Ok)
            {
                _reader.AdvanceTo(result.Buffer.GetPosition(NbdLimits.OptionReplyHeaderSize));
                break;
            }
            if (result.IsCompleted) throw new IOException($"server closed the connection during the handshake ({option})");
            _reader.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }
        if (header.Option != (uint)option) throw HandshakeError($"reply to option {header.Option} while waiting for {option}");
        if (header.Length > MaxOptionReplyBytes) throw HandshakeError($"option reply of {header.Length} bytes is too large");
        return (header, await ReadExactAsync((int)header.Length, ct));
    }

    private async Task<byte[]> ReadExactAsync(int count, CancellationToken ct)
    {
        if (count == 0) return [];
        while (true)
        {
            var result = await _reader.ReadAsync(ct);
            var buffer = result.Buffer;
            if (buffer.Length >= count)
            {
                var bytes = buffer.Slice(0, count).ToArray();
                _reader.AdvanceTo(buffer.GetPosition(count));
                return bytes;
            }
            if (result.IsCompleted) throw new IOException("server closed the connection during the handshake");
            _reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    private NbdHandshakeException HandshakeError(string message) =>
        new($"NBD handshake with {_options} failed: {message}", Export);

    private static string Describe(OptionReplyType type) => type switch
    {
        OptionReplyType.ErrUnknown => "no such export",
        OptionReplyType.ErrPolicy => "forbidden by server policy",
        OptionReplyType.ErrTlsReqd => "TLS required (use nbds://)",
        OptionReplyType.ErrShutdown => "server shutting down",
        OptionReplyType.ErrInvalid => "request rejected as invalid",
        OptionReplyType.ErrPlatform => "not supported on the server's platform",
        OptionReplyType.ErrBlockSizeReqd => "block size negotiation required",
        OptionReplyType.ErrTooBig => "request too big",
        _ => type.ToString(),
    };
}
