using System.Net;
using Reloc.Nbd.Server;
using Xunit;

namespace Reloc.Nbd.Tests;

/// <summary><see cref="ExportAcl.Decide"/> as a table: peer, export -> allowed.</summary>
public sealed class ExportAclTests
{
    private static readonly ExportAcl Acl = new([
        new ExportAclRule("vm-*", ["site-b"], []),                                    // certificates of site-b
        new ExportAclRule("vm-*", [], [IPNetwork.Parse("10.1.0.0/16")]),              // or anyone on the site LAN
        new ExportAclRule("backup", ["CN=backup,O=Reloc"], [IPNetwork.Parse("192.168.5.0/24")]), // both conditions
        new ExportAclRule("public?", [], []),                                         // anyone
        new ExportAclRule("v6", [], [IPNetwork.Parse("fd00::/8")]),
    ], DefaultAllow: false);

    private static NbdPeer Peer(string? ip, string? cn = null, string? subject = null) =>
        new(ip ?? "unix", ip is null ? null : IPAddress.Parse(ip), cn is not null || subject is not null, subject ?? (cn is null ? null : $"CN={cn}"), cn);

    public static TheoryData<NbdPeer, string, bool> Cases => new()
    {
        { Peer("203.0.113.9", "site-b"), "vm-1", true },             // CN listed
        { Peer("203.0.113.9", "site-c"), "vm-1", false },            // CN not listed, address outside
        { Peer("10.1.2.3"), "vm-1", true },                          // no certificate, but on the LAN
        { Peer("10.2.0.1"), "vm-1", false },
        { Peer(null), "vm-1", false },                               // unix peers have no address
        { Peer("::ffff:10.1.2.3"), "vm-2", true },                   // an IPv4-mapped address is its IPv4 address
        { Peer("192.168.5.7", subject: "CN=backup,O=Reloc"), "backup", true }, // subject and network
        { Peer("192.168.5.7", cn: "backup"), "backup", false },      // subject is CN=backup only: not the listed subject
        { Peer("192.168.6.7", subject: "CN=backup,O=Reloc"), "backup", false },  // right subject, wrong network
        { Peer(null), "public1", true },                             // ? matches one character
        { Peer(null), "public12", false },                           // no rule covers it: default deny
        { Peer("fd00::5"), "v6", true },
        { Peer("fe80::5"), "v6", false },
        { Peer("10.1.2.3"), "other", false },                        // default deny
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Decides(NbdPeer peer, string export, bool allowed)
    {
        var decision = Acl.Decide(peer, export);
        Assert.True(decision.Allowed == allowed, $"{peer} on {export}: {decision}");
        Assert.False(string.IsNullOrEmpty(decision.Reason));
    }

    [Fact]
    public void Default_allow_opens_exports_no_rule_covers_and_only_those()
    {
        var acl = Acl with { DefaultAllow = true };
        Assert.True(acl.Decide(Peer("10.9.9.9"), "other").Allowed);
        Assert.False(acl.Decide(Peer("10.9.9.9"), "vm-1").Allowed);
    }

    [Fact]
    public void Peers_from_ipv4_mapped_endpoints_are_plain_ipv4()
    {
        var peer = NbdPeer.FromEndPoint(new IPEndPoint(IPAddress.Parse("::ffff:10.1.2.3"), 5000));
        Assert.Equal(IPAddress.Parse("10.1.2.3"), peer.Address);
        Assert.True(Acl.Decide(peer, "vm-2").Allowed);
        Assert.True(NbdPeer.FromEndPoint(null).IsUnix);
    }

    [Fact]
    public void Parses_the_text_form()
    {
        var acl = ExportAcl.Parse("""
            # site B's certificates, or the site LAN
            vm-*    cert=site-b
            vm-*    net=10.1.0.0/16
            backup  cert="CN=backup, O=Reloc" net=192.168.5.0/24   # both
            public?
            default allow
            """);
        Assert.True(acl.DefaultAllow);
        Assert.Equal(4, acl.Rules.Count);
        Assert.Equal(["CN=backup, O=Reloc"], acl.Rules[2].Identities);
        Assert.Equal([IPNetwork.Parse("192.168.5.0/24")], acl.Rules[2].Networks);
        Assert.True(acl.Decide(Peer("10.1.2.3"), "vm-9").Allowed);
        Assert.False(acl.Decide(Peer("10.2.2.3"), "vm-9").Allowed);
        Assert.False(ExportAcl.Parse("x cert=a").DefaultAllow);
    }

    [Theory]
    [InlineData("vm-* user=alice", "line 1")]
    [InlineData("ok\nvm-* net=10.0.0.0/33", "line 2")]
    [InlineData("default maybe", "default allow")]
    [InlineData("default allow\ndefault deny", "second")]
    [InlineData("x cert=\"CN=a", "unterminated")]
    public void Rejects_bad_lines_with_their_number(string text, string reason)
    {
        var ex = Assert.Throws<FormatException>(() => ExportAcl.Parse(text));
        Assert.Contains(reason, ex.Message);
    }
}
