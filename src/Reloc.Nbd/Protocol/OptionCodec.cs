using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace Reloc.Nbd.Protocol;

public readonly record struct OptionHeader(uint Option, uint Length);

/// <summary>Header of a server's option reply; <see cref="Length"/> bytes of data follow it.</summary>
public readonly record struct OptionReplyHeader(uint Option, OptionReplyType Type, uint Length)
{
    public bool IsError => ((uint)Type & 0x8000_0000) != 0;
}

/// <summary>NBD_INFO_BLOCK_SIZE: the request sizes the server accepts.</summary>
public readonly record struct BlockSizeInfo(uint Minimum, uint Preferred, uint Maximum);

/// <summary>Body of NBD_OPT_INFO / NBD_OPT_GO.</summary>
public sealed record ExportInfoRequest(string Name, IReadOnlyList<InfoType> Requests);

/// <summary>Body of NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT.</summary>
public sealed record MetaContextRequest(string ExportName, IReadOnlyList<string> Queries);

/// <summary>Pure parsing and encoding of handshake-phase messages, for both ends. Request body parsers
/// return null for a malformed body (the server answers NBD_REP_ERR_INVALID and the connection goes on).</summary>
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

    // ---- client side ----

    public static int WriteOptionHeader(Span<byte> dst, NbdOption option, int length)
    {
        BinaryPrimitives.WriteUInt64BigEndian(dst, NbdMagic.IHaveOpt);
        BinaryPrimitives.WriteUInt32BigEndian(dst[8..], (uint)option);
        BinaryPrimitives.WriteUInt32BigEndian(dst[12..], (uint)length);
        return NbdLimits.OptionHeaderSize;
    }

    /// <summary>Body of NBD_OPT_INFO / NBD_OPT_GO (the inverse of <see cref="ParseExportInfo"/>).</summary>
    public static byte[] EncodeExportInfo(ExportInfoRequest request)
    {
        var name = Encoding.UTF8.GetBytes(request.Name);
        var body = new byte[4 + name.Length + 2 + 2 * request.Requests.Count];
        BinaryPrimitives.WriteUInt32BigEndian(body, (uint)name.Length);
        name.CopyTo(body, 4);
        BinaryPrimitives.WriteUInt16BigEndian(body.AsSpan(4 + name.Length), (ushort)request.Requests.Count);
        for (int i = 0; i < request.Requests.Count; i++)
            BinaryPrimitives.WriteUInt16BigEndian(body.AsSpan(6 + name.Length + 2 * i), (ushort)request.Requests[i]);
        return body;
    }

    /// <summary>Body of NBD_OPT_LIST/SET_META_CONTEXT (the inverse of <see cref="ParseMetaContext"/>).</summary>
    public static byte[] EncodeMetaContext(MetaContextRequest request)
    {
        var name = Encoding.UTF8.GetBytes(request.ExportName);
        var queries = request.Queries.Select(Encoding.UTF8.GetBytes).ToList();
        var body = new byte[8 + name.Length + queries.Sum(q => 4 + q.Length)];
        BinaryPrimitives.WriteUInt32BigEndian(body, (uint)name.Length);
        name.CopyTo(body, 4);
        int at = 4 + name.Length;
        BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(at), (uint)queries.Count);
        at += 4;
        foreach (var q in queries)
        {
            BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(at), (uint)q.Length);
            q.CopyTo(body, at + 4);
            at += 4 + q.Length;
        }
        return body;
    }

    public static ParseStatus TryParseReplyHeader(in ReadOnlySequence<byte> buffer, out OptionReplyHeader header)
    {
        header = default;
        if (buffer.Length < NbdLimits.OptionReplyHeaderSize) return ParseStatus.Incomplete;
        Span<byte> h = stackalloc byte[NbdLimits.OptionReplyHeaderSize];
        buffer.Slice(0, NbdLimits.OptionReplyHeaderSize).CopyTo(h);
        if (BinaryPrimitives.ReadUInt64BigEndian(h) != NbdMagic.OptionReply) return ParseStatus.BadMagic;
        header = new OptionReplyHeader(BinaryPrimitives.ReadUInt32BigEndian(h[8..]),
            (OptionReplyType)BinaryPrimitives.ReadUInt32BigEndian(h[12..]), BinaryPrimitives.ReadUInt32BigEndian(h[16..]));
        return ParseStatus.Ok;
    }

    /// <summary>The info type that starts an NBD_REP_INFO body; false if the body is shorter than 2 bytes.</summary>
    public static bool TryParseInfoType(in ReadOnlySequence<byte> data, out InfoType type)
    {
        var r = new SequenceReader<byte>(data);
        var ok = r.TryReadBigEndian(out short t);
        type = (InfoType)(ushort)t;
        return ok;
    }

    /// <summary>NBD_INFO_EXPORT: u16 type, u64 size, u16 transmission flags.</summary>
    public static bool TryParseInfoExport(in ReadOnlySequence<byte> data, out ulong size, out TransmissionFlags flags)
    {
        size = 0;
        flags = TransmissionFlags.None;
        if (data.Length != 12) return false;
        var r = new SequenceReader<byte>(data);
        r.Advance(2);
        r.TryReadBigEndian(out long s);
        r.TryReadBigEndian(out short f);
        (size, flags) = ((ulong)s, (TransmissionFlags)(ushort)f);
        return true;
    }

    /// <summary>NBD_INFO_BLOCK_SIZE: u16 type, then minimum, preferred and maximum as u32.</summary>
    public static bool TryParseInfoBlockSize(in ReadOnlySequence<byte> data, out BlockSizeInfo info)
    {
        info = default;
        if (data.Length != 14) return false;
        var r = new SequenceReader<byte>(data);
        r.Advance(2);
        r.TryReadBigEndian(out int min);
        r.TryReadBigEndian(out int preferred);
        r.TryReadBigEndian(out int max);
        info = new BlockSizeInfo((uint)min, (uint)preferred, (uint)max);
        return true;
    }

    /// <summary>NBD_REP_META_CONTEXT: u32 context id, then the context name filling the rest.</summary>
    public static bool TryParseMetaContextReply(in ReadOnlySequence<byte> data, out uint id, out string name)
    {
        id = 0;
        name = "";
        var r = new SequenceReader<byte>(data);
        if (!r.TryReadBigEndian(out int i)) return false;
        id = (uint)i;
        return TryDecode(r.UnreadSequence, out name);
    }
}
