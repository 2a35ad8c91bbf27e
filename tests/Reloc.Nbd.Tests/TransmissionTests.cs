using System.Buffers.Binary;
using Reloc.Nbd.Protocol;
using Reloc.Nbd.Tests.Support;
using Reloc.Testing;
using Xunit;

namespace Reloc.Nbd.Tests;

/// <summary>Transmission-phase requests on the wire: the right error for each bad request, with the
/// connection still usable afterwards, and correct framing of structured replies.</summary>
public sealed class TransmissionTests : IAsyncLifetime
{
    private const long Size = 1 << 20;
    private TestServer _server = null!;
    private readonly byte[] _initial = Tool.RandomBytes((int)Size, 1);

    public async Task InitializeAsync() => _server = await TestServer.StartAsync(Size, _initial, roContent: Tool.RandomBytes(8192, 2));
    public async Task DisposeAsync() => await _server.DisposeAsync();

    private async Task AssertUsableAsync(RawClient c)
    {
        await c.SendRequestAsync(NbdCommand.Read, 4096, 16, 999);
        var r = await c.ReadSimpleReplyAsync(16);
        Assert.Equal((NbdError.None, 999UL), (r.Error, r.Cookie));
    }

    [Fact]
    public async Task Read_beyond_the_end_is_einval_and_the_connection_goes_on()
    {
        await using var c = await RawClient.OpenAsync(_server.Port);
        await c.SendRequestAsync(NbdCommand.Read, Size - 10, 20, 1);
        Assert.Equal(NbdError.Inval, (await c.ReadSimpleReplyAsync()).Error);
        await c.SendRequestAsync(NbdCommand.Read, ulong.MaxValue - 5, 4096, 2); // offset+length overflows 64 bits
        Assert.Equal(NbdError.Inval, (await c.ReadSimpleReplyAsync()).Error);
        await AssertUsableAsync(c);
    }

    [Fact]
    public async Task Write_beyond_the_end_is_enospc_and_its_payload_is_drained()
    {
        await using var c = await RawClient.OpenAsync(_server.Port);
        var payload = Enumerable.Repeat((byte)0x5a, 8192).ToArray();
        await c.SendRequestAsync(NbdCommand.Write, Size - 4096, 8192, 1, payload: payload);
        Assert.Equal(NbdError.NoSpc, (await c.ReadSimpleReplyAsync()).Error);
        await AssertUsableAsync(c);
        Assert.Equal(_initial, File.ReadAllBytes(_server.ImagePath())); // nothing written
    }

    [Fact]
    public async Task Writes_to_a_read_only_export_are_eperm_and_drained()
    {
        await using var c = await RawClient.OpenAsync(_server.Port, "ro");
        Assert.True(c.Flags.HasFlag(TransmissionFlags.ReadOnly));
        await c.SendRequestAsync(NbdCommand.Write, 0, 4096, 1, payload: new byte[4096]);
        Assert.Equal(NbdError.Perm, (await c.ReadSimpleReplyAsync()).Error);
        await c.SendRequestAsync(NbdCommand.Trim, 0, 4096, 2);
        Assert.Equal(NbdError.Perm, (await c.ReadSimpleReplyAsync()).Error);
        await c.SendRequestAsync(NbdCommand.WriteZeroes, 0, 4096, 3);
        Assert.Equal(NbdError.Perm, (await c.ReadSimpleReplyAsync()).Error);
        await c.SendRequestAsync(NbdCommand.Read, 0, 16, 4);
        var r = await c.ReadSimpleReplyAsync(16);
        Assert.Equal(NbdError.None, r.Error);
        Assert.Equal(File.ReadAllBytes(_server.ImagePath("ro"))[..16], r.Data);
    }

