using Microsoft.Extensions.Logging;
using Reloc.Nbd.Server;
using Reloc.Nbd.Tests.Support;
using Reloc.Nbd.Tls;
using Reloc.Testing;
using Xunit;

namespace Reloc.Nbd.Tests;

/// <summary>NBD over TLS with the clients people really use: nbdinfo, nbdcopy, nbdsh (libnbd) and qemu.
/// Every refusal is followed by a good client, to show the server is still up.</summary>
public sealed class TlsRealClientTests(TlsFixture pki) : IClassFixture<TlsFixture>
{
    private static string QemuCreds(string dir) => $"tls-creds-x509,id=tls0,endpoint=client,dir={dir}";

    [Fact]
    public async Task Nbdinfo_and_nbdcopy_copy_out_and_in_over_tls()
    {
        var (server, _) = await TlsFixture.StartAsync(TlsFixture.Settings(NbdTlsMode.Require, pki.Good), size: 16 << 20);
        await using var _s = server;
        var info = await Tool.CheckAsync("nbdinfo", TlsFixture.Nbds(server.Port, pki.Good));
        Assert.Contains("export-size: 16777216", info);

        var src = Path.Combine(server.Dir, "src.img");
        var data = Tool.RandomBytes(16 << 20, 5);
        Array.Clear(data, 2 << 20, 2 << 20); // a zero run: hole chunks over TLS too
        File.WriteAllBytes(src, data);
        await Tool.CheckAsync("nbdcopy", "--connections=4", src, TlsFixture.Nbds(server.Port, pki.Good));
        var back = Path.Combine(server.Dir, "back.img");
        await Tool.CheckAsync("nbdcopy", "--connections=4", TlsFixture.Nbds(server.Port, pki.Good), back);
        Assert.Equal(Tool.Sha256(src), Tool.Sha256(back));
        Assert.Equal(Tool.Sha256(src), Tool.Sha256(server.ImagePath()));
    }

    [Fact]
    public async Task Qemu_io_and_qemu_img_use_tls_creds()
    {
        var (server, _) = await TlsFixture.StartAsync(TlsFixture.Settings(NbdTlsMode.Require, pki.Good, verifyPeer: true));
        await using var _s = server;
        var image = $"driver=nbd,host=127.0.0.1,port={server.Port},export=disk,tls-creds=tls0";
        var output = await Tool.CheckAsync("qemu-io", "--object", QemuCreds(pki.Good), "--image-opts", image,
            "-c", "write -P 0x5a 1M 64k", "-c", "flush", "-c", "read -P 0x5a 1M 64k");
        Assert.DoesNotContain("Pattern verification failed", output);
        await Tool.CheckAsync("qemu-img", "compare", "--object", QemuCreds(pki.Good), "--image-opts", image,
            $"driver=file,filename={server.ImagePath()}");
    }

    [Fact]
    public async Task Nbdsh_with_tls_require_reads_the_size()
    {
        var (server, _) = await TlsFixture.StartAsync(TlsFixture.Settings(NbdTlsMode.Require, pki.Good));
        await using var _s = server;
        var output = await Tool.CheckAsync("nbdsh", "-c",
            $"h.set_tls(nbd.TLS_REQUIRE); h.set_tls_certificates('{pki.Good}'); h.set_export_name('disk'); " +
            $"h.connect_tcp('127.0.0.1', '{server.Port}'); print(h.get_size(), h.get_tls_negotiated())");
        Assert.Equal("8388608 True", output.Trim());
    }

    [Fact]
    public async Task A_plain_client_is_refused_when_tls_is_required_and_the_server_stays_up()
    {
        var (server, log) = await TlsFixture.StartAsync(TlsFixture.Settings(NbdTlsMode.Require, pki.Good));
        await using var _s = server;
        var plain = await Tool.RunAsync("nbdinfo", $"nbd://127.0.0.1:{server.Port}/disk");
        Assert.NotEqual(0, plain.ExitCode);
        await log.WaitForAsync(LogLevel.Debug, "before STARTTLS refused");
        var list = await Tool.RunAsync("nbdinfo", "--list", $"nbd://127.0.0.1:{server.Port}");
        Assert.DoesNotContain("export=\"disk\"", list.StdOut); // the export list is hidden before TLS
        await pki.AssertServesAsync(server.Port);
    }

    [Fact]
    public async Task A_server_certificate_from_another_ca_is_refused_by_the_client()
    {
        var (server, _) = await TlsFixture.StartAsync(TlsFixture.Settings(NbdTlsMode.Require, pki.Other));
        await using var _s = server;
        var r = await Tool.RunAsync("nbdinfo", TlsFixture.Nbds(server.Port, pki.Good));
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("certificate verification", r.StdErr);
        var q = await Tool.RunAsync("qemu-img", ["info", "--object", QemuCreds(pki.Good), "--image-opts",
            $"driver=nbd,host=127.0.0.1,port={server.Port},export=disk,tls-creds=tls0"]);
        Assert.NotEqual(0, q.ExitCode);
        await pki.AssertServesAsync(server.Port, pki.Other);
    }

