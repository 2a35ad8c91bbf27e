using System.Buffers.Binary;

namespace Reloc.Nbd.Protocol;

/// <summary>Encoding of transmission-phase replies.</summary>
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
}