    [Fact]
    public async Task Requests_over_the_size_limit_are_refused_and_big_payloads_drained()
    {
        await using var c = await RawClient.OpenAsync(_server.Port);
        await c.SendRequestAsync(NbdCommand.Read, 0, (32u << 20) + 1, 1);
        Assert.Equal(NbdError.Overflow, (await c.ReadSimpleReplyAsync()).Error);
        // A 40 MiB WRITE payload is drained as it streams in, never buffered whole.
        uint len = 40u << 20;
        var send = Task.Run(async () =>
        {
            await c.SendRequestAsync(NbdCommand.Write, 0, len, 2);
            var chunk = new byte[1 << 20];
            for (int i = 0; i < 40; i++) await c.WriteAsync(chunk);
        });
        Assert.Equal(NbdError.Inval, (await c.ReadSimpleReplyAsync()).Error);
        await send;
        await AssertUsableAsync(c);
    }

    [Fact]
    public async Task Unknown_commands_and_flags_are_einval()
    {
        await using var c = await RawClient.OpenAsync(_server.Port);
        await c.SendRequestAsync((NbdCommand)42, 0, 0, 1);
        Assert.Equal(NbdError.Inval, (await c.ReadSimpleReplyAsync()).Error);
        await c.SendRequestAsync(NbdCommand.Read, 0, 512, 2, CommandFlags.Df); // DF needs structured replies
        Assert.Equal(NbdError.Inval, (await c.ReadSimpleReplyAsync()).Error);
        await c.SendRequestAsync(NbdCommand.Flush, 0, 0, 3, (CommandFlags)0x4000);
        Assert.Equal(NbdError.Inval, (await c.ReadSimpleReplyAsync()).Error);
        await c.SendRequestAsync(NbdCommand.BlockStatus, 0, 512, 4); // no meta context negotiated
        Assert.Equal(NbdError.Inval, (await c.ReadSimpleReplyAsync()).Error);
        await AssertUsableAsync(c);
    }

    [Fact]
    public async Task Bad_request_magic_closes_the_connection_but_not_the_server()
    {
        await using (var c = await RawClient.OpenAsync(_server.Port))
        {
            var junk = new byte[28];
            junk[0] = 0xde;
            await c.WriteAsync(junk);
            Assert.True(await c.IsClosedByServerAsync());
        }
        await using var again = await RawClient.OpenAsync(_server.Port);
        await AssertUsableAsync(again);
    }

