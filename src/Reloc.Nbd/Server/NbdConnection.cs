using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Net.Security;
using System.Security.Authentication;
using System.Text;
using Microsoft.Extensions.Logging;
using Reloc.Nbd.Protocol;
using Reloc.Nbd.Telemetry;
using Reloc.Nbd.Tls;

namespace Reloc.Nbd.Server;

/// <summary>
/// One client connection: the fixed-newstyle handshake (this file), then the transmission phase
/// (NbdConnection.Transmission.cs). A framing error (bad magic, a broken handshake) closes this
/// connection only; request errors get an error reply and the connection goes on.
/// </summary>
internal sealed partial class NbdConnection : IAsyncDisposable
{
    private const uint BaseAllocationContextId = 1;
    // Replaced once by STARTTLS: the SslStream over the socket, and pipes over it.
    private Stream _stream;
    private PipeReader _reader;
    private PipeWriter _writer;
    private readonly ExportCatalog _catalog;
    private readonly NbdServerSettings _settings;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _stop = new();
    private readonly NbdMetrics? _metrics;
    private readonly ServerTlsCredentials? _tls;
    private CancellationTokenSource _handshake = null!; // set by RunAsync: the stop token plus HandshakeTimeout
    private NbdPeer _who;

    private bool _noZeroes;
    private bool _structured;
    private string? _metaContextExport; // export for which base:allocation was selected

    public NbdConnection(Stream stream, NbdPeer peer, ExportCatalog catalog, NbdServerSettings settings, ILogger log,
        NbdMetrics? metrics = null, ServerTlsCredentials? tls = null)
    {
        _metrics = metrics;
        _stream = stream;
        _who = peer;
        _catalog = catalog;
        _settings = settings;
        _log = log;
        _tls = tls;
        (_reader, _writer) = CreatePipes(stream);
        _slots = new SemaphoreSlim(settings.MaxInFlightPerConnection, settings.MaxInFlightPerConnection);
    }

    private string _peer => _who.Display;