    [Fact]
    public async Task Verify_peer_refuses_a_missing_or_foreign_client_certificate()
    {
        var (server, log) = await TlsFixture.StartAsync(TlsFixture.Settings(NbdTlsMode.Require, pki.Good, verifyPeer: true));
        await using var _s = server;
        // TLS 1.3: the client finishes its handshake first and sees the refusal on its first read.
        var none = await Tool.RunAsync("nbdinfo", TlsFixture.Nbds(server.Port, pki.NoClientCert));
        Assert.NotEqual(0, none.ExitCode);
        await log.WaitForAsync(LogLevel.Information, "TLS handshake failed");
        var wrong = await Tool.RunAsync("nbdinfo", TlsFixture.Nbds(server.Port, pki.WrongCaClient));
        Assert.NotEqual(0, wrong.ExitCode);
        Assert.Equal(2, log.At(LogLevel.Information).Count(l => l.Contains("TLS handshake failed")));
        await pki.AssertServesAsync(server.Port);
    }

    [Fact]
    public async Task An_acl_refusal_reaches_nbdinfo_as_a_policy_error_and_is_logged_once()
    {
        var acl = new ExportAcl([
            new ExportAclRule("disk", ["client"], []),
            new ExportAclRule("ro", ["backup-operator"], []),
        ]);
        var (server, log) = await TlsFixture.StartAsync(TlsFixture.Settings(NbdTlsMode.Require, pki.Good, verifyPeer: true, acl));
        await using var _s = server;
        // libnbd 1.14 words every option error as "Operation not supported"; its debug trace shows the server's
        // message. The reply type itself (NBD_REP_ERR_POLICY) is checked byte by byte in TlsProtocolTests.
        var r = await Tool.RunAsync("env", "LIBNBD_DEBUG=1", "nbdinfo", TlsFixture.Nbds(server.Port, pki.Good, "ro"));
        Assert.NotEqual(0, r.ExitCode);
        Assert.True(r.StdErr.Contains("server replied with error to opt_go request")
                    && r.StdErr.Contains("server error message: access to export 'ro' is not permitted"), r.ToString());
        var warning = await log.WaitForAsync(LogLevel.Warning, "refused export ro");
        Assert.Contains("CN=client", warning);
        Assert.Contains("127.0.0.1", warning);
        var list = await Tool.CheckAsync("nbdinfo", "--list", TlsFixture.Nbds(server.Port, pki.Good, ""));
        Assert.Contains("export=\"disk\"", list);
        Assert.DoesNotContain("export=\"ro\"", list);
        await pki.AssertServesAsync(server.Port);
    }

    [Fact]
    public async Task Allow_mode_serves_plain_and_tls_clients()
    {
        var (server, _) = await TlsFixture.StartAsync(TlsFixture.Settings(NbdTlsMode.Allow, pki.Good));
        await using var _s = server;
        await Tool.CheckAsync("nbdinfo", $"nbd://127.0.0.1:{server.Port}/disk");
        var tls = await Tool.CheckAsync("nbdsh", "-c",
            $"h.set_tls(nbd.TLS_REQUIRE); h.set_tls_certificates('{pki.Good}'); h.set_export_name('disk'); " +
            $"h.connect_tcp('127.0.0.1', '{server.Port}'); print(h.get_tls_negotiated())");
        Assert.Equal("True", tls.Trim());
    }

    [Fact]
    public async Task Off_mode_refuses_starttls_and_serves_plain()
    {
        var (server, _) = await TlsFixture.StartAsync(new NbdServerSettings());
        await using var _s = server;
        var r = await Tool.RunAsync("nbdinfo", TlsFixture.Nbds(server.Port, pki.Good));
        Assert.NotEqual(0, r.ExitCode);
        await Tool.CheckAsync("nbdinfo", $"nbd://127.0.0.1:{server.Port}/disk");
    }

    [Fact]
    public async Task Replaced_certificates_take_effect_for_new_clients_without_a_restart()
    {
        using var newCa = TestPki.Create("Renewed CA");
        var renewed = newCa.Folder("renewed");
        var dir = Path.Combine(pki.Ca.Root, $"live-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(pki.Good)) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        var (server, log) = await TlsFixture.StartAsync(TlsFixture.Settings(NbdTlsMode.Require, dir, verifyPeer: true));
        await using var _s = server;
        await pki.AssertServesAsync(server.Port);

        // A broken file keeps the old credentials (and says so).
        File.WriteAllText(Path.Combine(dir, TlsFiles.ServerKey), "not a key");
        await pki.AssertServesAsync(server.Port);
        await log.WaitForAsync(LogLevel.Error, "do not load");

        foreach (var f in Directory.GetFiles(renewed)) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)), overwrite: true);
        var old = await Tool.RunAsync("nbdinfo", TlsFixture.Nbds(server.Port, pki.Good));
        Assert.NotEqual(0, old.ExitCode);
        await pki.AssertServesAsync(server.Port, renewed);
        await log.WaitForAsync(LogLevel.Information, "reloaded");
    }
}
