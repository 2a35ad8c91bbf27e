using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Reloc.Actors.History;
using Reloc.Actors.Management;
using Xunit;

namespace Reloc.Actors.Tests;

/// <summary>The management API's security decisions as tables: the tokens file, the settings' rules, which role each
/// route needs, and what the audit records of each change.</summary>
public sealed class ManagementSecurityTableTests
{
    private const string Hash64 = "8d969eef6ecad3c29a3a629280e686cf0c3f5d5a86aff3ca12020c923adc6c92"; // SHA-256 of "123456"

    [Theory]
    [InlineData("alice operator sha256:" + Hash64, "alice", ManagementRole.Operator)]
    [InlineData("  bob\tviewer   a-long-enough-token-1  # trailing comment", "bob", ManagementRole.Viewer)]
    [InlineData("# a comment\n\ncarol OPERATOR SHA256:" + Hash64, "carol", ManagementRole.Operator)]
    public void A_tokens_file_line_names_a_principal_and_its_role(string text, string name, ManagementRole role)
    {
        var entry = Assert.Single(TokenFile.Parse(text));
        Assert.Equal((name, role), (entry.Name, entry.Role));
    }

    [Theory]
    [InlineData("alice operator", "line 1: expected NAME ROLE TOKEN, found 2")]
    [InlineData("alice admin a-long-enough-token-1", "line 1: role 'admin'")]
    [InlineData("\nalice viewer short", "line 2: a token needs at least 16")]
    [InlineData("alice viewer sha256:abc", "line 1: sha256: needs 64 hex digits")]
    [InlineData("alice viewer sha256:" + "zz" + "969eef6ecad3c29a3a629280e686cf0c3f5d5a86aff3ca12020c923adc6c92", "is not hexadecimal")]
    [InlineData("a viewer a-long-enough-token-1\na operator a-long-enough-token-2", "line 2: 'a' is listed twice")]
    [InlineData("a viewer a-long-enough-token-1 extra", "found 4 field(s)")]
    public void A_bad_tokens_file_names_its_line(string text, string reason) =>
        Assert.Contains(reason, Assert.Throws<FormatException>(() => TokenFile.Parse(text)).Message);

    [Fact]
    public void A_token_matches_its_principal_whether_written_in_the_clear_or_hashed()
    {
        var entries = TokenFile.Parse($"h viewer sha256:{Hash64}\nc operator clear-token-0123456789");
        Assert.Equal("h", TokenFile.Match(entries, "123456")?.Name);
        Assert.Equal("c", TokenFile.Match(entries, "clear-token-0123456789")?.Name);
        Assert.Null(TokenFile.Match(entries, "clear-token-012345678"));
        Assert.Null(TokenFile.Match(entries, ""));
        Assert.Null(TokenFile.Match(entries, "sha256:" + Hash64)); // the hash itself is not the token
    }

