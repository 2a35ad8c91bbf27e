using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Reloc.Nbd.Client;
using Reloc.Nbd.Protocol;
using Reloc.Nbd.Server;
using Reloc.Nbd.Tests.Support;
using Reloc.Nbd.Tls;
using Reloc.Testing;
using Xunit;

namespace Reloc.Nbd.Tests;

/// <summary>STARTTLS at the byte level, the handshake timeout, and our own client over TLS against our server and nbdkit.</summary>
public sealed class TlsProtocolTests(TlsFixture pki) : IClassFixture<TlsFixture>
{
    private NbdClientOptions Client(int port, string? dir = null, string export = "disk") =>
        new() { Host = "127.0.0.1", Port = port, Export = export, Tls = NbdClientTlsMode.Require, TlsCertificates = dir ?? pki.Good };

    [Fact]
    public async Task Require_mode_answers_options_before_starttls_with_tls_reqd_and_a_second_starttls_with_invalid()
    {
        var (server, _) = await TlsFixture.StartAsync(TlsFixture.Settings(NbdTlsMode.Require, pki.Good));
        await using var _s = server;
        await using var c = await RawClient.ConnectAsync(server.Port);
        await c.GreetAsync();
        foreach (var option in new[] { NbdOption.List, NbdOption.StructuredReply })
        {
            await c.SendOptionAsync(option, []);
            Assert.Equal(OptionReplyType.ErrTlsReqd, (await c.ReadOptionReplyAsync()).Type);
        }
        await c.SendOptionAsync(NbdOption.Go, RawClient.ExportInfoBody("disk"));
        Assert.Equal(OptionReplyType.ErrTlsReqd, (await c.ReadOptionReplyAsync()).Type);
        await c.SendOptionAsync(NbdOption.StartTls, []);
        Assert.Equal(OptionReplyType.Ack, (await c.ReadOptionReplyAsync()).Type);
        await c.UpgradeToTlsAsync(pki.Good);
        await c.SendOptionAsync(NbdOption.StartTls, []);
        Assert.Equal(OptionReplyType.ErrInvalid, (await c.ReadOptionReplyAsync()).Type);
        await c.SendOptionAsync(NbdOption.List, []);
        Assert.Equal(OptionReplyType.Server, (await c.ReadOptionReplyAsync()).Type);
    }

    [Fact]
    public async Task Export_name_before_starttls_on_a_tls_only_server_hangs_up()
    {
        var (server, _) = await TlsFixture.StartAsync(TlsFixture.Settings(NbdTlsMode.Require, pki.Good));
        await using var _s = server;
        await using var c = await RawClient.ConnectAsync(server.Port);
        await c.GreetAsync();
        await c.SendOptionAsync(NbdOption.ExportName, "disk"u8.ToArray());
        Assert.True(await c.IsClosedByServerAsync());
    }

    [Fact]
    public async Task Bytes_sent_after_starttls_before_the_tls_handshake_end_the_connection()
    {
        var (server, log) = await TlsFixture.StartAsync(TlsFixture.Settings(NbdTlsMode.Require, pki.Good));
        await using var _s = server;
        await using var c = await RawClient.ConnectAsync(server.Port);
        await c.GreetAsync();
        // STARTTLS and a plain option in one write: the second must not be taken as if it came over TLS.
        var first = new byte[16];
        OptionCodec.WriteOptionHeader(first, NbdOption.StartTls, 0);
        var second = new byte[16];
        OptionCodec.WriteOptionHeader(second, NbdOption.List, 0);
        await c.WriteAsync([.. first, .. second]);
        Assert.Equal(OptionReplyType.Ack, (await c.ReadOptionReplyAsync()).Type);
        Assert.True(await c.IsClosedByServerAsync());
        await log.WaitForAsync(LogLevel.Debug, "data sent after NBD_OPT_STARTTLS before the TLS handshake");
    }

    [Fact]
    public async Task Off_mode_answers_starttls_with_policy()
    {
        var (server, _) = await TlsFixture.StartAsync(new NbdServerSettings());
        await using var _s = server;
        await using var c = await RawClient.ConnectAsync(server.Port);
        await c.GreetAsync();
        await c.SendOptionAsync(NbdOption.StartTls, []);
        Assert.Equal(OptionReplyType.ErrPolicy, (await c.ReadOptionReplyAsync()).Type);
    }

