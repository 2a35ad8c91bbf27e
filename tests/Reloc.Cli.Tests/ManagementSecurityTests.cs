using System.Text.Json.Nodes;
using Reloc.Management;
using Reloc.Testing;
using Xunit;

namespace Reloc.Cli.Tests;

/// <summary>
/// Three site processes whose management API is HTTPS (a throwaway CA) with authentication on: bearer tokens (an
/// operator in the clear, a viewer as its SHA-256) and client certificates by CN (ops: operator, watcher: viewer).
/// </summary>
public sealed class SecureSiteCluster : SiteCluster
{
    public const string AdminToken = "admin-token-0123456789abcdef", ViewerToken = "viewer-token-0123456789abcdef";

    public TestPki Pki { get; } = TestPki.Create();
    public TestPki OtherCa { get; } = TestPki.Create("Another CA");
    public string Certificates { get; }
    public string TokensFile { get; }
    public string ViewerTokenFile { get; }
    public string AdminTokenFile { get; }
    public (string Cert, string Key) Ops { get; }
    public (string Cert, string Key) Watcher { get; }
    /// <summary>CN ops, as the operator's certificate, but from another CA.</summary>
    public (string Cert, string Key) Impostor { get; }

    public SecureSiteCluster()
    {
        Certificates = Pki.Folder("mgmt", "localhost", clientName: null);
        Ops = Pki.Issue("ops", server: false);
        Watcher = Pki.Issue("watcher", server: false);
        Impostor = OtherCa.Issue("ops", server: false);
        TokensFile = Path.Combine(Dir, "tokens");
        File.WriteAllText(TokensFile, $"""
            # NAME ROLE TOKEN
            admin operator {AdminToken}
            viewer viewer sha256:{Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(ViewerToken)))}
            """);
        ViewerTokenFile = Path.Combine(Dir, "viewer.token");
        File.WriteAllText(ViewerTokenFile, ViewerToken + "\n");
        AdminTokenFile = Path.Combine(Dir, "admin.token");
        File.WriteAllText(AdminTokenFile, AdminToken + "\n");
    }

    protected override bool Https => true;

    protected override ManagementClientOptions? Options => new(AdminToken, Pki.CaCert);

    protected override string ExtraConfig(string site) => $$"""
        reloc.management.tls.certificates = "{{Certificates}}"
        reloc.management.auth {
          tokens-file = "{{TokensFile}}"
          certificates { operators = ["ops"], viewers = ["watcher"] }
        }
        """;

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        Pki.Dispose();
        OtherCa.Dispose();
    }
}

/// <summary>
/// The secured management API with real clients: curl over HTTPS (--cacert) with and without a token, with a viewer's
/// and an operator's, with client certificates of the CA and of another CA, plain HTTP at the HTTPS port, the
/// dashboard's login cookie; the audit shows who asked for what and how it ended; the console with a token file.
/// One cluster for the class (process start-up is the slow part).
/// </summary>
public sealed class ManagementSecurityTests(SecureSiteCluster cluster) : IClassFixture<SecureSiteCluster>
{
    private string Url(Site s) => s.Node;

    /// <summary>curl -sS over HTTPS trusting the test CA; returns (curl's exit code, HTTP status, headers and body).</summary>
    private async Task<(int Exit, int Status, string Output)> CurlAsync(params string[] args)
    {
        var r = await Tool.RunAsync("curl", ["-sS", "-i", "--cacert", cluster.Pki.CaCert, "-w", "\n%{http_code}", .. args], TimeSpan.FromSeconds(60));
        if (r.ExitCode != 0) return (r.ExitCode, 0, r.StdErr);
        int nl = r.StdOut.LastIndexOf('\n');
        return (0, int.Parse(r.StdOut[(nl + 1)..].Trim()), r.StdOut[..nl]);
    }

    private static string[] Bearer(string token) => ["-H", $"authorization: Bearer {token}"];

    private static string[] Json(string body) => ["-X", "POST", "-H", "content-type: application/json", "--data", body];

    private async Task<(int Status, string Output)> OkCurlAsync(params string[] args)
    {
        var (exit, status, output) = await CurlAsync(args);
        Assert.True(exit == 0, $"curl {string.Join(' ', args)}: exit {exit}: {output}");
        return (status, output);
    }

    private async Task<AuditRecordView> AuditRowAsync(Site via, Func<AuditRecordView, bool> match, string what)
    {
        AuditRecordView? found = null;
        await SiteCluster.UntilAsync(async () =>
        {
            found = (await SiteCluster.CallAsync(via, c => c.AuditAsync(1000))).Records.FirstOrDefault(match);
            return found is not null;
        }, what);
        return found!;
    }