    [Fact]
    public void The_token_store_reads_a_changed_file_again_and_keeps_the_old_tokens_when_it_no_longer_parses()
    {
        var path = Path.GetTempFileName();
        var errors = new List<string>();
        try
        {
            File.WriteAllText(path, "a viewer first-token-0123456789\n");
            var clock = new ManualClock();
            var store = new TokenStore(path, errors.Add, clock).Load();
            Assert.Equal("a", store.Match("first-token-0123456789")?.Name);
            File.WriteAllText(path, "b operator second-token-0123456789\n");
            File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddMinutes(1));
            clock.Advance(TimeSpan.FromSeconds(2)); // past the once-a-second check
            Assert.Equal("b", store.Match("second-token-0123456789")?.Name);
            Assert.Null(store.Match("first-token-0123456789"));
            File.WriteAllText(path, "b operator\n");
            File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddMinutes(2));
            clock.Advance(TimeSpan.FromSeconds(2));
            _ = store.Entries; // the store reads the file when asked
            Assert.NotEmpty(errors);
            Assert.Contains("line 1", errors[0]);
            Assert.Equal("b", store.Match("second-token-0123456789")?.Name); // still in force
        }
        finally { File.Delete(path); }
    }

    public static TheoryData<string?, AuthMode, string?, string[], bool?, string?> SettingsRules => new()
    {
        // certificates dir, mode, tokens file, certificate CNs → enabled, or the error
        { null, AuthMode.Auto, null, [], false, null },
        { null, AuthMode.Auto, "TOKENS", [], true, null },
        { "CERTS", AuthMode.Auto, null, ["ops"], true, null },
        { null, AuthMode.Off, "TOKENS", [], false, null },
        { null, AuthMode.On, null, [], null, "nobody could log in" },
        { null, AuthMode.Auto, null, ["ops"], null, "needs reloc.management.tls.certificates" },
        { "CERTS", AuthMode.On, "TOKENS", [], true, null },
        { "MISSING", AuthMode.Auto, null, [], null, "server-cert.pem is missing" },
        { null, AuthMode.Auto, "MISSING", [], null, "no such file" },
    };

    [Theory]
    [MemberData(nameof(SettingsRules))]
    public void Auth_is_on_when_asked_or_when_a_credential_source_is_configured(string? certs, AuthMode mode, string? tokens, string[] cns,
        bool? enabled, string? error)
    {
        var dir = Directory.CreateTempSubdirectory("reloc-sec-").FullName;
        try
        {
            foreach (var f in new[] { "server-cert.pem", "server-key.pem", "ca-cert.pem" }) File.WriteAllText(Path.Combine(dir, f), "");
            File.WriteAllText(Path.Combine(dir, "tokens"), "");
            string? Place(string? v) => v switch { "CERTS" => dir, "TOKENS" => Path.Combine(dir, "tokens"), "MISSING" => Path.Combine(dir, "missing"), _ => v };
            var roles = cns.ToDictionary(c => c, _ => ManagementRole.Operator);
            if (error is not null)
                Assert.Contains(error, Assert.Throws<ArgumentException>(() =>
                    ManagementSecuritySettings.Validate(Place(certs), mode, Place(tokens), roles, TimeSpan.FromHours(1))).Message);
            else
                Assert.Equal(enabled, ManagementSecuritySettings.Validate(Place(certs), mode, Place(tokens), roles, TimeSpan.FromHours(1)).Enabled);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void The_settings_come_from_hocon_with_auth_off_and_plain_http_by_default()
    {
        var s = ManagementSecuritySettings.From(RelocConfig.Reference);
        Assert.Equal((false, false, 0), (s.Enabled, s.Tls, s.CertificateRoles.Count));
        Assert.True(s.ExposedWithoutAuth(System.Net.IPEndPoint.Parse("0.0.0.0:9110")));
        Assert.False(s.ExposedWithoutAuth(System.Net.IPEndPoint.Parse("127.0.0.1:9110")));
        Assert.Contains("auto, on or off", Assert.Throws<ArgumentException>(() => ManagementSecuritySettings.From(
            Akka.Configuration.ConfigurationFactory.ParseString("reloc.management.auth.mode = maybe").WithFallback(RelocConfig.Reference))).Message);
    }

    /// <summary>Every route of the API and the role it needs: reading is viewer, changing is operator.</summary>
    public static readonly (string Method, string Route, string Policy)[] Roles =
    [
        ("GET", "/api/v1/cluster", "viewer"),
        ("POST", "/api/v1/cluster/members/{member}/leave", "operator"),
        ("POST", "/api/v1/cluster/members/{member}/down", "operator"),
        ("GET", "/api/v1/disks", "viewer"),
        ("POST", "/api/v1/disks", "operator"),
        ("GET", "/api/v1/disks/{name}", "viewer"),
        ("GET", "/api/v1/disks/{name}/history", "viewer"),
        ("DELETE", "/api/v1/disks/{name}", "operator"),
        ("GET", "/api/v1/events", "viewer"),
        ("GET", "/api/v1/audit", "viewer"),
        ("GET", "/api/v1/relocations", "viewer"),
        ("POST", "/api/v1/relocations", "operator"),
        ("GET", "/api/v1/relocations/{disk}", "viewer"),
        ("POST", "/api/v1/relocations/{disk}/rate", "operator"),
        ("POST", "/api/v1/relocations/{disk}/weight", "operator"),
        ("POST", "/api/v1/sites/{site}/drain", "operator"),
        ("GET", "/api/v1/links", "viewer"),
        ("PUT", "/api/v1/links/{siteA}/{siteB}", "operator"),
        ("POST", "/api/v1/relocations/{disk}/handover", "operator"),
        ("POST", "/api/v1/relocations/{disk}/cancel", "operator"),
        ("GET", "/api/v1/relocations/{disk}/progress", "viewer"),
    ];

    [Fact]
    public void Each_route_needs_the_role_of_the_table()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Services.AddSingleton<ManagementService>(_ => throw new InvalidOperationException("not called: only the routes are looked at"));
        var app = builder.Build();
        ManagementRoutes.Map(app);
        var actual = ((IEndpointRouteBuilder)app).DataSources.SelectMany(d => d.Endpoints).OfType<RouteEndpoint>()
            .Select(e => (e.Metadata.GetMetadata<Microsoft.AspNetCore.Routing.HttpMethodMetadata>()!.HttpMethods.Single(), "/" + e.RoutePattern.RawText!.TrimStart('/'),
                string.Join(",", e.Metadata.GetOrderedMetadata<IAuthorizeData>().Select(a => a.Policy))))
            .OrderBy(x => x.Item2).ThenBy(x => x.Item1).ToList();
        Assert.Equal(Roles.OrderBy(x => x.Route).ThenBy(x => x.Method).ToList(), actual);
    }

    public static TheoryData<string, string, string?, AuditAction, string, string> AuditRows => new()
    {
        { "Relocate", "", """{"disk":"vm1","to":"site-b","mode":"hybrid"}""", AuditAction.Relocate, "vm1", "relocate vm1 → site-b hybrid" },
        { "Relocate", "", """{"disk":"vm1","to":"site-c","rate":5000,"prefetch":false}""", AuditAction.Relocate, "vm1", "relocate vm1 → site-c postcopy rate 5000 B/s no prefetch" },
        { "Relocate", "", "{not json", AuditAction.Relocate, "?", "relocate (unreadable body)" },
        { "CreateDisk", "", """{"name":"d","site":"site-a","size":1024}""", AuditAction.CreateDisk, "d", "create disk d at site-a size 1024" },
        { "CreateDisk", "", """{"name":"d","site":"site-a","from":"/img/base.img"}""", AuditAction.CreateDisk, "d", "create disk d at site-a from /img/base.img" },
        { "DeleteDisk", "name=vm1", null, AuditAction.DeleteDisk, "vm1", "delete disk vm1" },
        { "SetRelocationRate", "disk=vm1", """{"rate":100}""", AuditAction.SetRate, "vm1", "set the relocation rate of vm1 to 100 B/s" },
        { "SetRelocationWeight", "disk=vm1", """{"weight":3}""", AuditAction.SetWeight, "vm1", "set the weight of vm1 to 3" },
        { "SetLinkBudget", "siteA=site-a&siteB=site-b", """{"bandwidth":20000000}""", AuditAction.SetLinkBudget, "site-a<->site-b", "set the link budget of site-a<->site-b to 20000000 B/s" },
        { "SetLinkBudget", "siteA=site-a&siteB=site-b", """{"bandwidth":0}""", AuditAction.SetLinkBudget, "site-a<->site-b", "set the link budget of site-a<->site-b to none" },
        { "Handover", "disk=vm1", null, AuditAction.Handover, "vm1", "hand vm1 over" },
        { "DrainSite", "site=site-a", """{"to":"site-b"}""", AuditAction.DrainSite, "site-a", "drain site-a → site-b postcopy" },
        { "DrainSite", "site=site-a", """{"to":"site-c","mode":"hybrid","rate":7}""", AuditAction.DrainSite, "site-a", "drain site-a → site-c hybrid rate 7 B/s" },
        { "DrainSite", "site=site-a", "{not json", AuditAction.DrainSite, "site-a", "drain site-a → ? (unreadable body)" },
        { "CancelRelocation", "disk=vm1", null, AuditAction.CancelRelocation, "vm1", "cancel the relocation of vm1" },
        { "LeaveMember", "member=site-b", null, AuditAction.LeaveMember, "site-b", "member site-b leaves" },
        { "DownMember", "member=akka.tcp%3A%2F%2Freloc%40h%3A1", null, AuditAction.DownMember, "akka.tcp://reloc@h:1", "down member akka.tcp://reloc@h:1" },
        { "Login", "", null, AuditAction.Other, "", "route Login" },
    };

    [Theory]
    [MemberData(nameof(AuditRows))]
    public void A_change_is_recorded_as_action_target_and_a_line(string route, string values, string? body, AuditAction action, string target, string detail)
    {
        var dict = values.Length == 0 ? new Dictionary<string, string?>()
            : values.Split('&').Select(kv => kv.Split('=')).ToDictionary(kv => kv[0], kv => (string?)kv[1]);
        Assert.Equal((action, target, detail), AuditMapping.Describe(route, dict, body));
    }

    [Theory]
    [InlineData(200, AuditOutcome.Accepted)]
    [InlineData(201, AuditOutcome.Accepted)]
    [InlineData(202, AuditOutcome.Accepted)]
    [InlineData(400, AuditOutcome.Refused)]
    [InlineData(401, AuditOutcome.Refused)]
    [InlineData(403, AuditOutcome.Refused)]
    [InlineData(409, AuditOutcome.Refused)]
    [InlineData(503, AuditOutcome.Refused)]
    public void Only_a_2xx_is_accepted(int status, AuditOutcome outcome) => Assert.Equal(outcome, AuditMapping.OutcomeOf(status));
}

/// <summary>A clock that moves only when told to.</summary>
internal sealed class ManualClock : TimeProvider
{
    private DateTimeOffset _now = DateTimeOffset.UtcNow;
    public override DateTimeOffset GetUtcNow() => _now;
    public void Advance(TimeSpan by) => _now += by;
}
