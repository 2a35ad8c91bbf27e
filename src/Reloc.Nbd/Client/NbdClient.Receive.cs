using System.Buffers;
using Reloc.Nbd.Protocol;

namespace Reloc.Nbd.Client;

/// <summary>
/// The receive loop: parses replies from the pipe and completes their requests. READ data is copied
/// straight from the receive buffer into the caller's memory as it arrives, so a 32 MiB reply is never
/// buffered whole; other chunks are small and parsed once complete (bounded by MaxChunkBody).
/// </summary>
public sealed partial class NbdClient
{
    /// <summary>Largest non-data chunk accepted (a block status reply of two million extents).</summary>
    private const int MaxChunkBody = 16 << 20;

    // Data of the current reply still to copy into its request: the loop's only state between reads.
    private PendingRequest? _streamTarget;
    private int _streamAt;
    private int _streamLeft;
    private bool _streamDone;

    /// <summary>The server broke the protocol: the stream cannot be trusted, the connection ends.</summary>
    private sealed class ProtocolViolation(string message) : Exception(message);

    private void StartReceiving() => _receiveLoop = Task.Run(ReceiveLoopAsync);

    private async Task ReceiveLoopAsync()
    {
        Exception reason;
        try
        {
            while (true)
            {
                var result = await _reader.ReadAsync(_stopping.Token);
                var rest = Dispatch(result.Buffer);
                _reader.AdvanceTo(rest.Start, result.Buffer.End);
                if (result.IsCompleted)
                {
                    bool midReply = !rest.IsEmpty || _streamTarget is not null;
                    reason = Volatile.Read(ref _disposing) != 0 && !midReply
                        ? new ObjectDisposedException(nameof(NbdClient), "the client was disposed")
                        : new NbdConnectionLostException(midReply ? "the server closed the connection in the middle of a reply" : "the server closed the connection");
                    break;
                }
            }
        }
        catch (ProtocolViolation ex)
        {
            reason = new NbdConnectionLostException($"protocol error from {_options}: {ex.Message}", ex);
        }
        catch (Exception ex)
        {
            reason = ex;
        }
        await _reader.CompleteAsync();
        Abort(reason);
    }

    /// <summary>Handles every complete reply (and any data of the current one) in <paramref name="buffer"/>;
    /// returns what is left for the next read.</summary>
    private ReadOnlySequence<byte> Dispatch(ReadOnlySequence<byte> buffer)
    {
        while (true)
        {
            if (_streamTarget is { } target)
            {
                if (buffer.IsEmpty) return buffer;
                int n = (int)Math.Min(_streamLeft, buffer.Length);
                target.CopyIn(buffer.Slice(0, n), _streamAt);
                buffer = buffer.Slice(n);
                _streamAt += n;
                _streamLeft -= n;
                if (_streamLeft > 0) return buffer;
                _streamTarget = null;
                if (_streamDone) Complete(target);
                continue;
            }

            var status = ReplyCodec.TryParseHeader(buffer, out var h);
            if (status == ParseStatus.Incomplete) return buffer;
            if (status == ParseStatus.BadMagic) throw new ProtocolViolation("bad reply magic");
            if (!_pending.TryGetValue(h.Cookie, out var request)) throw new ProtocolViolation($"reply to unknown cookie {h.Cookie}");

            if (!h.Structured)
            {
                buffer = buffer.Slice(h.Size);
                if (h.Error != NbdError.None)
                {
                    request.Error = new ErrorChunk(h.Error, "", null);
                    Complete(request);
                }
                else if (request.Command == NbdCommand.Read)
                {
                    request.Covered = request.Length;
                    BeginData(request, 0, (int)request.Length, done: true);
                }
                else Complete(request);
                continue;
            }

            if (h.Type == ReplyType.OffsetData)
            {
                if (request.Command != NbdCommand.Read || h.Length < 8) throw new ProtocolViolation($"bad data chunk for {request.Command}");
                if (buffer.Length < h.Size + 8) return buffer;
                ReplyCodec.TryParseDataOffset(buffer.Slice(h.Size, 8), out var chunkOffset);
                long dataLength = h.Length - 8L;
                int at = request.Locate(chunkOffset, dataLength);
                if (at < 0) throw new ProtocolViolation($"data chunk {chunkOffset}+{dataLength} outside request {request.Offset}+{request.Length}");
                request.Covered += dataLength;
                buffer = buffer.Slice(h.Size + 8);
                if (dataLength > 0) BeginData(request, at, (int)dataLength, h.Done);
                else if (h.Done) Complete(request);
                continue;
            }

            if (h.Length > MaxChunkBody) throw new ProtocolViolation($"{h.Type} chunk of {h.Length} bytes is too large");
            if (buffer.Length < h.Size + h.Length) return buffer;
            OnChunk(request, h, buffer.Slice(h.Size, h.Length));
            buffer = buffer.Slice(h.Size + h.Length);
            if (h.Done) Complete(request);
        }
    }

