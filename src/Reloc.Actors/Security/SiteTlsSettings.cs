using System.IO.Enumeration;
using Akka.Configuration;
using Reloc.Nbd.Client;
using Reloc.Nbd.Tls;

namespace Reloc.Actors.Security;

/// <summary>
/// A site's TLS (<c>reloc.tls</c>): one certificates folder in the nbdkit/QEMU layout serves every plane.
/// <list type="bullet">
/// <item>NBD: the site's server offers STARTTLS (<see cref="Mode"/>; <see cref="VerifyPeer"/> makes guests present a
/// certificate from the CA); the peer export is served only to site certificates (<see cref="SiteExportAccess"/>).</item>
/// <item>Site-to-site fetches: STARTTLS with the site's client-cert.pem, the source's certificate checked against
/// ca-cert.pem and the advertised host.</item>
/// <item>Cluster remoting (<see cref="RemotingTls"/>): mutual TLS with server-cert.pem.</item>
/// </list>
/// A site's own certificate is one whose common name matches <see cref="SiteNames"/> (globs).
/// </summary>
public sealed record SiteTlsSettings(NbdTlsMode Mode, string CertificatesDirectory, bool VerifyPeer, IReadOnlyList<string> SiteNames)
{
    public static SiteTlsSettings Off { get; } = new(NbdTlsMode.Off, "", false, ["*"]);

    public bool Enabled => Mode != NbdTlsMode.Off;

    public string CaPath => Path.Combine(CertificatesDirectory, TlsFiles.CaCert);
    public string CertPath => Path.Combine(CertificatesDirectory, TlsFiles.ServerCert);
    public string KeyPath => Path.Combine(CertificatesDirectory, TlsFiles.ServerKey);

    /// <summary>What the site's NBD server is given.</summary>
    public NbdTlsSettings Nbd => Enabled
        ? new NbdTlsSettings { Mode = Mode, CertificatesDirectory = CertificatesDirectory, VerifyPeer = VerifyPeer }
        : NbdTlsSettings.Disabled;

    /// <summary>nbds:// when every client must use TLS, as the site shows its disks' addresses.</summary>
    public string UriScheme => Mode == NbdTlsMode.Require ? "nbds" : "nbd";

    /// <summary>How this site connects to another site's peer export: over TLS with its own certificate whenever
    /// it has TLS (whatever the URI says: the source may also serve plain guests), else as the URI says.</summary>
    public NbdClientOptions ForPeer(NbdClientOptions options) => Enabled
        ? options with { Tls = NbdClientTlsMode.Require, TlsCertificates = CertificatesDirectory, TlsVerifyPeer = true }
        : options;

    /// <summary>Whether a (CA-verified) certificate's common name is one of a site's: the patterns are globs (* and ?).</summary>
    public bool IsSiteName(string? commonName) =>
        !string.IsNullOrEmpty(commonName) && SiteNames.Any(p => FileSystemName.MatchesSimpleExpression(p, commonName, ignoreCase: false));

    public static SiteTlsSettings From(Config config)
    {
        var c = config.GetConfig("reloc.tls");
        if (c is null || c.IsEmpty) return Off;
        var text = c.GetString("mode", "off");
        var mode = text switch
        {
            "off" => NbdTlsMode.Off,
            "allow" => NbdTlsMode.Allow,
            "require" => NbdTlsMode.Require,
            _ => throw new ArgumentException($"reloc.tls.mode = '{text}': expected off, allow or require"),
        };
        return new SiteTlsSettings(mode, c.GetString("certificates", ""), c.GetBoolean("verify-peer", false),
            c.GetStringList("site-names", ["*"]).ToList()).Validate();
    }

    public SiteTlsSettings Validate()
    {
        if (SiteNames.Count == 0 || SiteNames.Any(string.IsNullOrWhiteSpace))
            throw new ArgumentException("reloc.tls.site-names: give at least one pattern, none empty");
        if (!Enabled)
        {
            if (VerifyPeer) throw new ArgumentException("reloc.tls.verify-peer = on needs reloc.tls.mode allow or require");
            return this;
        }
        if (string.IsNullOrEmpty(CertificatesDirectory))
            throw new ArgumentException($"reloc.tls.mode = {Mode.ToString().ToLowerInvariant()} needs reloc.tls.certificates: a folder with " +
                                        $"{TlsFiles.CaCert}, {TlsFiles.ServerCert}, {TlsFiles.ServerKey}, {TlsFiles.ClientCert} and {TlsFiles.ClientKey}");
        foreach (var f in new[] { TlsFiles.CaCert, TlsFiles.ServerCert, TlsFiles.ServerKey, TlsFiles.ClientCert, TlsFiles.ClientKey })
            if (!File.Exists(Path.Combine(CertificatesDirectory, f)))
                throw new ArgumentException($"reloc.tls.certificates = {CertificatesDirectory}: {f} is missing");
        return this;
    }
}