    [Fact]
    public async Task Acl_refusals_are_policy_errors_for_info_go_and_meta_contexts_and_list_hides_the_export()
    {
        var acl = new ExportAcl([new ExportAclRule("ro", [], [System.Net.IPNetwork.Parse("10.0.0.0/8")])], DefaultAllow: true);
        var (server, log) = await TlsFixture.StartAsync(new NbdServerSettings { ExportAccess = acl });
        await using var _s = server;
        await using var c = await RawClient.ConnectAsync(server.Port);
        await c.GreetAsync();
        await c.SendOptionAsync(NbdOption.StructuredReply, []);
        Assert.Equal(OptionReplyType.Ack, (await c.ReadOptionReplyAsync()).Type);
        await c.SendOptionAsync(NbdOption.Info, RawClient.ExportInfoBody("ro"));
        Assert.Equal(OptionReplyType.ErrPolicy, (await c.ReadOptionReplyAsync()).Type);
        await c.SendOptionAsync(NbdOption.SetMetaContext, RawClient.MetaContextBody("ro", NbdLimits.BaseAllocation));
        Assert.Equal(OptionReplyType.ErrPolicy, (await c.ReadOptionReplyAsync()).Type);
        await c.SendOptionAsync(NbdOption.List, []);
        var listed = new List<string>();
        while (true)
        {
            var r = await c.ReadOptionReplyAsync();
            if (r.Type == OptionReplyType.Ack) break;
            listed.Add(System.Text.Encoding.UTF8.GetString(r.Data.AsSpan(4, (int)System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(r.Data))));
        }
        Assert.Equal(["disk"], listed);
        await c.SendOptionAsync(NbdOption.Go, RawClient.ExportInfoBody("ro"));
        var refused = await c.ReadOptionReplyAsync();
        Assert.Equal(OptionReplyType.ErrPolicy, refused.Type);
        Assert.Contains("not permitted", System.Text.Encoding.UTF8.GetString(refused.Data));
        Assert.Equal(3, log.At(LogLevel.Warning).Count(l => l.Contains("refused export ro") && l.Contains("anonymous")));
        await c.SendOptionAsync(NbdOption.Go, RawClient.ExportInfoBody("disk")); // the connection goes on
        while ((await c.ReadOptionReplyAsync()).Type != OptionReplyType.Ack) { }
    }

    [Fact]
    public async Task A_client_that_stalls_in_the_handshake_is_closed_after_the_timeout()
    {
        var settings = TlsFixture.Settings(NbdTlsMode.Require, pki.Good) with { HandshakeTimeout = TimeSpan.FromMilliseconds(500) };
        var (server, log) = await TlsFixture.StartAsync(settings);
        await using var _s = server;
        // Idle after the greeting, and a slowloris that starts an option and never finishes it.
        await using var idle = await RawClient.ConnectAsync(server.Port);
        await idle.GreetAsync();
        await using var slow = await RawClient.ConnectAsync(server.Port);
        await slow.GreetAsync();
        await slow.WriteAsync([0x49, 0x48, 0x41]);
        // Mid-TLS: STARTTLS acknowledged, no ClientHello.
        await using var tls = await RawClient.ConnectAsync(server.Port);
        await tls.GreetAsync();
        await tls.SendOptionAsync(NbdOption.StartTls, []);
        Assert.Equal(OptionReplyType.Ack, (await tls.ReadOptionReplyAsync()).Type);

        Assert.True(await idle.IsClosedByServerAsync());
        Assert.True(await slow.IsClosedByServerAsync());
        Assert.True(await tls.IsClosedByServerAsync());
        await log.WaitForAsync(LogLevel.Information, "handshake not finished within 0.5 s");
        await using var good = await NbdClient.ConnectAsync(Client(server.Port));
        Assert.Equal(8 << 20, good.Size);
    }

    [Fact]
    public async Task Our_client_reads_and_writes_over_tls_and_reports_it()
    {
        var (server, _) = await TlsFixture.StartAsync(TlsFixture.Settings(NbdTlsMode.Require, pki.Good, verifyPeer: true));
        await using var _s = server;
        await using var client = await NbdClient.ConnectAsync(Client(server.Port));
        Assert.True(client.IsTls);
        Assert.True(client.CanBlockStatus);
        var data = Tool.RandomBytes(3 << 20, 9);
        await client.WriteAsync(1 << 20, data, fua: true);
        var back = new byte[data.Length];
        await client.ReadAsync(1 << 20, back);
        Assert.Equal(data, back);
    }

