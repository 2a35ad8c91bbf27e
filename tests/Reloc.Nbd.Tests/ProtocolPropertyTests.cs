using System.Buffers;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Reloc.Nbd.Protocol;
using Reloc.Nbd.Tests.Support;
using Reloc.Testing;
using Xunit;

namespace Reloc.Nbd.Tests;

/// <summary>The parsers are total: any byte stream yields a result, never an exception.</summary>
public sealed class ProtocolPropertyTests
{
    private static ReadOnlySequence<byte> Split(byte[] bytes, int cut)
    {
        // Two segments, so parsers are exercised across a segment boundary too.
        cut = bytes.Length == 0 ? 0 : Math.Abs(cut) % bytes.Length;
        var first = new Segment(bytes.AsMemory(0, cut));
        var last = first.Append(bytes.AsMemory(cut));
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> m) => Memory = m;
        public Segment Append(ReadOnlyMemory<byte> m)
        {
            var s = new Segment(m) { RunningIndex = RunningIndex + Memory.Length };
            Next = s;
            return s;
        }
    }

    [Property(MaxTest = 500)]
    public bool Request_parser_accepts_any_bytes(byte[] bytes, int cut)
    {
        var status = RequestCodec.TryParse(Split(bytes, cut), out _);
        return bytes.Length < 28 ? status == ParseStatus.Incomplete : status != ParseStatus.Incomplete;
    }

    [Property(MaxTest = 500)]
    public bool Request_round_trips(ushort flags, ushort command, ulong cookie, ulong offset, uint length, int cut)
    {
        var req = new NbdRequest((CommandFlags)flags, (NbdCommand)command, cookie, offset, length);
        var bytes = new byte[28];
        RequestCodec.Write(bytes, req);
        return RequestCodec.TryParse(Split(bytes, cut), out var back) == ParseStatus.Ok && back == req;
    }

    [Property(MaxTest = 500)]
    public void Option_parsers_accept_any_bytes(byte[] bytes, int cut)
    {
        var seq = Split(bytes, cut);
        OptionCodec.TryParseHeader(seq, out _);
        OptionCodec.ParseExportInfo(seq);
        OptionCodec.ParseMetaContext(seq);
    }

    [Property(MaxTest = 200)]
    public bool Export_info_round_trips(NonNull<string> name, ushort[] infos)
    {
        var n = new string(name.Get.Where(ch => ch != '\0' && !char.IsSurrogate(ch)).Take(100).ToArray());
        var body = RawClient.ExportInfoBody(n, infos.Select(i => (InfoType)i).ToArray());
        var parsed = OptionCodec.ParseExportInfo(new ReadOnlySequence<byte>(body));
        return parsed is not null && parsed.Name == n && parsed.Requests.SequenceEqual(infos.Select(i => (InfoType)i));
    }

    [Property(MaxTest = 500)]
    public void Reply_parsers_accept_any_bytes(byte[] bytes, int cut, bool withOffset)
    {
        var seq = Split(bytes, cut);
        var status = ReplyCodec.TryParseHeader(seq, out var header);
        if (status == ParseStatus.Ok) Assert.True(bytes.Length >= header.Size);
        ReplyCodec.TryParseDataOffset(seq, out _);
        ReplyCodec.TryParseHole(seq, out _, out _);
        ReplyCodec.TryParseError(seq, withOffset, out _);
        ReplyCodec.TryParseBlockStatus(seq, out _, out _);
        OptionCodec.TryParseReplyHeader(seq, out _);
        OptionCodec.TryParseInfoExport(seq, out _, out _);
        OptionCodec.TryParseInfoBlockSize(seq, out _);
        OptionCodec.TryParseMetaContextReply(seq, out _, out _);
    }

    [Property(MaxTest = 500)]
    public bool Simple_reply_round_trips(uint error, ulong cookie, int cut)
    {
        var bytes = new byte[16];
        ReplyCodec.WriteSimple(bytes, (NbdError)error, cookie);
        return ReplyCodec.TryParseHeader(Split(bytes, cut), out var h) == ParseStatus.Ok
               && h == new ReplyHeader(false, ReplyFlags.Done, ReplyType.None, cookie, (NbdError)error, 0) && h.Done;
    }

    [Property(MaxTest = 500)]
    public bool Chunk_header_round_trips(ushort flags, ushort type, ulong cookie, int length, int cut)
    {
        var bytes = new byte[20];
        ReplyCodec.WriteChunkHeader(bytes, (ReplyFlags)flags, (ReplyType)type, cookie, length);
        return ReplyCodec.TryParseHeader(Split(bytes, cut), out var h) == ParseStatus.Ok
               && h == new ReplyHeader(true, (ReplyFlags)flags, (ReplyType)type, cookie, NbdError.None, (uint)length)
               && h.Done == ((flags & 1) != 0) && h.IsErrorChunk == ((type & 0x8000) != 0);
    }

    [Property(MaxTest = 300)]
    public bool Error_chunk_round_trips(uint error, NonNull<string> message, ulong offset, bool withOffset, int cut)
    {
        var text = Clean(message.Get);
        var msg = System.Text.Encoding.UTF8.GetBytes(text);
        var body = new byte[6 + msg.Length + (withOffset ? 8 : 0)];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(body, error);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(body.AsSpan(4), (ushort)msg.Length);
        msg.CopyTo(body, 6);
        if (withOffset) System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(body.AsSpan(6 + msg.Length), offset);
        return ReplyCodec.TryParseError(Split(body, cut), withOffset, out var chunk)
               && chunk == new ErrorChunk((NbdError)error, text, withOffset ? offset : null)
               && !ReplyCodec.TryParseError(Split(body, cut), !withOffset, out _); // the wrong variant does not fit
    }

    [Property(MaxTest = 300)]
    public bool Block_status_round_trips(uint contextId, NonEmptyArray<(uint, uint)> extents, int cut)
    {
        var d = extents.Get;
        var body = new byte[4 + 8 * d.Length];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(body, contextId);
        for (int i = 0; i < d.Length; i++)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(4 + 8 * i), d[i].Item1);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(8 + 8 * i), d[i].Item2);
        }
        return ReplyCodec.TryParseBlockStatus(Split(body, cut), out var id, out var parsed)
               && id == contextId && parsed.SequenceEqual(d.Select(e => new BlockDescriptor(e.Item1, e.Item2)));
    }

    [Property(MaxTest = 200)]
    public bool Encoded_option_bodies_parse_back(NonNull<string> export, NonNull<string>[] queries, ushort[] infos)
    {
        var name = Clean(export.Get);
        var meta = new MetaContextRequest(name, queries.Select(q => Clean(q.Get)).ToList());
        var parsedMeta = OptionCodec.ParseMetaContext(new ReadOnlySequence<byte>(OptionCodec.EncodeMetaContext(meta)));
        var info = new ExportInfoRequest(name, infos.Select(i => (InfoType)i).ToList());
        var parsedInfo = OptionCodec.ParseExportInfo(new ReadOnlySequence<byte>(OptionCodec.EncodeExportInfo(info)));
        return parsedMeta is not null && parsedMeta.ExportName == name && parsedMeta.Queries.SequenceEqual(meta.Queries)
               && parsedInfo is not null && parsedInfo.Name == name && parsedInfo.Requests.SequenceEqual(info.Requests);
    }

    private static string Clean(string s) => new(s.Where(ch => ch != '\0' && !char.IsSurrogate(ch)).Take(100).ToArray());

    /// <summary>Random bytes thrown at a live server, before and after the handshake: every time the
    /// server survives and a well-behaved client still gets served.</summary>
    [Fact]
    public async Task Live_server_survives_random_streams()
    {
        await using var server = await TestServer.StartAsync(1 << 20);
        var gen = Gen.Choose(0, 600).SelectMany(n => Gen.ArrayOf(ArbMap.Default.GeneratorFor<byte>(), n));
        var samples = gen.Sample(60, 60);
        int i = 0;
        foreach (var junk in samples)
        {
            await using var c = await RawClient.ConnectAsync(server.Port);
            if (i++ % 2 == 0) await c.GreetAsync();
            else
            {
                await c.ReadAsync(18);
            }
            try { await c.WriteAsync(junk); } catch (IOException) { /* server hung up first: fine */ }
        }
        await using var good = await RawClient.OpenAsync(server.Port);
        await good.SendRequestAsync(NbdCommand.Read, 0, 512, 1);
        Assert.Equal(NbdError.None, (await good.ReadSimpleReplyAsync(512)).Error);
    }

    [Property(MaxTest = 40)]
    public void Random_requests_after_go_never_kill_the_server(byte[] junk)
    {
        RunAsync().GetAwaiter().GetResult();

        async Task RunAsync()
        {
            await using var server = await TestServer.StartAsync(1 << 16);
            await using (var c = await RawClient.OpenAsync(server.Port))
            {
                try { await c.WriteAsync(junk); } catch (IOException) { }
            }
            await using var good = await RawClient.OpenAsync(server.Port);
            await good.SendRequestAsync(NbdCommand.Read, 0, 512, 1);
            Assert.Equal(NbdError.None, (await good.ReadSimpleReplyAsync(512)).Error);
        }
    }
}
