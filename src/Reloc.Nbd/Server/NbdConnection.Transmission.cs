using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Reloc.Nbd.Protocol;
using Reloc.Storage;

namespace Reloc.Nbd.Server;

/// <summary>
/// Transmission phase. The loop parses every complete request in the receive buffer and runs it:
/// an operation the device completes synchronously (a page-cache read or write) is answered inline
/// and the replies of the whole batch go out in one flush; one that completes later (fdatasync,
/// a fetch from a remote site) is answered when it completes, so replies leave out of order and a
/// slow request never holds up the fast ones behind it. At most MaxInFlightPerConnection requests
/// are outstanding: past that the loop stops reading, which pushes back on the client through TCP.
/// </summary>
internal sealed partial class NbdConnection
{
    private const int StructuredReadHeader = NbdLimits.StructuredReplyHeaderSize + 8;
    private const int LargeRead = 128 * 1024;
    private readonly SemaphoreSlim _slots;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private NbdExport _export = null!;
    private IBlockDevice _device = null!;

    private async Task TransmitAsync(NbdExport export)
    {
        _export = export;
        _device = export.Device;
        long drain = 0; // bytes of a rejected WRITE's payload still to discard
        bool disconnect = false;
        try
        {
            while (!disconnect)
            {
                var result = await _reader.ReadAsync();
                if (result.IsCanceled) break; // Stop(): take no new requests
                var buffer = result.Buffer;
                bool wrote = false;
                while (true)
                {
                    if (drain > 0)
                    {
                        long n = Math.Min(drain, buffer.Length);
                        buffer = buffer.Slice(n);
                        drain -= n;
                        if (drain > 0) break;
                    }
                    var status = RequestCodec.TryParse(buffer, out var req);
                    if (status == ParseStatus.Incomplete) break;
                    long started = _metrics is null ? 0 : Stopwatch.GetTimestamp();
                    if (status == ParseStatus.BadMagic) throw new ProtocolViolation("bad request magic");

                    var error = Validate(req);
                    if (error == NbdError.None && req.HasPayload && buffer.Length < NbdLimits.RequestHeaderSize + req.Length)
                        break; // wait for the whole payload
                    buffer = buffer.Slice(NbdLimits.RequestHeaderSize);
                    if (req.Command == NbdCommand.Disc)
                    {
                        disconnect = true;
                        break;
                    }
                    if (error != NbdError.None)
                    {
                        _log.LogDebug("{Peer}: rejected {Command} at {Offset}+{Length}: {Error}", _peer, req.Command, req.Offset, req.Length, error);
                        await LockAsync();
                        try { WriteStatusReply(req, error); }
                        finally { _writeLock.Release(); }
                        Record(req, error, 0, started);
                        wrote = true;
                        if (req.HasPayload) drain = req.Length;
                        continue;
                    }

                    var payload = ReadOnlySequence<byte>.Empty;
                    if (req.HasPayload)
                    {
                        payload = buffer.Slice(0, req.Length);
                        buffer = buffer.Slice(req.Length);
                    }
                    if (!_slots.Wait(0))
                    {
                        // Full: let the replies we hold go out so completions can free slots.
                        if (wrote) await FlushRepliesAsync();
                        wrote = false;
                        await _slots.WaitAsync();
                    }
                    wrote |= await DispatchAsync(req, payload, started);
                }
                _reader.AdvanceTo(buffer.Start, buffer.End);
                if (wrote) await FlushRepliesAsync();
                if (result.IsCompleted) break;
            }
        }
        finally
        {
            // Requests still in flight hold slots: taking them all waits for every reply to be sent.
            for (int i = 0; i < _settings.MaxInFlightPerConnection; i++) await _slots.WaitAsync();
        }
        await FlushRepliesAsync();
    }