    [Fact]
    public async Task Our_client_over_nbds_unix()
    {
        var (server, _) = await TlsFixture.StartAsync(TlsFixture.Settings(NbdTlsMode.Require, pki.Good));
        await using var _s = server;
        var uri = $"nbds+unix:///disk?socket={server.UnixSocket}&tls-certificates={pki.Good}";
        await using var client = await NbdClient.ConnectAsync(NbdClientOptions.FromUri(uri));
        Assert.True(client.IsTls);
        Assert.Equal(8 << 20, client.Size);
    }

    [Fact]
    public async Task Our_client_refuses_a_server_of_another_ca_and_a_plain_server()
    {
        var (tlsServer, _) = await TlsFixture.StartAsync(TlsFixture.Settings(NbdTlsMode.Require, pki.Other));
        await using var _t = tlsServer;
        var ex = await Assert.ThrowsAsync<NbdHandshakeException>(() => NbdClient.ConnectAsync(Client(tlsServer.Port)));
        Assert.Contains("TLS handshake", ex.Message);

        var (plain, _) = await TlsFixture.StartAsync(new NbdServerSettings());
        await using var _p = plain;
        var refused = await Assert.ThrowsAsync<NbdHandshakeException>(() => NbdClient.ConnectAsync(Client(plain.Port)));
        Assert.Equal(OptionReplyType.ErrPolicy, refused.Reply);
        await using var ok = await NbdClient.ConnectAsync(Client(tlsServer.Port, pki.Other));
        Assert.True(ok.IsTls);
    }

    [Fact]
    public async Task Our_client_is_refused_by_a_verify_peer_server_without_a_client_certificate()
    {
        var (server, _) = await TlsFixture.StartAsync(TlsFixture.Settings(NbdTlsMode.Require, pki.Good, verifyPeer: true));
        await using var _s = server;
        // TLS 1.3: the refusal may surface in the handshake or on the first option read after it.
        foreach (var dir in new[] { pki.NoClientCert, pki.WrongCaClient })
        {
            var ex = await Assert.ThrowsAnyAsync<IOException>(() => NbdClient.ConnectAsync(Client(server.Port, dir)));
            Assert.Contains("client certificate", ex.Message);
        }
        await using var ok = await NbdClient.ConnectAsync(Client(server.Port));
        Assert.True(ok.IsTls);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Our_client_against_nbdkit_with_tls_required(bool verifyPeer)
    {
        var dir = Directory.CreateTempSubdirectory("reloc-nbdkit-tls-").FullName;
        try
        {
            var image = Path.Combine(dir, "disk.img");
            File.WriteAllBytes(image, Tool.RandomBytes(4 << 20, 13));
            string[] args = ["--tls=require", $"--tls-certificates={pki.Good}", .. verifyPeer ? new[] { "--tls-verify-peer" } : [], "file", $"file={image}"];
            await using var nbdkit = await ExternalServer.StartNbdkitAsync(args);
            await using (var client = await NbdClient.ConnectAsync(Client(nbdkit.Port, export: "")))
            {
                Assert.True(client.IsTls);
                var back = new byte[4 << 20];
                await client.ReadAsync(0, back);
                Assert.Equal(Tool.Sha256(image), Tool.Sha256Of(back));
            }
            var plain = await Assert.ThrowsAsync<NbdHandshakeException>(() => NbdClient.ConnectAsync(nbdkit.Options()));
            Assert.Equal(OptionReplyType.ErrTlsReqd, plain.Reply);
            if (verifyPeer)
                await Assert.ThrowsAnyAsync<IOException>(() => NbdClient.ConnectAsync(Client(nbdkit.Port, pki.NoClientCert, export: "")));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Reconnecting_client_reconnects_over_tls_after_a_server_restart()
    {
        var settings = TlsFixture.Settings(NbdTlsMode.Require, pki.Good);
        var server = await TestServer.StartAsync(1 << 20, Tool.RandomBytes(1 << 20, 21), settings: settings);
        var (port, dir) = (server.Port, server.Dir);
        await using var client = await ReconnectingNbdClient.ConnectAsync(Client(port));
        var back = new byte[4096];
        await client.ReadAsync(0, back);
        await server.StopAsync();
        server = await TestServer.StartAsync(1 << 20, settings: settings, port: port, dir: dir);
        await using var _s = server;
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var again = new byte[4096];
        await client.ReadAsync(0, again, deadline.Token);
        Assert.Equal(back, again);
        Assert.Equal(2, client.Connections);
        Assert.True((await client.GetClientAsync(deadline.Token)).IsTls);
    }
}
