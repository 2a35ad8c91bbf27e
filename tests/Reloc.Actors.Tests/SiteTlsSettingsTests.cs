using System.Net;
using Akka.Configuration;
using Reloc.Actors;
using Reloc.Actors.Security;
using Reloc.Nbd.Server;
using Reloc.Nbd.Tls;
using Reloc.Testing;
using Xunit;

namespace Reloc.Actors.Tests;

/// <summary>reloc.tls and reloc.site.nbd.acl: how they are read and validated, and who may open which of a site's exports.</summary>
public sealed class SiteTlsSettingsTests : IDisposable
{
    private readonly TestPki _pki = TestPki.Create();

    public void Dispose() => _pki.Dispose();

    private static Config Hocon(string text) => ConfigurationFactory.ParseString(text).WithFallback(RelocConfig.Reference);

    [Fact]
    public void Off_by_default_and_a_mode_with_a_full_folder_is_read()
    {
        Assert.False(SiteTlsSettings.From(RelocConfig.Reference).Enabled);
        var dir = _pki.Folder("site-a", "site-a", "site-a");
        var tls = SiteTlsSettings.From(Hocon($"reloc.tls {{ mode = require, certificates = \"{dir}\", verify-peer = on, site-names = [\"site-*\"] }}"));
        Assert.Equal(NbdTlsMode.Require, tls.Mode);
        Assert.True(tls.VerifyPeer);
        Assert.Equal("nbds", tls.UriScheme);
        Assert.Equal(new NbdTlsSettings { Mode = NbdTlsMode.Require, CertificatesDirectory = dir, VerifyPeer = true }, tls.Nbd);
        Assert.Equal("nbd", (tls with { Mode = NbdTlsMode.Allow }).UriScheme);
    }

    [Theory]
    [InlineData("mode = sometimes", "expected off, allow or require")]
    [InlineData("mode = require", "needs reloc.tls.certificates")]
    [InlineData("mode = off, verify-peer = on", "needs reloc.tls.mode allow or require")]
    [InlineData("mode = allow, certificates = \"/nonexistent\"", "ca-cert.pem is missing")]
    [InlineData("site-names = []", "at least one pattern")]
    public void Bad_settings_are_refused_naming_the_key(string body, string message)
    {
        var e = Assert.Throws<ArgumentException>(() => SiteTlsSettings.From(Hocon($"reloc.tls {{ {body} }}")));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void A_folder_without_the_client_pair_is_refused()
    {
        var dir = _pki.Folder("server-only", "site-a", clientName: null);
        var e = Assert.Throws<ArgumentException>(() => SiteTlsSettings.From(Hocon($"reloc.tls {{ mode = require, certificates = \"{dir}\" }}")));
        Assert.Contains("client-cert.pem is missing", e.Message);
    }

    private static readonly SiteTlsSettings Tls = new(NbdTlsMode.Require, "/certs", false, ["site-*"]);
    private static readonly IPAddress Guest = IPAddress.Parse("10.1.2.3");

    public static TheoryData<string, bool, string?, string, bool> Decisions => new()
    {
        // export, tls on, certificate CN, guest ACL, allowed
        { "vm@peer", true, "site-c", "open", true },
        { "vm@peer", true, "vm-guest", "open", false },        // from the CA, not a site's name
        { "vm@peer", true, null, "open", false },              // no certificate
        { "vm@peer", false, null, "open", true },              // no TLS: no identity to check
        { "vm", true, "vm-guest", "open", true },              // guests' exports follow the ACL
        { "vm", true, "vm-guest", "hypervisors only", false },
        { "vm", true, "hv-1", "hypervisors only", true },
        { "db", true, "hv-1", "hypervisors only", false },     // no rule covers db; default deny
    };

    [Theory]
    [MemberData(nameof(Decisions))]
    public void Who_may_open_which_export(string export, bool tls, string? cn, string acl, bool allowed)
    {
        var guests = acl == "open"
            ? SiteExportAccess.GuestAcl(RelocConfig.Reference)
            : SiteExportAccess.GuestAcl(Hocon("reloc.site.nbd.acl { default = deny, rules = [{ exports = \"vm*\", certificates = [\"hv-1\"], networks = [\"10.1.0.0/16\"] }] }"));
        var access = new SiteExportAccess(tls ? Tls : SiteTlsSettings.Off, guests);
        var peer = new NbdPeer("10.1.2.3:5000", Guest, tls, cn is null ? null : "CN=" + cn, cn);
        Assert.Equal(allowed, access.Decide(peer, export).Allowed);
    }

    [Theory]
    [InlineData("default = maybe", "expected allow or deny")]
    [InlineData("rules = [{ certificates = [x] }]", "rules[0].exports")]
    [InlineData("rules = [{ exports = vm, networks = [\"10.1.0.0/33\"] }]", "not a CIDR network")]
    public void A_bad_acl_is_refused_naming_the_rule(string body, string message)
    {
        var e = Assert.Throws<ArgumentException>(() => SiteExportAccess.GuestAcl(Hocon($"reloc.site.nbd.acl {{ {body} }}")));
        Assert.Contains(message, e.Message);
    }
}