    private NbdError Validate(in NbdRequest r)
    {
        CommandFlags allowed = r.Command switch
        {
            NbdCommand.Read => CommandFlags.Fua | CommandFlags.Df,
            NbdCommand.WriteZeroes => CommandFlags.Fua | CommandFlags.NoHole | CommandFlags.FastZero,
            NbdCommand.BlockStatus => CommandFlags.Fua | CommandFlags.ReqOne,
            NbdCommand.Write or NbdCommand.Flush or NbdCommand.Trim or NbdCommand.Cache or NbdCommand.Disc => CommandFlags.Fua,
            _ => (CommandFlags)0xffff, // unknown command
        };
        if (allowed == (CommandFlags)0xffff || (r.Flags & ~allowed) != 0) return NbdError.Inval;
        if (r.Flags.HasFlag(CommandFlags.Df) && !_structured) return NbdError.Inval;
        bool writes = r.Command is NbdCommand.Write or NbdCommand.Trim or NbdCommand.WriteZeroes;
        if (r.Command is NbdCommand.Flush or NbdCommand.Disc) return NbdError.None;
        if (r.Length > _settings.MaxRequestBytes && r.Command is NbdCommand.Read or NbdCommand.Write)
            return r.Command == NbdCommand.Read ? NbdError.Overflow : NbdError.Inval;
        if (writes && _device.IsReadOnly) return NbdError.Perm;
        ulong size = (ulong)_device.Size;
        if (r.Offset > size || r.Length > size - r.Offset)
            return r.Command is NbdCommand.Write or NbdCommand.WriteZeroes ? NbdError.NoSpc : NbdError.Inval;
        if (r.Command == NbdCommand.BlockStatus && (r.Length == 0 || _metaContextExport != _export.Name))
            return NbdError.Inval;
        return NbdError.None;
    }

    /// <summary>Runs a validated request that holds a slot.</summary>
    /// <returns>True when its reply was written (not yet flushed) before returning.</returns>
    private async ValueTask<bool> DispatchAsync(NbdRequest req, ReadOnlySequence<byte> payload, long started)
    {
        if (req.Command == NbdCommand.Read) return await ReadAsync(req, started);
        if (req.Command == NbdCommand.BlockStatus) return await BlockStatusAsync(req, started);
        ValueTask op;
        try
        {
            long off = (long)req.Offset;
            var fua = req.Flags.HasFlag(CommandFlags.Fua) ? WriteOptions.Fua : WriteOptions.None;
            op = req.Command switch
            {
                NbdCommand.Write => _device.WriteAsync(off, payload, fua, CancellationToken.None),
                NbdCommand.Flush => _device.FlushAsync(CancellationToken.None),
                NbdCommand.Trim => _device.TrimAsync(off, req.Length, fua, CancellationToken.None),
                NbdCommand.WriteZeroes => _device.WriteZeroesAsync(off, req.Length, fua
                    | (req.Flags.HasFlag(CommandFlags.NoHole) ? WriteOptions.NoHole : 0)
                    | (req.Flags.HasFlag(CommandFlags.FastZero) ? WriteOptions.FastZero : 0), CancellationToken.None),
                NbdCommand.Cache => _device.CacheAsync(off, req.Length, CancellationToken.None),
                _ => throw new InvalidOperationException($"unvalidated command {req.Command}"),
            };
        }
        catch (Exception ex)
        {
            await ReplyAndReleaseAsync(req, NbdErrors.FromException(ex, _log, req), flush: false, started);
            return true;
        }
        if (op.IsCompleted)
        {
            var error = NbdError.None;
            try { op.GetAwaiter().GetResult(); }
            catch (Exception ex) { error = NbdErrors.FromException(ex, _log, req); }
            await ReplyAndReleaseAsync(req, error, flush: false, started);
            return true;
        }
        // Answered on completion; its slot is what the end of TransmitAsync waits on.
        _ = CompleteLaterAsync(req, op.AsTask(), started);
        return false;
    }

    private async Task CompleteLaterAsync(NbdRequest req, Task op, long started)
    {
        var error = NbdError.None;
        try { await op; }
        catch (Exception ex) { error = NbdErrors.FromException(ex, _log, req); }
        try { await ReplyAndReleaseAsync(req, error, flush: true, started); }
        catch (Exception ex) { _log.LogDebug("{Peer}: reply to {Command} not sent: {Reason}", _peer, req.Command, ex.Message); }
    }

    private async ValueTask ReplyAndReleaseAsync(NbdRequest req, NbdError error, bool flush, long started)
    {
        try
        {
            await LockAsync();
            try
            {
                WriteStatusReply(req, error);
                Record(req, error, req.Command == NbdCommand.Write ? req.Length : 0, started);
                if (flush) await _writer.FlushAsync();
            }
            finally { _writeLock.Release(); }
        }
        finally { _slots.Release(); }
    }

