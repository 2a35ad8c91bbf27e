using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Reloc.Nbd.Client;
using Reloc.Nbd.Protocol;
using Reloc.Testing;
using Xunit;

namespace Reloc.Nbd.Tests;

/// <summary>The client sends its options in one flight (one round trip instead of three over a WAN), and the
/// result is the same connection as option by option, against our server and the real ones.</summary>
public sealed class PipelinedHandshakeTests
{
    private const long Size = 8 << 20;

    [Fact]
    public async Task Every_option_reaches_the_server_before_it_has_answered_any()
    {
        // A server that answers nothing until it has read STRUCTURED_REPLY, SET_META_CONTEXT and GO: a client that
        // waits for each reply before the next option never gets through.
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var serving = ServeWithheldAsync(listener);

        var options = new NbdClientOptions { Host = "127.0.0.1", Port = port, Export = "disk", ConnectTimeout = TimeSpan.FromSeconds(5) };
        await using (var c = await NbdClient.ConnectAsync(options))
        {
            Assert.Equal(Size, c.Size);
            Assert.True(c.StructuredReplies);
            Assert.True(c.CanBlockStatus);
        }
        var seen = await serving;
        Assert.Equal([NbdOption.StructuredReply, NbdOption.SetMetaContext, NbdOption.Go], seen);

        // Option by option, the same server is never answered: the client times out.
        var serving2 = ServeWithheldAsync(listener);
        await Assert.ThrowsAsync<TimeoutException>(() => NbdClient.ConnectAsync(options with { PipelineOptions = false, ConnectTimeout = TimeSpan.FromSeconds(1) }));
        await Assert.ThrowsAnyAsync<Exception>(() => serving2);
    }

    [Theory]
    [InlineData("reloc", true)]
    [InlineData("reloc", false)]
    [InlineData("qemu-nbd", true)]
    [InlineData("nbdkit", true)]
    [InlineData("nbdkit --no-sr", true)]
    public async Task Pipelined_or_not_the_connection_is_the_same(string server, bool pipelined)
    {
        var image = Path.Combine(Path.GetTempPath(), $"reloc-pipelined-{Guid.NewGuid():N}.img");
        using (var f = File.Create(image)) f.SetLength(Size);
        using var cleanup = new TempFile(image);
        await using var external = server switch
        {
            "reloc" => null,
            "qemu-nbd" => await ExternalServer.StartQemuNbdAsync(image, "disk"),
            "nbdkit" => await ExternalServer.StartNbdkitAsync("memory", "8M"),
            _ => await ExternalServer.StartNbdkitAsync("--no-sr", "memory", "8M"),
        };
        await using var own = server == "reloc" ? await TestServer.StartAsync(Size) : null;
        var options = (own is not null ? NbdClientOptions.FromUri(own.Uri("disk")) : external!.Options(server == "qemu-nbd" ? "disk" : "")) with { PipelineOptions = pipelined };

        await using var c = await NbdClient.ConnectAsync(options);
        bool structured = server != "nbdkit --no-sr";
        Assert.Equal(Size, c.Size);
        Assert.Equal(structured, c.StructuredReplies);
        Assert.Equal(structured, c.CanBlockStatus);
        var data = Tool.RandomBytes(70_000, 11);
        await c.WriteAsync(4096, data);
        var back = new byte[data.Length];
        await c.ReadAsync(4096, back);
        Assert.Equal(data, back);
        if (structured) Assert.NotEmpty(await c.BlockStatusAsync(0, 1 << 20));
    }

    private sealed class TempFile(string path) : IDisposable
    {
        public void Dispose() => File.Delete(path);
    }

    /// <summary>Accepts one client, reads three options without answering, then answers them all; returns what it read.</summary>
    private static async Task<List<NbdOption>> ServeWithheldAsync(TcpListener listener)
    {
        using var tcp = await listener.AcceptTcpClientAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        var s = tcp.GetStream();
        var greeting = new byte[18];
        BinaryPrimitives.WriteUInt64BigEndian(greeting, NbdMagic.InitPasswd);
        BinaryPrimitives.WriteUInt64BigEndian(greeting.AsSpan(8), NbdMagic.IHaveOpt);
        BinaryPrimitives.WriteUInt16BigEndian(greeting.AsSpan(16), (ushort)(HandshakeFlags.FixedNewstyle | HandshakeFlags.NoZeroes));
        await s.WriteAsync(greeting, timeout.Token);
        await s.ReadExactlyAsync(new byte[4], timeout.Token);

        var seen = new List<NbdOption>();
        var bodies = new List<byte[]>();
        while (seen.Count < 3)
        {
            var header = new byte[NbdLimits.OptionHeaderSize];
            await s.ReadExactlyAsync(header, timeout.Token);
            Assert.Equal(ParseStatus.Ok, OptionCodec.TryParseHeader(new ReadOnlySequence<byte>(header), out var h));
            var body = new byte[h.Length];
            await s.ReadExactlyAsync(body, timeout.Token);
            seen.Add((NbdOption)h.Option);
            bodies.Add(body);
        }

        await ReplyAsync(NbdOption.StructuredReply, OptionReplyType.Ack, []);
        var context = new byte[4 + NbdLimits.BaseAllocation.Length];
        BinaryPrimitives.WriteUInt32BigEndian(context, 1);
        Encoding.ASCII.GetBytes(NbdLimits.BaseAllocation).CopyTo(context, 4);
        await ReplyAsync(NbdOption.SetMetaContext, OptionReplyType.MetaContext, context);
        await ReplyAsync(NbdOption.SetMetaContext, OptionReplyType.Ack, []);
        var export = new byte[12];
        BinaryPrimitives.WriteUInt16BigEndian(export, (ushort)InfoType.Export);
        BinaryPrimitives.WriteUInt64BigEndian(export.AsSpan(2), Size);
        BinaryPrimitives.WriteUInt16BigEndian(export.AsSpan(10), (ushort)(TransmissionFlags.HasFlags | TransmissionFlags.SendFlush));
        await ReplyAsync(NbdOption.Go, OptionReplyType.Info, export);
        await ReplyAsync(NbdOption.Go, OptionReplyType.Ack, []);
        // The client's NBD_CMD_DISC (a request header), then its close.
        await s.ReadExactlyAsync(new byte[28], timeout.Token);
        return seen;

        async Task ReplyAsync(NbdOption option, OptionReplyType type, byte[] data)
        {
            var reply = new byte[NbdLimits.OptionReplyHeaderSize + data.Length];
            OptionCodec.WriteReplyHeader(reply, (uint)option, type, data.Length);
            data.CopyTo(reply, NbdLimits.OptionReplyHeaderSize);
            await s.WriteAsync(reply, timeout.Token);
        }
    }
}
