using System.Buffers;
using System.Buffers.Binary;

namespace Reloc.Nbd.Protocol;

/// <summary>Header of one transmission-phase reply: a simple reply (16 bytes) or a structured chunk (20 bytes).</summary>
public readonly record struct ReplyHeader(bool Structured, ReplyFlags Flags, ReplyType Type, ulong Cookie, NbdError Error, uint Length)
{
    public int Size => Structured ? NbdLimits.StructuredReplyHeaderSize : NbdLimits.SimpleReplyHeaderSize;

    /// <summary>Last message of the reply: every simple reply, a chunk only with the DONE flag.</summary>
    public bool Done => !Structured || Flags.HasFlag(ReplyFlags.Done);

    /// <summary>Error chunks are recognisable by bit 15 even when their type is unknown to us.</summary>
    public bool IsErrorChunk => Structured && ((ushort)Type & 0x8000) != 0;
}

/// <summary>Body of NBD_REPLY_TYPE_ERROR / NBD_REPLY_TYPE_ERROR_OFFSET.</summary>
public readonly record struct ErrorChunk(NbdError Error, string Message, ulong? Offset);

/// <summary>One entry of an NBD_REPLY_TYPE_BLOCK_STATUS body.</summary>
public readonly record struct BlockDescriptor(uint Length, uint Flags);

/// <summary>Encoding (server side) and pure parsing (client side) of transmission-phase replies.</summary>
public static class ReplyCodec
{
    public static void WriteSimple(Span<byte> dst, NbdError error, ulong cookie)
    {
        BinaryPrimitives.WriteUInt32BigEndian(dst, NbdMagic.SimpleReply);
        BinaryPrimitives.WriteUInt32BigEndian(dst[4..], (uint)error);
        BinaryPrimitives.WriteUInt64BigEndian(dst[8..], cookie);
    }

    public static void WriteChunkHeader(Span<byte> dst, ReplyFlags flags, ReplyType type, ulong cookie, int length)
    {
        BinaryPrimitives.WriteUInt32BigEndian(dst, NbdMagic.StructuredReply);
        BinaryPrimitives.WriteUInt16BigEndian(dst[4..], (ushort)flags);
        BinaryPrimitives.WriteUInt16BigEndian(dst[6..], (ushort)type);
        BinaryPrimitives.WriteUInt64BigEndian(dst[8..], cookie);
        BinaryPrimitives.WriteUInt32BigEndian(dst[16..], (uint)length);
    }

    /// <summary>Parses the reply header at the start of <paramref name="buffer"/> (its body is not consumed).</summary>
    public static ParseStatus TryParseHeader(in ReadOnlySequence<byte> buffer, out ReplyHeader header)
    {
        header = default;
        if (buffer.Length < 4) return ParseStatus.Incomplete;
        Span<byte> h = stackalloc byte[NbdLimits.StructuredReplyHeaderSize];
        buffer.Slice(0, 4).CopyTo(h);
        uint magic = BinaryPrimitives.ReadUInt32BigEndian(h);
        if (magic == NbdMagic.SimpleReply)
        {
            if (buffer.Length < NbdLimits.SimpleReplyHeaderSize) return ParseStatus.Incomplete;
            buffer.Slice(0, NbdLimits.SimpleReplyHeaderSize).CopyTo(h);
            header = new ReplyHeader(false, ReplyFlags.Done, ReplyType.None, BinaryPrimitives.ReadUInt64BigEndian(h[8..]),
                (NbdError)BinaryPrimitives.ReadUInt32BigEndian(h[4..]), 0);
            return ParseStatus.Ok;
        }
        if (magic != NbdMagic.StructuredReply) return ParseStatus.BadMagic;
        if (buffer.Length < NbdLimits.StructuredReplyHeaderSize) return ParseStatus.Incomplete;
        buffer.Slice(0, NbdLimits.StructuredReplyHeaderSize).CopyTo(h);
        header = new ReplyHeader(true, (ReplyFlags)BinaryPrimitives.ReadUInt16BigEndian(h[4..]),
            (ReplyType)BinaryPrimitives.ReadUInt16BigEndian(h[6..]), BinaryPrimitives.ReadUInt64BigEndian(h[8..]),
            NbdError.None, BinaryPrimitives.ReadUInt32BigEndian(h[16..]));
        return ParseStatus.Ok;
    }

    /// <summary>Reads the u64 offset that starts an OFFSET_DATA body; false if fewer than 8 bytes.</summary>
    public static bool TryParseDataOffset(in ReadOnlySequence<byte> body, out ulong offset)
    {
        var r = new SequenceReader<byte>(body);
        var ok = r.TryReadBigEndian(out long o);
        offset = (ulong)o;
        return ok;
    }

    /// <summary>OFFSET_HOLE body: exactly u64 offset + u32 length.</summary>
    public static bool TryParseHole(in ReadOnlySequence<byte> body, out ulong offset, out uint length)
    {
        offset = 0;
        length = 0;
        if (body.Length != 12) return false;
        var r = new SequenceReader<byte>(body);
        r.TryReadBigEndian(out long o);
        r.TryReadBigEndian(out int l);
        (offset, length) = ((ulong)o, (uint)l);
        return true;
    }

    /// <summary>ERROR body (u32 error, u16 message length, message) and, for ERROR_OFFSET, a trailing u64 offset.
    /// A message that is not valid UTF-8 is kept as empty rather than failing the whole reply.</summary>
    public static bool TryParseError(in ReadOnlySequence<byte> body, bool withOffset, out ErrorChunk chunk)
    {
        chunk = default;
        var r = new SequenceReader<byte>(body);
        if (!r.TryReadBigEndian(out int error) || !r.TryReadBigEndian(out short msgLen)) return false;
        int len = (ushort)msgLen;
        if (r.Remaining != len + (withOffset ? 8 : 0)) return false;
        OptionCodec.TryDecode(r.UnreadSequence.Slice(0, len), out var message);
        r.Advance(len);
        ulong? offset = null;
        if (withOffset)
        {
            r.TryReadBigEndian(out long o);
            offset = (ulong)o;
        }
        chunk = new ErrorChunk((NbdError)(uint)error, message, offset);
        return true;
    }

    /// <summary>BLOCK_STATUS body: u32 context id, then (u32 length, u32 flags) descriptors, at least one.</summary>
    public static bool TryParseBlockStatus(in ReadOnlySequence<byte> body, out uint contextId, out BlockDescriptor[] descriptors)
    {
        contextId = 0;
        descriptors = [];
        if (body.Length < 12 || (body.Length - 4) % 8 != 0) return false;
        var r = new SequenceReader<byte>(body);
        r.TryReadBigEndian(out int id);
        contextId = (uint)id;
        descriptors = new BlockDescriptor[(body.Length - 4) / 8];
        for (int i = 0; i < descriptors.Length; i++)
        {
            r.TryReadBigEndian(out int len);
            r.TryReadBigEndian(out int flags);
            descriptors[i] = new BlockDescriptor((uint)len, (uint)flags);
        }
        return true;
    }
}