    // leaveOpen: STARTTLS drops the plain pipes and keeps the socket; DisposeAsync disposes the stream itself.
    private static (PipeReader, PipeWriter) CreatePipes(Stream stream) =>
        (PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 256 * 1024, minimumReadSize: 64 * 1024, leaveOpen: true)),
         PipeWriter.Create(stream, new StreamPipeWriterOptions(minimumBufferSize: 64 * 1024, leaveOpen: true)));

    /// <summary>Asks the connection to stop reading new requests; in-flight ones still complete.</summary>
    public void Stop()
    {
        _stop.Cancel();
        _reader.CancelPendingRead();
    }

    public async Task RunAsync()
    {
        _handshake = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        _handshake.CancelAfter(_settings.HandshakeTimeout);
        try
        {
            NbdExport? export;
            try
            {
                export = await NegotiateAsync();
            }
            catch (OperationCanceledException) when (_handshake.IsCancellationRequested && !_stop.IsCancellationRequested)
            {
                _log.LogInformation("{Peer}: handshake not finished within {Timeout} s; connection closed",
                    _peer, _settings.HandshakeTimeout.TotalSeconds);
                return;
            }
            catch (AuthenticationException ex)
            {
                _log.LogInformation("{Peer}: TLS handshake failed: {Reason}", _peer, ex.Message);
                return;
            }
            finally
            {
                _handshake.Dispose();
            }
            if (export is null) return;
            _log.LogDebug("{Peer} entered transmission on export {Export}", _peer, export.Name);
            export.Clients.Connected();
            _metrics?.Connected(export.Name);
            try
            {
                await TransmitAsync(export);
            }
            finally
            {
                _metrics?.Disconnected(export.Name);
                export.Clients.Disconnected();
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ProtocolViolation or ObjectDisposedException)
        {
            _log.LogDebug("{Peer}: connection closed: {Reason}", _peer, ex.Message);
        }
        catch (Exception ex)
        {
            _log.LogError(ex, "{Peer}: connection failed", _peer);
        }
    }

    public async ValueTask DisposeAsync()
    {
        // The writer first: completing it flushes replies still buffered, and completing the reader disposes the
        // stream (the pipes own it). A peer that is gone makes that flush fail: nothing is left to tell it, and the
        // server's stop must not fail for it.
        try { await _writer.CompleteAsync(); }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or OperationCanceledException)
        {
            _log.LogDebug("{Peer}: replies left unsent at close: {Reason}", _peer, ex.Message);
        }
        await _reader.CompleteAsync();
        try { await _stream.DisposeAsync(); }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
            _log.LogDebug("{Peer}: closing the stream failed: {Reason}", _peer, ex.Message); // e.g. TLS close_notify to a gone peer
        }
    }

    /// <summary>A client broke the protocol in a way that leaves no choice but to hang up.</summary>
    private sealed class ProtocolViolation(string message) : Exception(message);

    // ---- handshake ----

    /// <returns>The export to serve, or null when the client ended the handshake.</returns>
    private async Task<NbdExport?> NegotiateAsync()
    {
        Span<byte> greeting = stackalloc byte[18];
        BinaryPrimitives.WriteUInt64BigEndian(greeting, NbdMagic.InitPasswd);
        BinaryPrimitives.WriteUInt64BigEndian(greeting[8..], NbdMagic.IHaveOpt);
        BinaryPrimitives.WriteUInt16BigEndian(greeting[16..], (ushort)(HandshakeFlags.FixedNewstyle | HandshakeFlags.NoZeroes));
        _writer.Write(greeting);
        await _writer.FlushAsync(_handshake.Token);

        var flagBytes = await ReadExactAsync(4);
        var clientFlags = (ClientFlags)BinaryPrimitives.ReadUInt32BigEndian(flagBytes);
        if ((clientFlags & ~(ClientFlags.FixedNewstyle | ClientFlags.NoZeroes)) != 0)
            throw new ProtocolViolation($"unknown client flags 0x{(uint)clientFlags:x}");
        _noZeroes = clientFlags.HasFlag(ClientFlags.NoZeroes);

        while (true)
        {
            var header = await ReadOptionHeaderAsync();
            if (header.Length > _settings.MaxOptionBytes)
            {
                if ((NbdOption)header.Option == NbdOption.ExportName)
                    throw new ProtocolViolation("export name too long");
                await SkipAsync(header.Length);
                await ReplyOptionAsync(header.Option, OptionReplyType.ErrTooBig, "option too large");
                continue;
            }
            var body = new ReadOnlySequence<byte>(await ReadExactAsync((int)header.Length));
            var option = (NbdOption)header.Option;
            if (_settings.Tls.Mode == NbdTlsMode.Require && !_who.IsTls && option is not (NbdOption.StartTls or NbdOption.Abort))
            {
                // FORCEDTLS: EXPORT_NAME cannot be answered with an error, so the spec's answer is to hang up.
                if (option == NbdOption.ExportName) throw new ProtocolViolation("NBD_OPT_EXPORT_NAME before STARTTLS on a TLS-only server");
                _log.LogDebug("{Peer}: option {Option} before STARTTLS refused (TLS required)", _peer, option);
                await ReplyOptionAsync(header.Option, OptionReplyType.ErrTlsReqd, "TLS is required: send NBD_OPT_STARTTLS first");
                continue;
            }
            switch (option)
            {
                case NbdOption.StartTls:
                    await HandleStartTlsAsync(header.Option, body);
                    break;
                case NbdOption.ExportName:
                    return await HandleExportNameAsync(body);
                case NbdOption.Abort:
                    await ReplyOptionAsync(header.Option, OptionReplyType.Ack);
                    return null;
                case NbdOption.List:
                    await HandleListAsync(header.Option, body);
                    break;
                case NbdOption.Info:
                case NbdOption.Go:
                    var export = await HandleInfoAsync(header.Option, body);
                    if (export is not null && option == NbdOption.Go) return export;
                    break;
                case NbdOption.StructuredReply:
                    if (body.Length != 0) await ReplyOptionAsync(header.Option, OptionReplyType.ErrInvalid, "no payload expected");
                    else if (_structured) await ReplyOptionAsync(header.Option, OptionReplyType.ErrInvalid, "already negotiated");
                    else
                    {
                        _structured = true;
                        await ReplyOptionAsync(header.Option, OptionReplyType.Ack);
                    }
                    break;
                case NbdOption.ListMetaContext:
                case NbdOption.SetMetaContext:
                    await HandleMetaContextAsync(header.Option, body);
                    break;
                default:
                    await ReplyOptionAsync(header.Option, OptionReplyType.ErrUnsup, $"option {header.Option} is not supported");
                    break;
            }
        }
    }

    private async Task<NbdExport?> HandleExportNameAsync(ReadOnlySequence<byte> body)
    {
        // NBD_OPT_EXPORT_NAME has no error reply: the spec's only answer to an unknown name is to hang up.
        if (!OptionCodec.TryDecode(body, out var name) || !_catalog.TryGet(name, out var export))
            throw new ProtocolViolation("unknown export requested with NBD_OPT_EXPORT_NAME");
        if (!Permits(export.Name, NbdOption.ExportName, out _))
            throw new ProtocolViolation("export refused by the access policy (NBD_OPT_EXPORT_NAME)");
        var buf = new byte[10 + (_noZeroes ? 0 : 124)];
        BinaryPrimitives.WriteUInt64BigEndian(buf, (ulong)export.Device.Size);
        BinaryPrimitives.WriteUInt16BigEndian(buf.AsSpan(8), (ushort)export.FlagsFor(_structured));
        _writer.Write(buf);
        await _writer.FlushAsync(_handshake.Token);
        return export;
    }

    private async Task HandleListAsync(uint option, ReadOnlySequence<byte> body)
    {
        if (body.Length != 0)
        {
            await ReplyOptionAsync(option, OptionReplyType.ErrInvalid, "NBD_OPT_LIST takes no payload");
            return;
        }
        // Exports this peer may not open are not shown either; refusals here are not logged one by one.
        foreach (var e in _catalog.All.Where(e => _settings.ExportAccess.Decide(_who, e.Name).Allowed))
        {
            var name = Encoding.UTF8.GetBytes(e.Name);
            var desc = Encoding.UTF8.GetBytes(e.Description);
            var data = new byte[4 + name.Length + desc.Length];
            BinaryPrimitives.WriteUInt32BigEndian(data, (uint)name.Length);
            name.CopyTo(data, 4);
            desc.CopyTo(data, 4 + name.Length);
            WriteOptionReply(option, OptionReplyType.Server, data);
        }
        await ReplyOptionAsync(option, OptionReplyType.Ack);
    }

    private async Task<NbdExport?> HandleInfoAsync(uint option, ReadOnlySequence<byte> body)
    {
        var request = OptionCodec.ParseExportInfo(body);
        if (request is null)
        {
            await ReplyOptionAsync(option, OptionReplyType.ErrInvalid, "malformed NBD_OPT_INFO/GO payload");
            return null;
        }
        if (!_catalog.TryGet(request.Name, out var export))
        {
            await ReplyOptionAsync(option, OptionReplyType.ErrUnknown, $"no export named '{request.Name}'");
            return null;
        }
        if (!Permits(export.Name, (NbdOption)option, out var refusal))
        {
            await ReplyOptionAsync(option, OptionReplyType.ErrPolicy, refusal);
            return null;
        }

        var info = new byte[12];
        BinaryPrimitives.WriteUInt16BigEndian(info, (ushort)InfoType.Export);
        BinaryPrimitives.WriteUInt64BigEndian(info.AsSpan(2), (ulong)export.Device.Size);
        BinaryPrimitives.WriteUInt16BigEndian(info.AsSpan(10), (ushort)export.FlagsFor(_structured));
        WriteOptionReply(option, OptionReplyType.Info, info);

        // Block size is sent unasked: min 1 means clients need not align, so it is safe to volunteer.
        var bs = new byte[14];
        BinaryPrimitives.WriteUInt16BigEndian(bs, (ushort)InfoType.BlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(bs.AsSpan(2), 1);
        BinaryPrimitives.WriteUInt32BigEndian(bs.AsSpan(6), (uint)_settings.PreferredBlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(bs.AsSpan(10), (uint)_settings.MaxRequestBytes);
        WriteOptionReply(option, OptionReplyType.Info, bs);

        if (request.Requests.Contains(InfoType.Name)) WriteInfoString(option, InfoType.Name, export.Name);
        if (request.Requests.Contains(InfoType.Description) && export.Description.Length > 0)
            WriteInfoString(option, InfoType.Description, export.Description);

        await ReplyOptionAsync(option, OptionReplyType.Ack);
        if (_metaContextExport is not null && _metaContextExport != export.Name && (NbdOption)option == NbdOption.Go)
            _metaContextExport = null; // contexts were chosen for another export
        return export;
    }

    private void WriteInfoString(uint option, InfoType type, string value)
    {
        var s = Encoding.UTF8.GetBytes(value);
        var data = new byte[2 + s.Length];
        BinaryPrimitives.WriteUInt16BigEndian(data, (ushort)type);
        s.CopyTo(data, 2);
        WriteOptionReply(option, OptionReplyType.Info, data);
    }

    private async Task HandleMetaContextAsync(uint option, ReadOnlySequence<byte> body)
    {
        bool set = (NbdOption)option == NbdOption.SetMetaContext;
        var request = OptionCodec.ParseMetaContext(body);
        if (request is null)
        {
            await ReplyOptionAsync(option, OptionReplyType.ErrInvalid, "malformed meta context payload");
            return;
        }
        if (set && !_structured)
        {
            await ReplyOptionAsync(option, OptionReplyType.ErrInvalid, "structured replies must be negotiated first");
            return;
        }
        if (!_catalog.TryGet(request.ExportName, out var export))
        {
            await ReplyOptionAsync(option, OptionReplyType.ErrUnknown, $"no export named '{request.ExportName}'");
            return;
        }
        if (!Permits(export.Name, (NbdOption)option, out var refusal))
        {
            await ReplyOptionAsync(option, OptionReplyType.ErrPolicy, refusal);
            return;
        }
        // base:allocation is the only context; a LIST with no query or the namespace query "base:" lists it.
        bool matches = request.Queries.Any(q => q == NbdLimits.BaseAllocation || (!set && q == "base:"))
                       || (!set && request.Queries.Count == 0);
        if (set) _metaContextExport = matches ? export.Name : null;
        if (matches)
        {
            var name = Encoding.UTF8.GetBytes(NbdLimits.BaseAllocation);
            var data = new byte[4 + name.Length];
            BinaryPrimitives.WriteUInt32BigEndian(data, set ? BaseAllocationContextId : 0);
            name.CopyTo(data, 4);
            WriteOptionReply(option, OptionReplyType.MetaContext, data);
        }
        await ReplyOptionAsync(option, OptionReplyType.Ack);
    }

    /// <summary>Asks the access policy; a refusal is logged once, naming peer, identity and export.</summary>
    private bool Permits(string export, NbdOption option, out string refusal)
    {
        var decision = _settings.ExportAccess.Decide(_who, export);
        refusal = "";
        if (decision.Allowed) return true;
        _log.LogWarning("{Peer} ({Identity}, {Transport}) refused export {Export} ({Option}): {Reason}",
            _peer, _who.Identity, _who.IsTls ? "TLS" : "plain", export, option, decision.Reason);
        refusal = $"access to export '{export}' is not permitted";
        return false;
    }

    /// <summary>NBD_OPT_STARTTLS: acknowledge, then the TLS handshake, then the rest of the option phase
    /// over new pipes on the SslStream.</summary>
    private async Task HandleStartTlsAsync(uint option, ReadOnlySequence<byte> body)
    {
        if (_tls is null)
        {
            await ReplyOptionAsync(option, OptionReplyType.ErrPolicy, "TLS is not enabled on this server");
            return;
        }
        if (_who.IsTls)
        {
            await ReplyOptionAsync(option, OptionReplyType.ErrInvalid, "TLS is already negotiated");
            return;
        }
        if (body.Length != 0)
        {
            await ReplyOptionAsync(option, OptionReplyType.ErrInvalid, "NBD_OPT_STARTTLS takes no payload");
            return;
        }
        await ReplyOptionAsync(option, OptionReplyType.Ack);
        // The client must wait for the ack before its ClientHello; plain bytes already here would be
        // options smuggled in front of the TLS session.
        if (_reader.TryRead(out var pending))
        {
            bool smuggled = !pending.Buffer.IsEmpty;
            _reader.AdvanceTo(pending.Buffer.Start);
            if (smuggled) throw new ProtocolViolation("data sent after NBD_OPT_STARTTLS before the TLS handshake");
        }
        await _writer.CompleteAsync();
        await _reader.CompleteAsync();
        var ssl = new SslStream(_stream, leaveInnerStreamOpen: false);
        _stream = ssl;
        await ssl.AuthenticateAsServerAsync(_tls.Options(), _handshake.Token);
        (_reader, _writer) = CreatePipes(ssl);
        // A certificate is here only if it verified against the CA (see ServerTlsCredentials.Options).
        var (subject, cn) = TlsCredentials.Identity(ssl.RemoteCertificate);
        _who = _who with { IsTls = true, CertificateSubject = subject, CertificateCommonName = cn };
        // The spec leaves what survives STARTTLS open; nothing negotiated in plain text is kept.
        _structured = false;
        _metaContextExport = null;
        _log.LogDebug("{Peer}: TLS {Protocol} {Cipher}, client {Identity}", _peer, ssl.SslProtocol, ssl.NegotiatedCipherSuite, _who.Identity);
    }

    private void WriteOptionReply(uint option, OptionReplyType type, ReadOnlySpan<byte> data)
    {
        var span = _writer.GetSpan(NbdLimits.OptionReplyHeaderSize + data.Length);
        OptionCodec.WriteReplyHeader(span, option, type, data.Length);
        data.CopyTo(span[NbdLimits.OptionReplyHeaderSize..]);
        _writer.Advance(NbdLimits.OptionReplyHeaderSize + data.Length);
    }

    private async Task ReplyOptionAsync(uint option, OptionReplyType type, string? message = null)
    {
        WriteOptionReply(option, type, message is null ? [] : Encoding.UTF8.GetBytes(message));
        await _writer.FlushAsync(_handshake.Token);
    }

    private async Task<OptionHeader> ReadOptionHeaderAsync()
    {
        while (true)
        {
            var result = await _reader.ReadAsync(_handshake.Token);
            if (result.IsCanceled) throw new OperationCanceledException("server stopping");
            var buffer = result.Buffer;
            var status = OptionCodec.TryParseHeader(buffer, out var header);
            if (status == ParseStatus.BadMagic) throw new ProtocolViolation("bad option magic");
            if (status == ParseStatus.Ok)
            {
                _reader.AdvanceTo(buffer.GetPosition(NbdLimits.OptionHeaderSize));
                return header;
            }
            if (result.IsCompleted) throw new IOException("client closed during handshake");
            _reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    private async Task<byte[]> ReadExactAsync(int count)
    {
        if (count == 0) return []; // a read would wait for bytes the client never sends
        while (true)
        {
            var result = await _reader.ReadAsync(_handshake.Token);
            if (result.IsCanceled) throw new OperationCanceledException("server stopping");
            var buffer = result.Buffer;
            if (buffer.Length >= count)
            {
                var bytes = buffer.Slice(0, count).ToArray();
                _reader.AdvanceTo(buffer.GetPosition(count));
                return bytes;
            }
            if (result.IsCompleted) throw new IOException("client closed during handshake");
            _reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    /// <summary>Discards <paramref name="count"/> bytes as they arrive, without buffering them all.</summary>
    private async Task SkipAsync(long count)
    {
        while (count > 0)
        {
            var result = await _reader.ReadAsync(_handshake.Token);
            if (result.IsCanceled) throw new OperationCanceledException("server stopping");
            long n = Math.Min(count, result.Buffer.Length);
            _reader.AdvanceTo(result.Buffer.GetPosition(n));
            count -= n;
            if (count > 0 && result.IsCompleted) throw new IOException("client closed while sending a payload");
        }
    }
}