    private void BeginData(PendingRequest request, int at, int length, bool done)
    {
        (_streamTarget, _streamAt, _streamLeft, _streamDone) = (request, at, length, done);
    }

    private void OnChunk(PendingRequest request, in ReplyHeader h, in ReadOnlySequence<byte> body)
    {
        if (h.IsErrorChunk)
        {
            if (!ReplyCodec.TryParseError(body, h.Type == ReplyType.ErrorOffset, out var error))
                throw new ProtocolViolation($"malformed {h.Type} chunk");
            // errno 0 in an error chunk is a server bug; the request still failed.
            request.Error ??= error.Error == NbdError.None ? error with { Error = NbdError.Io } : error;
            return;
        }
        switch (h.Type)
        {
            case ReplyType.None:
                if (h.Length != 0 || !h.Done) throw new ProtocolViolation("NBD_REPLY_TYPE_NONE with a body or without DONE");
                return;
            case ReplyType.OffsetHole:
                if (request.Command != NbdCommand.Read || !ReplyCodec.TryParseHole(body, out var holeOffset, out var holeLength) || holeLength == 0)
                    throw new ProtocolViolation($"bad hole chunk for {request.Command}");
                int at = request.Locate(holeOffset, holeLength);
                if (at < 0) throw new ProtocolViolation($"hole chunk {holeOffset}+{holeLength} outside request {request.Offset}+{request.Length}");
                request.ZeroFill(at, (int)holeLength);
                request.Covered += holeLength;
                return;
            case ReplyType.BlockStatus:
                if (request.Command != NbdCommand.BlockStatus || !ReplyCodec.TryParseBlockStatus(body, out var id, out var descriptors))
                    throw new ProtocolViolation($"bad block status chunk for {request.Command}");
                if (id != _contextId) return; // a context we did not ask for: not ours to interpret
                if (request.Descriptors is not null) throw new ProtocolViolation("two block status chunks for one context");
                if (descriptors[0].Length == 0) throw new ProtocolViolation("block status starts with an empty extent");
                request.Descriptors = descriptors;
                return;
            default:
                throw new ProtocolViolation($"unexpected chunk type {(ushort)h.Type}");
        }
    }

    /// <summary>The request's last chunk has arrived: check it was answered in full, then complete it.</summary>
    private void Complete(PendingRequest request)
    {
        Exception? error = null;
        if (request.Error is { } e)
            error = new NbdClientException(e.Error, request.Command, request.Offset, request.Length, Export, e.Message);
        else if (request.Command == NbdCommand.Read && request.Covered != request.Length)
            throw new ProtocolViolation($"read reply covered {request.Covered} of {request.Length} bytes");
        else if (request.Command == NbdCommand.BlockStatus && request.Descriptors is null)
            throw new ProtocolViolation("block status reply without extents for base:allocation");
        Retire(request, error);
    }
}
