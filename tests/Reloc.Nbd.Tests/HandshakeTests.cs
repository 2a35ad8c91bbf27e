using System.Buffers.Binary;
using System.Text;
using Reloc.Nbd.Protocol;
using Reloc.Nbd.Tests.Support;
using Reloc.Testing;
using Xunit;

namespace Reloc.Nbd.Tests;

/// <summary>Handshake-phase behaviour on the wire, including every way a client can get it wrong.</summary>
public sealed class HandshakeTests : IAsyncLifetime
{
    private TestServer _server = null!;

    public async Task InitializeAsync() => _server = await TestServer.StartAsync(1 << 20, roContent: new byte[8192]);
    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task Greeting_offers_fixed_newstyle_and_no_zeroes()
    {
        await using var c = await RawClient.ConnectAsync(_server.Port);
        var flags = (HandshakeFlags)await c.GreetAsync();
        Assert.Equal(HandshakeFlags.FixedNewstyle | HandshakeFlags.NoZeroes, flags);
    }

    [Fact]
    public async Task Unknown_option_gets_err_unsup_and_the_handshake_goes_on()
    {
        await using var c = await RawClient.ConnectAsync(_server.Port);
        await c.GreetAsync();
        await c.SendOptionAsync(0x4242u, [1, 2, 3]);
        var r = await c.ReadOptionReplyAsync();
        Assert.Equal((0x4242u, OptionReplyType.ErrUnsup), (r.Option, r.Type));
        await c.SendOptionAsync(NbdOption.StartTls, []); // TLS is off here: refused by policy (the spec's NOTLS mode)
        Assert.Equal(OptionReplyType.ErrPolicy, (await c.ReadOptionReplyAsync()).Type);
        await c.SendOptionAsync(NbdOption.List, []);
        Assert.Equal(OptionReplyType.Server, (await c.ReadOptionReplyAsync()).Type);
    }

    [Fact]
    public async Task List_names_every_export_then_acks()
    {
        await using var c = await RawClient.ConnectAsync(_server.Port);
        await c.GreetAsync();
        await c.SendOptionAsync(NbdOption.List, []);
        var names = new List<string>();
        while (true)
        {
            var r = await c.ReadOptionReplyAsync();
            if (r.Type == OptionReplyType.Ack) break;
            Assert.Equal(OptionReplyType.Server, r.Type);
            int len = (int)BinaryPrimitives.ReadUInt32BigEndian(r.Data);
            names.Add(Encoding.UTF8.GetString(r.Data, 4, len));
        }
        Assert.Equal(["disk", "ro"], names);
    }

    [Fact]
    public async Task List_with_a_payload_is_invalid()
    {
        await using var c = await RawClient.ConnectAsync(_server.Port);
        await c.GreetAsync();
        await c.SendOptionAsync(NbdOption.List, [0]);
        Assert.Equal(OptionReplyType.ErrInvalid, (await c.ReadOptionReplyAsync()).Type);
    }

    [Fact]
    public async Task Info_reports_size_flags_block_size_name_and_description()
    {
        await using var c = await RawClient.ConnectAsync(_server.Port);
        await c.GreetAsync();
        await c.SendOptionAsync(NbdOption.Info, RawClient.ExportInfoBody("ro", InfoType.Name, InfoType.Description, InfoType.BlockSize));
        var infos = new Dictionary<InfoType, byte[]>();
        while (true)
        {
            var r = await c.ReadOptionReplyAsync();
            if (r.Type == OptionReplyType.Ack) break;
            Assert.Equal(OptionReplyType.Info, r.Type);
            infos[(InfoType)BinaryPrimitives.ReadUInt16BigEndian(r.Data)] = r.Data[2..];
        }
        Assert.Equal(8192UL, BinaryPrimitives.ReadUInt64BigEndian(infos[InfoType.Export]));
        var flags = (TransmissionFlags)BinaryPrimitives.ReadUInt16BigEndian(infos[InfoType.Export].AsSpan(8));
        Assert.True(flags.HasFlag(TransmissionFlags.ReadOnly));
        Assert.False(flags.HasFlag(TransmissionFlags.SendTrim), "a read-only export must not offer TRIM");
        Assert.Equal("ro", Encoding.UTF8.GetString(infos[InfoType.Name]));
        var bs = infos[InfoType.BlockSize];
        Assert.Equal((1u, 4096u, 32u << 20),
            (BinaryPrimitives.ReadUInt32BigEndian(bs), BinaryPrimitives.ReadUInt32BigEndian(bs.AsSpan(4)), BinaryPrimitives.ReadUInt32BigEndian(bs.AsSpan(8))));
        // INFO does not end the handshake: GO still works on the same connection.
        await c.SendOptionAsync(NbdOption.Go, RawClient.ExportInfoBody("disk"));
        Assert.Equal(OptionReplyType.Info, (await c.ReadOptionReplyAsync()).Type);
    }

