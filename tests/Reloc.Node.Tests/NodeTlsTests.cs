using System.Text.RegularExpressions;
using Reloc.Nbd.Server;
using Reloc.Nbd.Tls;
using Reloc.Testing;
using Xunit;

namespace Reloc.Node.Tests;

/// <summary>`reloc-node serve` and `proxy` with --tls flags, driven by real clients.</summary>
public sealed class NodeTlsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("reloc-node-tls-").FullName;
    private readonly TestPki _pki = TestPki.Create();
    private readonly string _certs;

    public NodeTlsTests() => _certs = _pki.Folder("site");

    public void Dispose()
    {
        _pki.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private static int PortOf(string line) => int.Parse(Regex.Match(line, @"127\.0\.0\.1:(\d+)").Groups[1].Value);

    [Fact]
    public async Task Serve_with_tls_require_and_verify_peer_prints_nbds_and_serves_only_tls_clients()
    {
        var img = Path.Combine(_dir, "a.img");
        File.WriteAllBytes(img, Tool.RandomBytes(4 << 20, 1));
        await using var node = NodeProcess.Start("serve", "--listen", "127.0.0.1:0", "--export", $"a={img}",
            "--tls", "require", "--tls-certificates", _certs, "--tls-verify-peer");
        var line = await node.WaitForLineAsync(l => l.Contains("listening on"), TimeSpan.FromSeconds(30));
        Assert.Matches(@"listening on nbds://127\.0\.0\.1:\d+", line);
        int port = PortOf(line);

        var plain = await Tool.RunAsync("nbdinfo", $"nbd://127.0.0.1:{port}/a");
        Assert.NotEqual(0, plain.ExitCode);
        var back = Path.Combine(_dir, "back.img");
        await Tool.CheckAsync("nbdcopy", $"nbds://127.0.0.1:{port}/a?tls-certificates={_certs}", back);
        Assert.Equal(Tool.Sha256(img), Tool.Sha256(back));

        await node.SignalAsync("TERM");
        Assert.Equal(0, await node.WaitForExitAsync(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task Serve_with_an_acl_file_refuses_and_hides_exports_by_client_certificate()
    {
        var img = Path.Combine(_dir, "a.img");
        File.WriteAllBytes(img, new byte[1 << 20]);
        var acl = Path.Combine(_dir, "acl");
        File.WriteAllText(acl, "# the client certificate's CN\na cert=client\nb cert=someone-else\n");
        await using var node = NodeProcess.Start("serve", "--listen", "127.0.0.1:0", "--export", $"a={img}", "--export", $"b={img}:ro",
            "--tls", "require", "--tls-certificates", _certs, "--tls-verify-peer", "--acl", acl, "--log-level", "Warning");
        int port = PortOf(await node.WaitForLineAsync(l => l.Contains("listening on"), TimeSpan.FromSeconds(30)));
        await Tool.CheckAsync("nbdinfo", $"nbds://127.0.0.1:{port}/a?tls-certificates={_certs}");
        var refused = await Tool.RunAsync("nbdinfo", $"nbds://127.0.0.1:{port}/b?tls-certificates={_certs}");
        Assert.NotEqual(0, refused.ExitCode);
        var list = await Tool.CheckAsync("nbdinfo", "--list", $"nbds://127.0.0.1:{port}/?tls-certificates={_certs}");
        Assert.Contains("export=\"a\"", list);
        Assert.DoesNotContain("export=\"b\"", list);
        var err = await StopAsync(node);
        Assert.Contains("refused export b", err);
        Assert.Contains("CN=client", err);
    }

    [Theory]
    [InlineData("--acl", "/nonexistent/acl")]
    [InlineData("--tls", "require")]                                  // no certificates folder
    [InlineData("--tls-verify-peer")]                                 // verify-peer without TLS
    [InlineData("--tls", "allow", "--tls-certificates", "/nonexistent")]
    [InlineData("--tls", "sometimes", "--tls-certificates", "/tmp")]
    public async Task Bad_tls_arguments_fail_with_a_clear_message(params string[] tls)
    {
        await using var node = NodeProcess.Start(["serve", "--listen", "127.0.0.1:0", "--export", "x=/dev/null", .. tls]);
        Assert.NotEqual(0, await node.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Matches("reloc-node serve:|--tls", await node.StdErr);
    }

    [Fact]
    public async Task Proxy_relocates_from_an_nbds_source_and_serves_over_tls()
    {
        var settings = new NbdServerSettings { Tls = new NbdTlsSettings { Mode = NbdTlsMode.Require, CertificatesDirectory = _certs } };
        var content = Tool.RandomBytes(8 << 20, 7);
        await using var source = await TestServer.StartAsync(content.Length, content, settings: settings);
        var dest = Path.Combine(_dir, "dest.img");
        int port = Ports.Free();
        await using var proxy = NodeProcess.Start("proxy", "--listen", $"127.0.0.1:{port}", "--export", $"vm1={dest}",
            "--source", $"nbds://127.0.0.1:{source.Port}/disk?tls-certificates={_certs}", "--state-dir", Path.Combine(_dir, "state"),
            "--tls", "require", "--tls-certificates", _certs);
        await proxy.WaitForLineAsync(l => l.Contains("\"state\":\"complete\""), TimeSpan.FromSeconds(60));
        var back = Path.Combine(_dir, "back.img");
        await Tool.CheckAsync("nbdcopy", $"nbds://127.0.0.1:{port}/vm1?tls-certificates={_certs}", back);
        Assert.Equal(Tool.Sha256Of(content), Tool.Sha256(back));
        Assert.Contains("serving nbds://", await StopAsync(proxy));
    }

    private static async Task<string> StopAsync(NodeProcess node)
    {
        await node.SignalAsync("TERM");
        Assert.Equal(0, await node.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        return await node.StdErr;
    }
}