    [Fact]
    public async Task Many_pipelined_requests_all_get_their_own_reply()
    {
        await using var c = await RawClient.OpenAsync(_server.Port);
        const int n = 300; // more than the in-flight limit: the server must push back, not drop
        var batch = new List<byte>();
        for (int i = 0; i < n; i++)
        {
            var req = new byte[28];
            RequestCodec.Write(req, new NbdRequest(0, i % 10 == 0 ? NbdCommand.Flush : NbdCommand.Read, (ulong)i, (ulong)(i * 512), i % 10 == 0 ? 0u : 512u));
            batch.AddRange(req);
        }
        await c.WriteAsync(batch.ToArray());
        var seen = new HashSet<ulong>();
        for (int i = 0; i < n; i++)
        {
            var h = await c.ReadAsync(16);
            Assert.Equal(0u, BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(4)));
            ulong cookie = BinaryPrimitives.ReadUInt64BigEndian(h.AsSpan(8));
            if (cookie % 10 != 0)
                Assert.Equal(_initial.AsSpan((int)cookie * 512, 512).ToArray(), await c.ReadAsync(512));
            Assert.True(seen.Add(cookie));
        }
        Assert.Equal(n, seen.Count);
    }

    [Fact]
    public async Task Structured_reads_send_data_chunks_and_holes_for_zeros()
    {
        await using var c = await RawClient.OpenAsync(_server.Port, structured: true);
        Assert.True(c.Flags.HasFlag(TransmissionFlags.SendDf));
        await c.SendRequestAsync(NbdCommand.Read, 100, 1000, 1);
        var data = await c.ReadChunkAsync();
        Assert.Equal((ReplyFlags.Done, ReplyType.OffsetData, 1UL), (data.Flags, data.Type, data.Cookie));
        Assert.Equal(100UL, BinaryPrimitives.ReadUInt64BigEndian(data.Body));
        Assert.Equal(_initial.AsSpan(100, 1000).ToArray(), data.Body[8..]);

        await c.SendRequestAsync(NbdCommand.WriteZeroes, 65536, 65536, 2);
        Assert.Equal(ReplyType.None, (await c.ReadChunkAsync()).Type);
        await c.SendRequestAsync(NbdCommand.Read, 65536, 65536, 3);
        var hole = await c.ReadChunkAsync();
        Assert.Equal((ReplyFlags.Done, ReplyType.OffsetHole), (hole.Flags, hole.Type));
        Assert.Equal(65536u, BinaryPrimitives.ReadUInt32BigEndian(hole.Body.AsSpan(8)));
        // With DF the zeros come as one data chunk.
        await c.SendRequestAsync(NbdCommand.Read, 65536, 4096, 4, CommandFlags.Df);
        var df = await c.ReadChunkAsync();
        Assert.Equal(ReplyType.OffsetData, df.Type);
        Assert.All(df.Body[8..], b => Assert.Equal(0, b));

        await c.SendRequestAsync(NbdCommand.Read, Size, 1, 5);
        var err = await c.ReadChunkAsync();
        Assert.Equal((ReplyFlags.Done, ReplyType.Error), (err.Flags, err.Type));
        Assert.Equal((uint)NbdError.Inval, BinaryPrimitives.ReadUInt32BigEndian(err.Body));
    }

    [Fact]
    public async Task Block_status_describes_holes_and_data_and_honours_req_one()
    {
        await using var c = await RawClient.OpenAsync(_server.Port, structured: true, blockStatus: true);
        await c.SendRequestAsync(NbdCommand.Trim, 0, 256 * 1024, 1);
        Assert.Equal(ReplyType.None, (await c.ReadChunkAsync()).Type);
        await c.SendRequestAsync(NbdCommand.BlockStatus, 0, (uint)Size, 2);
        var bs = await c.ReadChunkAsync();
        Assert.Equal((ReplyFlags.Done, ReplyType.BlockStatus), (bs.Flags, bs.Type));
        var extents = new List<(uint Len, uint Flags)>();
        for (int i = 4; i < bs.Body.Length; i += 8)
            extents.Add((BinaryPrimitives.ReadUInt32BigEndian(bs.Body.AsSpan(i)), BinaryPrimitives.ReadUInt32BigEndian(bs.Body.AsSpan(i + 4))));
        Assert.Equal((256u * 1024, 3u), extents[0]);
        Assert.Equal((uint)Size, (uint)extents.Sum(e => e.Len));
        Assert.Equal(0u, extents[1].Flags);

        await c.SendRequestAsync(NbdCommand.BlockStatus, 4096, 8192, 3, CommandFlags.ReqOne);
        var one = await c.ReadChunkAsync();
        Assert.Equal(12, one.Body.Length);
        Assert.Equal(8192u, BinaryPrimitives.ReadUInt32BigEndian(one.Body.AsSpan(4)));

        await c.SendRequestAsync(NbdCommand.BlockStatus, 0, 0, 4);
        Assert.Equal(ReplyType.Error, (await c.ReadChunkAsync()).Type);
    }

    [Fact]
    public async Task Disconnect_waits_for_in_flight_writes_to_complete()
    {
        await using var c = await RawClient.OpenAsync(_server.Port);
        var payload = Tool.RandomBytes(65536, 3);
        await c.SendRequestAsync(NbdCommand.Write, 0, 65536, 1, CommandFlags.Fua, payload);
        await c.SendRequestAsync(NbdCommand.Disc, 0, 0, 2);
        Assert.Equal(NbdError.None, (await c.ReadSimpleReplyAsync()).Error);
        Assert.True(await c.IsClosedByServerAsync());
        Assert.Equal(payload, File.ReadAllBytes(_server.ImagePath())[..65536]);
    }
}