    [Fact]
    public async Task Go_to_an_unknown_export_is_an_error_reply_not_a_dropped_socket()
    {
        await using var c = await RawClient.ConnectAsync(_server.Port);
        await c.GreetAsync();
        await c.SendOptionAsync(NbdOption.Go, RawClient.ExportInfoBody("nope"));
        var r = await c.ReadOptionReplyAsync();
        Assert.Equal(OptionReplyType.ErrUnknown, r.Type);
        Assert.Contains("nope", Encoding.UTF8.GetString(r.Data));
        await c.SendOptionAsync(NbdOption.Go, RawClient.ExportInfoBody("disk"));
        Assert.Equal(OptionReplyType.Info, (await c.ReadOptionReplyAsync()).Type);
    }

    [Theory]
    [InlineData(new byte[] { 0, 0, 0, 9, (byte)'d' })]              // name longer than the body
    [InlineData(new byte[] { 0, 0, 0, 0, 0, 2, 0, 1 })]             // two info requests promised, one sent
    [InlineData(new byte[] { 0, 0, 0, 1, 0xff, 0, 0 })]              // name is not UTF-8
    [InlineData(new byte[] { 0, 0, 0, 0, 0, 0, 9 })]                  // trailing garbage
    public async Task Malformed_go_payload_is_invalid(byte[] body)
    {
        await using var c = await RawClient.ConnectAsync(_server.Port);
        await c.GreetAsync();
        await c.SendOptionAsync(NbdOption.Go, body);
        Assert.Equal(OptionReplyType.ErrInvalid, (await c.ReadOptionReplyAsync()).Type);
    }

    [Fact]
    public async Task Export_name_of_an_unknown_export_closes_the_connection()
    {
        await using var c = await RawClient.ConnectAsync(_server.Port);
        await c.GreetAsync();
        await c.SendOptionAsync(NbdOption.ExportName, Encoding.UTF8.GetBytes("nope"));
        Assert.True(await c.IsClosedByServerAsync());
    }

    [Fact]
    public async Task Export_name_enters_transmission_without_zero_padding()
    {
        await using var c = await RawClient.ConnectAsync(_server.Port);
        await c.GreetAsync();
        await c.SendOptionAsync(NbdOption.ExportName, Encoding.UTF8.GetBytes("disk"));
        var reply = await c.ReadAsync(10);
        Assert.Equal(1UL << 20, BinaryPrimitives.ReadUInt64BigEndian(reply));
        await c.SendRequestAsync(NbdCommand.Read, 0, 512, 7);
        var r = await c.ReadSimpleReplyAsync(512);
        Assert.Equal((NbdError.None, 7UL), (r.Error, r.Cookie));
    }

    [Fact]
    public async Task Abort_is_acknowledged_and_closes()
    {
        await using var c = await RawClient.ConnectAsync(_server.Port);
        await c.GreetAsync();
        await c.SendOptionAsync(NbdOption.Abort, []);
        Assert.Equal(OptionReplyType.Ack, (await c.ReadOptionReplyAsync()).Type);
        Assert.True(await c.IsClosedByServerAsync());
    }