    [Fact]
    public async Task Tokens_over_https_no_token_401_viewer_reads_but_cannot_relocate_operator_can_and_the_audit_says_who()
    {
        var a = cluster.A;
        string api = Url(a) + ManagementApi.Prefix;

        var (status, output) = await OkCurlAsync(api + "/disks");
        Assert.Equal(401, status);
        Assert.Contains("WWW-Authenticate: Bearer", output, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(401, (await OkCurlAsync(Url(a) + ManagementApi.Metrics)).Status);
        Assert.Equal(401, (await OkCurlAsync([.. Bearer("not-a-token-0123456789"), api + "/disks"])).Status);
        // Status only, open to checkers without credentials.
        Assert.Equal(200, (await OkCurlAsync(Url(a) + ManagementApi.Health)).Status);

        Assert.Equal(200, (await OkCurlAsync([.. Bearer(SecureSiteCluster.ViewerToken), api + "/disks"])).Status);
        (status, output) = await OkCurlAsync([.. Bearer(SecureSiteCluster.ViewerToken), Url(a) + ManagementApi.Metrics]);
        Assert.Equal(200, status);
        Assert.Contains("# TYPE", output);

        (status, output) = await OkCurlAsync([.. Bearer(SecureSiteCluster.AdminToken), .. Json("""{"name":"sec1","site":"site-a","size":1048576}"""), api + "/disks"]);
        Assert.True(status == 201, output);

        (status, output) = await OkCurlAsync([.. Bearer(SecureSiteCluster.ViewerToken), .. Json("""{"disk":"sec1","to":"site-b","mode":"hybrid"}"""), api + "/relocations"]);
        Assert.True(status == 403, output);
        Assert.DoesNotContain(await SiteCluster.CallAsync(a, c => c.RelocationsAsync()), r => r.Disk == "sec1"); // nothing changed
        Assert.Equal("site-a", (await SiteCluster.CallAsync(a, c => c.DiskAsync("sec1"))).Owner);

        (status, output) = await OkCurlAsync([.. Bearer(SecureSiteCluster.AdminToken), .. Json("""{"disk":"sec1","to":"site-b","mode":"hybrid"}"""), api + "/relocations"]);
        Assert.True(status == 202, output);
        // No guest at the source: it hands over by itself and completes.
        await SiteCluster.UntilAsync(async () => (await SiteCluster.CallAsync(a, c => c.DiskAsync("sec1"))) is { Owner: "site-b", Phase: "owned" },
            "sec1 relocated to site-b", TimeSpan.FromSeconds(120));

        // Every node keeps the audit (published to all): read it from another site than the one that answered.
        var refused = await AuditRowAsync(cluster.C, r => r is { Action: "relocate", Principal: "viewer", Target: "sec1" }, "the viewer's refused relocation");
        Assert.Equal(("token", "refused", 403, "site-a", "relocate sec1 → site-b hybrid"), (refused.Auth, refused.Outcome, refused.Status, refused.Node, refused.Detail));
        Assert.StartsWith("127.0.0.1:", refused.Source);
        var accepted = await AuditRowAsync(cluster.C, r => r is { Action: "relocate", Principal: "admin", Target: "sec1" }, "the operator's relocation");
        Assert.Equal(("token", "accepted", 202, "relocate sec1 → site-b hybrid"), (accepted.Auth, accepted.Outcome, accepted.Status, accepted.Detail));
        Assert.True(accepted.Time > refused.Time);
        var created = await AuditRowAsync(a, r => r is { Action: "create-disk", Principal: "admin", Target: "sec1" }, "the disk's creation");
        Assert.Equal(("accepted", 201), (created.Outcome, created.Status));
    }

    [Fact]
    public async Task Client_certificates_of_the_ca_get_their_cn_s_role_another_ca_s_are_refused_and_plain_http_fails()
    {
        var b = cluster.B;
        string api = Url(b) + ManagementApi.Prefix;
        string[] Cert((string Cert, string Key) pair) => ["--cert", pair.Cert, "--key", pair.Key];

        Assert.Equal(200, (await OkCurlAsync([.. Cert(cluster.Ops), api + "/disks"])).Status);
        // Past authorization (the operator role): the cluster's own answer, no such relocation.
        var (status, output) = await OkCurlAsync([.. Cert(cluster.Ops), "-X", "POST", api + "/relocations/no-such-disk/cancel"]);
        Assert.True(status is >= 404 and < 500, output);
        int clusterAnswer = status;
        Assert.Equal(200, (await OkCurlAsync([.. Cert(cluster.Watcher), api + "/disks"])).Status);
        (status, output) = await OkCurlAsync([.. Cert(cluster.Watcher), "-X", "POST", api + "/relocations/no-such-disk/cancel"]);
        Assert.True(status == 403, output);

        // Same CN, another CA: refused in the handshake (or, if a client sends it anyway, not authenticated).
        var (exit, impostorStatus, impostorOutput) = await CurlAsync([.. Cert(cluster.Impostor), api + "/disks"]);
        Assert.True(exit != 0 || impostorStatus == 401, $"exit {exit}, HTTP {impostorStatus}: {impostorOutput}");

        // Plain HTTP at the HTTPS port: no answer a client could take for one.
        var plain = await Tool.RunAsync("curl", ["-sS", "-w", "\n%{http_code}", $"http://127.0.0.1:{b.ManagementPort}{ManagementApi.Health}"], TimeSpan.FromSeconds(30));
        Assert.True(plain.ExitCode != 0 || plain.StdOut.TrimEnd().EndsWith("400", StringComparison.Ordinal), $"plain http: {plain}");

        var refused = await AuditRowAsync(b, r => r is { Action: "cancel-relocation", Principal: "CN=watcher" }, "the watcher's refused cancel");
        Assert.Equal(("certificate", "refused", 403), (refused.Auth, refused.Outcome, refused.Status));
        var done = await AuditRowAsync(b, r => r is { Action: "cancel-relocation", Principal: "CN=ops" }, "the operator's cancel");
        Assert.Equal(("certificate", "refused", clusterAnswer, "cancel the relocation of no-such-disk"), (done.Auth, done.Outcome, done.Status, done.Detail));
    }

    [Fact]
    public async Task The_dashboard_logs_in_with_a_token_into_an_http_only_strict_cookie_and_openapi_declares_the_scheme()
    {
        var c = cluster.C;
        var (status, output) = await OkCurlAsync(["-X", "POST", "--data-urlencode", $"token={SecureSiteCluster.ViewerToken}", Url(c) + "/login"]);
        Assert.True(status == 302, output);
        var cookie = output.Split('\n').Single(l => l.StartsWith("set-cookie:", StringComparison.OrdinalIgnoreCase));
        Assert.Contains("httponly", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("samesite=strict", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("secure", cookie, StringComparison.OrdinalIgnoreCase);
        var pair = cookie["set-cookie:".Length..].Split(';')[0].Trim();

        Assert.Equal(200, (await OkCurlAsync(["-H", $"cookie: {pair}", Url(c) + ManagementApi.Events + "?limit=1"])).Status);
        Assert.Equal(403, (await OkCurlAsync(["-H", $"cookie: {pair}", "-X", "DELETE", Url(c) + ManagementApi.Disk("x")])).Status);
        Assert.Equal(401, (await OkCurlAsync(["-X", "POST", "--data-urlencode", "token=wrong-token-0123456789", Url(c) + "/login"])).Status);
        // The dashboard's files themselves are open (the login form must load).
        Assert.Equal(200, (await OkCurlAsync(Url(c) + "/login.html")).Status);

        (status, output) = await OkCurlAsync(Url(c) + ManagementApi.OpenApi);
        Assert.Equal(200, status);
        var doc = JsonNode.Parse(output[output.IndexOf('{')..])!;
        Assert.Equal("bearer", (string?)doc["components"]!["securitySchemes"]!["bearer"]!["scheme"]);
        Assert.Equal("mutualTLS", (string?)doc["components"]!["securitySchemes"]!["mutualTLS"]!["type"]);
    }

    [Fact]
    public async Task The_console_uses_a_token_file_over_https_and_says_clearly_what_401_and_403_mean()
    {
        var a = cluster.A;
        string[] Tls = ["--url", Url(a), "--ca-cert", cluster.Pki.CaCert];

        var r = await Cli.RunAsync(null, [.. Tls, "--token-file", cluster.ViewerTokenFile, "disk", "list"]);
        Assert.True(r.ExitCode == 0, r.ToString());

        await Cli.FailsAsync(null, CliApp.NotAllowed, "not allowed: POST /api/v1/relocations needs the operator role",
            [.. Tls, "--token-file", cluster.ViewerTokenFile, "relocate", "sec-cli", "--to", "site-b"]);
        await Cli.FailsAsync(null, CliApp.NotAuthenticated, "not authenticated", [.. Tls, "disk", "list"]);
        await Cli.FailsAsync(null, CliApp.Failed, "TLS with https://127.0.0.1", ["--url", Url(a), "--token-file", cluster.ViewerTokenFile, "disk", "list"]);

        await AuditRowAsync(a, x => x is { Principal: "viewer", Target: "sec-cli" }, "the console's refused relocation");
        // The token from the environment, as a service's unit would give it.
        r = await Cli.RunAsync(null, [.. Tls, "audit", "--limit", "100"], env: new Dictionary<string, string> { ["RELOC_TOKEN_FILE"] = cluster.AdminTokenFile });
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("viewer (token) from 127.0.0.1:", r.StdOut);
        Assert.Contains("relocate sec-cli → site-b postcopy  refused 403", r.StdOut);
    }
}
