using System.Buffers;
using System.Buffers.Binary;

namespace Reloc.Nbd.Protocol;

/// <summary>One transmission-phase request header (the WRITE payload follows it on the wire).</summary>
public readonly record struct NbdRequest(CommandFlags Flags, NbdCommand Command, ulong Cookie, ulong Offset, uint Length)
{
    public bool HasPayload => Command == NbdCommand.Write;
}

public enum ParseStatus
{
    /// <summary>Not enough bytes yet; nothing consumed.</summary>
    Incomplete,
    Ok,
    /// <summary>Framing error: the stream cannot be resynchronised, the connection must close.</summary>
    BadMagic,
}

/// <summary>Pure parsing and encoding of request headers over buffered bytes.</summary>
public static class RequestCodec
{
    public static ParseStatus TryParse(in ReadOnlySequence<byte> buffer, out NbdRequest request)
    {
        request = default;
        if (buffer.Length < NbdLimits.RequestHeaderSize) return ParseStatus.Incomplete;
        Span<byte> copy = stackalloc byte[NbdLimits.RequestHeaderSize];
        ReadOnlySpan<byte> h = buffer.FirstSpan.Length >= NbdLimits.RequestHeaderSize
            ? buffer.FirstSpan[..NbdLimits.RequestHeaderSize]
            : CopyTo(buffer, copy);
        if (BinaryPrimitives.ReadUInt32BigEndian(h) != NbdMagic.Request) return ParseStatus.BadMagic;
        request = new NbdRequest(
            (CommandFlags)BinaryPrimitives.ReadUInt16BigEndian(h[4..]),
            (NbdCommand)BinaryPrimitives.ReadUInt16BigEndian(h[6..]),
            BinaryPrimitives.ReadUInt64BigEndian(h[8..]),
            BinaryPrimitives.ReadUInt64BigEndian(h[16..]),
            BinaryPrimitives.ReadUInt32BigEndian(h[24..]));
        return ParseStatus.Ok;
    }

    public static void Write(Span<byte> dst, in NbdRequest r)
    {
        BinaryPrimitives.WriteUInt32BigEndian(dst, NbdMagic.Request);
        BinaryPrimitives.WriteUInt16BigEndian(dst[4..], (ushort)r.Flags);
        BinaryPrimitives.WriteUInt16BigEndian(dst[6..], (ushort)r.Command);
        BinaryPrimitives.WriteUInt64BigEndian(dst[8..], r.Cookie);
        BinaryPrimitives.WriteUInt64BigEndian(dst[16..], r.Offset);
        BinaryPrimitives.WriteUInt32BigEndian(dst[24..], r.Length);
    }

    internal static ReadOnlySpan<byte> CopyTo(in ReadOnlySequence<byte> buffer, Span<byte> dst)
    {
        buffer.Slice(0, dst.Length).CopyTo(dst);
        return dst;
    }
}
