using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace Reloc.Nbd.Protocol;

public readonly record struct OptionHeader(uint Option, uint Length);

/// <summary>Body of NBD_OPT_INFO / NBD_OPT_GO.</summary>
public sealed record ExportInfoRequest(string Name, IReadOnlyList<InfoType> Requests);

/// <summary>Body of NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT.</summary>
public sealed record MetaContextRequest(string ExportName, IReadOnlyList<string> Queries);

/// <summary>Pure parsing of handshake-phase messages. Body parsers return null for a malformed body
/// (the server answers NBD_REP_ERR_INVALID and the connection goes on).</summary>
public static class OptionCodec
{
    private static readonly UTF8Encoding StrictUtf8 = new(false, true);

    public static ParseStatus TryParseHeader(in ReadOnlySequence<byte> buffer, out OptionHeader header)
    {
        header = default;
        if (buffer.Length < NbdLimits.OptionHeaderSize) return ParseStatus.Incomplete;
        Span<byte> h = stackalloc byte[NbdLimits.OptionHeaderSize];
        buffer.Slice(0, NbdLimits.OptionHeaderSize).CopyTo(h);
        if (BinaryPrimitives.ReadUInt64BigEndian(h) != NbdMagic.IHaveOpt) return ParseStatus.BadMagic;
        header = new OptionHeader(BinaryPrimitives.ReadUInt32BigEndian(h[8..]), BinaryPrimitives.ReadUInt32BigEndian(h[12..]));
        return ParseStatus.Ok;
    }

    public static ExportInfoRequest? ParseExportInfo(ReadOnlySequence<byte> body)
    {
        var r = new SequenceReader<byte>(body);
        if (!ReadString(ref r, out var name)) return null;
        if (!r.TryReadBigEndian(out short count)) return null;
        var requests = new List<InfoType>();
        for (int i = 0; i < (ushort)count; i++)
        {
            if (!r.TryReadBigEndian(out short info)) return null;
            requests.Add((InfoType)(ushort)info);
        }
        return r.End ? new ExportInfoRequest(name, requests) : null;
    }

    public static MetaContextRequest? ParseMetaContext(ReadOnlySequence<byte> body)
    {
        var r = new SequenceReader<byte>(body);
        if (!ReadString(ref r, out var name)) return null;
        if (!r.TryReadBigEndian(out int count)) return null;
        // Each query takes at least 4 bytes: a count larger than the body allows is a lie.
        if ((uint)count > r.Remaining / 4) return null;
        var queries = new List<string>(count);
        for (int i = 0; i < count; i++)
        {
            if (!ReadString(ref r, out var q)) return null;
            queries.Add(q);
        }
        return r.End ? new MetaContextRequest(name, queries) : null;
    }

    /// <summary>Reads a u32-length-prefixed string; false if truncated, too long, not UTF-8, or containing NUL.</summary>
    private static bool ReadString(ref SequenceReader<byte> r, out string value)
    {
        value = "";
        if (!r.TryReadBigEndian(out int len) || len < 0 || len > NbdLimits.MaxString || r.Remaining < len) return false;
        var bytes = r.UnreadSequence.Slice(0, len);
        r.Advance(len);
        return TryDecode(bytes, out value);
    }

    public static bool TryDecode(in ReadOnlySequence<byte> bytes, out string value)
    {
        value = "";
        if (bytes.Length > NbdLimits.MaxString) return false;
        try
        {
            value = StrictUtf8.GetString(bytes.ToArray());
        }
        catch (DecoderFallbackException)
        {
            return false;
        }
        return !value.Contains('\0');
    }

    public static int WriteReplyHeader(Span<byte> dst, uint option, OptionReplyType type, int length)
    {
        BinaryPrimitives.WriteUInt64BigEndian(dst, NbdMagic.OptionReply);
        BinaryPrimitives.WriteUInt32BigEndian(dst[8..], option);
        BinaryPrimitives.WriteUInt32BigEndian(dst[12..], (uint)type);
        BinaryPrimitives.WriteUInt32BigEndian(dst[16..], (uint)length);
        return NbdLimits.OptionReplyHeaderSize;
    }
}
