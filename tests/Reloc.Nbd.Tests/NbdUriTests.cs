using Reloc.Nbd.Client;
using Xunit;

namespace Reloc.Nbd.Tests;

public sealed class NbdUriTests
{
    [Theory]
    [InlineData("nbd://127.0.0.1:10810/disk", "127.0.0.1", 10810, "disk", null)]
    [InlineData("nbd://site-a.example/vm1", "site-a.example", 10809, "vm1", null)]
    [InlineData("nbd://host", "host", 10809, "", null)]
    [InlineData("nbd://host:2000/", "host", 2000, "", null)]
    [InlineData("NBD://host/a/b%20c", "host", 10809, "a/b c", null)]
    [InlineData("nbd://[::1]:10811/x", "::1", 10811, "x", null)]
    [InlineData("nbd://[fe80::1]/x", "fe80::1", 10809, "x", null)]
    [InlineData("nbd+unix:///disk?socket=/run/reloc.sock", null, 10809, "disk", "/run/reloc.sock")]
    [InlineData("nbd+unix://?socket=/tmp/a%20b.sock", null, 10809, "", "/tmp/a b.sock")]
    public void Parses_valid_uris(string uri, string? host, int port, string export, string? socket)
    {
        var u = NbdUri.Parse(uri);
        Assert.Equal(new NbdUri(host, port, export, socket), u);
        Assert.Equal(u, NbdUri.Parse(u.ToString())); // ToString writes a URI that parses back the same
        var o = NbdClientOptions.FromUri(u);
        Assert.Equal((host, socket, export), (o.Host, o.UnixSocketPath, o.Export));
        o.Validate();
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("disk", "expected nbd://")]
    [InlineData("http://host/disk", "unknown scheme 'http'")]
    [InlineData("nbd://host/disk?tls-certificates=/d", "need a TLS scheme")]
    [InlineData("nbds://host/disk?tls-verify-peer=maybe", "true or false")]
    [InlineData("nbds://host/disk?tls-certificates=", "must not be empty")]
    [InlineData("nbds+unix:///disk", "needs ?socket=")]
    [InlineData("nbd:///disk", "needs a host")]
    [InlineData("nbd://host:0/disk", "port '0'")]
    [InlineData("nbd://host:65536/disk", "port '65536'")]
    [InlineData("nbd://host:12ab/disk", "port '12ab'")]
    [InlineData("nbd://host:-1/disk", "port '-1'")]
    [InlineData("nbd://::1/disk", "brackets")]
    [InlineData("nbd://[::1/disk", "unterminated")]
    [InlineData("nbd://[::1]x/disk", "after the IPv6 address")]
    [InlineData("nbd://user@host/disk", "user information")]
    [InlineData("nbd://host/disk?socket=/s", "'socket' is not supported")]
    [InlineData("nbd://host/disk#frag", "fragment")]
    [InlineData("nbd+unix:///disk", "needs ?socket=")]
    [InlineData("nbd+unix:///disk?socket=", "needs ?socket=")]
    [InlineData("nbd+unix://host/disk?socket=/s", "takes no host")]
    [InlineData("nbd+unix:///disk?socket=/s&tls=on", "'tls' is not supported")]
    [InlineData("nbd+unix:///disk?socket=/a&socket=/b", "given twice")]
    [InlineData("nbd://host/a%00b", "NUL")]
    public void Rejects_invalid_uris_with_a_clear_message(string uri, string reason)
    {
        var ex = Assert.Throws<FormatException>(() => NbdUri.Parse(uri));
        Assert.Contains(reason, ex.Message);
        if (uri.Length > 0) Assert.Contains(uri, ex.Message);
        Assert.False(NbdUri.TryParse(uri, out var none));
        Assert.Null(none);
    }

    [Theory]
    [InlineData("nbds://127.0.0.1:10810/disk?tls-certificates=/etc/reloc/tls", "127.0.0.1", null, "/etc/reloc/tls", null, true)]
    [InlineData("nbds://site-a.example/vm1", "site-a.example", null, null, null, true)]
    [InlineData("nbds://h/x?tls-certificates=/d&tls-hostname=localhost&tls-verify-peer=false", "h", null, "/d", "localhost", false)]
    [InlineData("nbds+unix:///disk?socket=/run/r.sock&tls-certificates=/a%20b", null, "/run/r.sock", "/a b", null, true)]
    public void Parses_and_formats_tls_uris(string uri, string? host, string? socket, string? certificates, string? hostname, bool verify)
    {
        var u = NbdUri.Parse(uri);
        Assert.True(u.Tls);
        Assert.Equal((host, socket, certificates, hostname, verify), (u.Host, u.SocketPath, u.TlsCertificates, u.TlsHostname, u.TlsVerifyPeer));
        Assert.StartsWith("nbds", u.ToString());
        Assert.Equal(u, NbdUri.Parse(u.ToString()));
        var o = NbdClientOptions.FromUri(u);
        Assert.Equal(NbdClientTlsMode.Require, o.Tls);
        Assert.Equal(u, o.ToUri());
    }
}