    [Fact]
    public async Task Meta_contexts_list_and_set_base_allocation()
    {
        await using var c = await RawClient.ConnectAsync(_server.Port);
        await c.GreetAsync();
        await c.SendOptionAsync(NbdOption.SetMetaContext, RawClient.MetaContextBody("disk", NbdLimits.BaseAllocation));
        Assert.Equal(OptionReplyType.ErrInvalid, (await c.ReadOptionReplyAsync()).Type); // structured replies first
        await c.SendOptionAsync(NbdOption.ListMetaContext, RawClient.MetaContextBody("disk"));
        var listed = await c.ReadOptionReplyAsync();
        Assert.Equal(OptionReplyType.MetaContext, listed.Type);
        Assert.Equal(NbdLimits.BaseAllocation, Encoding.UTF8.GetString(listed.Data, 4, listed.Data.Length - 4));
        Assert.Equal(OptionReplyType.Ack, (await c.ReadOptionReplyAsync()).Type);
        await c.SendOptionAsync(NbdOption.StructuredReply, []);
        Assert.Equal(OptionReplyType.Ack, (await c.ReadOptionReplyAsync()).Type);
        await c.SendOptionAsync(NbdOption.SetMetaContext, RawClient.MetaContextBody("disk", "qemu:dirty-bitmap:x", NbdLimits.BaseAllocation));
        var set = await c.ReadOptionReplyAsync();
        Assert.Equal(OptionReplyType.MetaContext, set.Type);
        Assert.NotEqual(0u, BinaryPrimitives.ReadUInt32BigEndian(set.Data));
        Assert.Equal(OptionReplyType.Ack, (await c.ReadOptionReplyAsync()).Type);
        await c.SendOptionAsync(NbdOption.SetMetaContext, RawClient.MetaContextBody("nope", NbdLimits.BaseAllocation));
        Assert.Equal(OptionReplyType.ErrUnknown, (await c.ReadOptionReplyAsync()).Type);
        await c.SendOptionAsync(NbdOption.SetMetaContext, [0, 0, 0, 4, 0x64, 0x69, 0x73, 0x6b, 0x7f, 0xff, 0xff, 0xff]);
        Assert.Equal(OptionReplyType.ErrInvalid, (await c.ReadOptionReplyAsync()).Type); // count beyond the body
    }

    [Fact]
    public async Task Structured_reply_twice_or_with_payload_is_invalid()
    {
        await using var c = await RawClient.ConnectAsync(_server.Port);
        await c.GreetAsync();
        await c.SendOptionAsync(NbdOption.StructuredReply, [1]);
        Assert.Equal(OptionReplyType.ErrInvalid, (await c.ReadOptionReplyAsync()).Type);
        await c.SendOptionAsync(NbdOption.StructuredReply, []);
        Assert.Equal(OptionReplyType.Ack, (await c.ReadOptionReplyAsync()).Type);
        await c.SendOptionAsync(NbdOption.StructuredReply, []);
        Assert.Equal(OptionReplyType.ErrInvalid, (await c.ReadOptionReplyAsync()).Type);
    }

    [Fact]
    public async Task Oversized_option_is_skipped_and_refused_with_too_big()
    {
        await using var c = await RawClient.ConnectAsync(_server.Port);
        await c.GreetAsync();
        await c.SendOptionAsync(NbdOption.Info, new byte[200_000]);
        Assert.Equal(OptionReplyType.ErrTooBig, (await c.ReadOptionReplyAsync()).Type);
        await c.SendOptionAsync(NbdOption.List, []);
        Assert.Equal(OptionReplyType.Server, (await c.ReadOptionReplyAsync()).Type);
    }

    [Fact]
    public async Task Bad_option_magic_closes_only_that_connection()
    {
        await using var bad = await RawClient.ConnectAsync(_server.Port);
        await bad.GreetAsync();
        await bad.WriteAsync(Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\n\r\n"));
        Assert.True(await bad.IsClosedByServerAsync());
        await using var good = await RawClient.OpenAsync(_server.Port);
        Assert.Equal(1L << 20, good.Size);
    }

    [Fact]
    public async Task Unknown_client_flags_close_the_connection()
    {
        await using var c = await RawClient.ConnectAsync(_server.Port);
        await c.ReadAsync(18);
        await c.WriteU32Async(0x80);
        Assert.True(await c.IsClosedByServerAsync());
    }

    [Fact]
    public async Task Client_vanishing_mid_handshake_leaves_the_server_serving()
    {
        for (int i = 0; i < 20; i++)
        {
            await using var c = await RawClient.ConnectAsync(_server.Port);
            await c.GreetAsync();
            await c.WriteAsync([0x49, 0x48, 0x41]); // part of IHAVEOPT, then gone
        }
        await using var good = await RawClient.OpenAsync(_server.Port);
        Assert.Equal(1L << 20, good.Size);
    }
}