    private async ValueTask<bool> ReadAsync(NbdRequest req, long started)
    {
        int len = (int)req.Length;
        long off = (long)req.Offset;
        if (len == 0)
        {
            await ReplyAndReleaseAsync(req, NbdError.None, flush: false, started);
            return true;
        }
        int hdr = _structured ? StructuredReadHeader : NbdLimits.SimpleReplyHeaderSize;
        // A large copy should not run on a socket engine thread (inline completions): move the rest of
        // this batch to the thread pool, so several connections' bulk reads use every core.
        if (len >= LargeRead && !Thread.CurrentThread.IsThreadPoolThread) await Task.Yield();
        var error = NbdError.None;
        await LockAsync();
        try
        {
            // Fast path: read straight into the send buffer, no copy and no thread hop.
            var span = _writer.GetSpan(hdr + len);
            if (_device.TryRead(off, span.Slice(hdr, len)))
            {
                _writer.Advance(EncodeRead(span, req, len));
                Record(req, NbdError.None, len, started);
                _slots.Release();
                return true;
            }
        }
        catch (Exception ex)
        {
            error = NbdErrors.FromException(ex, _log, req);
        }
        finally { _writeLock.Release(); }
        if (error != NbdError.None)
        {
            await ReplyAndReleaseAsync(req, error, flush: false, started);
            return true;
        }

        var buffer = ArrayPool<byte>.Shared.Rent(len);
        ValueTask op;
        try { op = _device.ReadAsync(off, buffer.AsMemory(0, len), CancellationToken.None); }
        catch (Exception ex) { op = ValueTask.FromException(ex); }
        if (op.IsCompleted)
        {
            await FinishReadAsync(req, op.AsTask(), buffer, flush: false, started);
            return true;
        }
        _ = FinishReadAsync(req, op.AsTask(), buffer, flush: true, started);
        return false;
    }

    private async Task FinishReadAsync(NbdRequest req, Task op, byte[] buffer, bool flush, long started)
    {
        int len = (int)req.Length;
        try
        {
            var error = NbdError.None;
            try { await op; }
            catch (Exception ex) { error = NbdErrors.FromException(ex, _log, req); }
            if (error != NbdError.None)
            {
                await ReplyAndReleaseAsync(req, error, flush, started);
                return;
            }
            try
            {
                await LockAsync();
                try
                {
                    int hdr = _structured ? StructuredReadHeader : NbdLimits.SimpleReplyHeaderSize;
                    var span = _writer.GetSpan(hdr + len);
                    buffer.AsSpan(0, len).CopyTo(span[hdr..]);
                    _writer.Advance(EncodeRead(span, req, len));
                    Record(req, NbdError.None, len, started);
                    if (flush) await _writer.FlushAsync();
                }
                finally { _writeLock.Release(); }
            }
            finally { _slots.Release(); }
        }
        catch (Exception ex) when (flush)
        {
            _log.LogDebug("{Peer}: read reply not sent: {Reason}", _peer, ex.Message);
        }
        finally { ArrayPool<byte>.Shared.Return(buffer); }
    }

    /// <summary>Fills in the header in front of the data already at span[hdr..]; returns the bytes to send.
    /// With structured replies an all-zero read goes out as a hole chunk: zeros never cross the wire.</summary>
    private int EncodeRead(Span<byte> span, in NbdRequest req, int len)
    {
        if (!_structured)
        {
            ReplyCodec.WriteSimple(span, NbdError.None, req.Cookie);
            return NbdLimits.SimpleReplyHeaderSize + len;
        }
        if (!req.Flags.HasFlag(CommandFlags.Df) && span.Slice(StructuredReadHeader, len).IndexOfAnyExcept((byte)0) < 0)
        {
            ReplyCodec.WriteChunkHeader(span, ReplyFlags.Done, ReplyType.OffsetHole, req.Cookie, 12);
            BinaryPrimitives.WriteUInt64BigEndian(span[20..], req.Offset);
            BinaryPrimitives.WriteUInt32BigEndian(span[28..], (uint)len);
            return 32;
        }
        ReplyCodec.WriteChunkHeader(span, ReplyFlags.Done, ReplyType.OffsetData, req.Cookie, 8 + len);
        BinaryPrimitives.WriteUInt64BigEndian(span[20..], req.Offset);
        return StructuredReadHeader + len;
    }

    private async ValueTask<bool> BlockStatusAsync(NbdRequest req, long started)
    {
        IReadOnlyList<Extent> extents;
        try
        {
            int max = req.Flags.HasFlag(CommandFlags.ReqOne) ? 1 : _settings.MaxExtentsPerReply;
            extents = await _device.GetExtentsAsync((long)req.Offset, req.Length, max, CancellationToken.None);
        }
        catch (Exception ex)
        {
            await ReplyAndReleaseAsync(req, NbdErrors.FromException(ex, _log, req), flush: false, started);
            return true;
        }
        var clipped = Clip(extents, req.Length);
        try
        {
            await LockAsync();
            try
            {
                int bodyLen = 4 + 8 * clipped.Count;
                var span = _writer.GetSpan(NbdLimits.StructuredReplyHeaderSize + bodyLen);
                ReplyCodec.WriteChunkHeader(span, ReplyFlags.Done, ReplyType.BlockStatus, req.Cookie, bodyLen);
                BinaryPrimitives.WriteUInt32BigEndian(span[20..], BaseAllocationContextId);
                for (int i = 0; i < clipped.Count; i++)
                {
                    BinaryPrimitives.WriteUInt32BigEndian(span[(24 + 8 * i)..], (uint)clipped[i].Length);
                    BinaryPrimitives.WriteUInt32BigEndian(span[(28 + 8 * i)..], (uint)clipped[i].Flags);
                }
                _writer.Advance(NbdLimits.StructuredReplyHeaderSize + bodyLen);
                Record(req, NbdError.None, 0, started);
            }
            finally { _writeLock.Release(); }
        }
        finally { _slots.Release(); }
        return true;
    }

    /// <summary>Extents as the wire needs them: within the request, none empty, at least one
    /// (a device that reports nothing gets its range called data, which is always true).</summary>
    internal static List<Extent> Clip(IReadOnlyList<Extent> extents, uint requested)
    {
        var result = new List<Extent>(Math.Max(1, extents.Count));
        long remaining = requested;
        foreach (var e in extents)
        {
            if (remaining <= 0) break;
            if (e.Length <= 0) continue;
            long len = Math.Min(e.Length, remaining);
            result.Add(e with { Length = len });
            remaining -= len;
        }
        if (result.Count == 0) result.Add(new Extent(requested, ExtentFlags.Data));
        return result;
    }

    private void WriteStatusReply(in NbdRequest req, NbdError error)
    {
        if (!_structured)
        {
            ReplyCodec.WriteSimple(_writer.GetSpan(NbdLimits.SimpleReplyHeaderSize), error, req.Cookie);
            _writer.Advance(NbdLimits.SimpleReplyHeaderSize);
            return;
        }
        if (error == NbdError.None)
        {
            ReplyCodec.WriteChunkHeader(_writer.GetSpan(NbdLimits.StructuredReplyHeaderSize), ReplyFlags.Done, ReplyType.None, req.Cookie, 0);
            _writer.Advance(NbdLimits.StructuredReplyHeaderSize);
            return;
        }
        var span = _writer.GetSpan(NbdLimits.StructuredReplyHeaderSize + 6);
        ReplyCodec.WriteChunkHeader(span, ReplyFlags.Done, ReplyType.Error, req.Cookie, 6);
        BinaryPrimitives.WriteUInt32BigEndian(span[20..], (uint)error);
        BinaryPrimitives.WriteUInt16BigEndian(span[24..], 0);
        _writer.Advance(NbdLimits.StructuredReplyHeaderSize + 6);
    }

    /// <summary>Every reply point calls this once its reply is queued: one count per answered request.</summary>
    private void Record(in NbdRequest req, NbdError error, long bytes, long started) =>
        _metrics?.Completed(_export.Name, req.Command, error == NbdError.None, bytes, started);

    private ValueTask LockAsync() => _writeLock.Wait(0) ? ValueTask.CompletedTask : new ValueTask(_writeLock.WaitAsync());

    private async ValueTask FlushRepliesAsync()
    {
        await LockAsync();
        try { await _writer.FlushAsync(); }
        finally { _writeLock.Release(); }
    }
}
