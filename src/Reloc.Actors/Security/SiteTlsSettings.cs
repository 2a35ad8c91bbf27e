using System.IO.Enumeration;
using Akka.Configuration;

namespace Reloc.Actors.Security;

/// <summary>
/// A site's TLS (<c>reloc.tls</c>): one certificates folder in the nbdkit/QEMU layout serves every plane.
/// With certificates configured (<see cref="RemotingEnabled"/>), the cluster's remoting is mutual TLS: a node
/// without a certificate from the CA whose common name is a site's (<see cref="SiteNames"/>) cannot join or send.
/// </summary>
public sealed record SiteTlsSettings(bool RemotingEnabled, string CertificatesDirectory, IReadOnlyList<string> SiteNames)
{
    public const string CaFile = "ca-cert.pem", ServerCertFile = "server-cert.pem", ServerKeyFile = "server-key.pem";

    public static SiteTlsSettings Off { get; } = new(false, "", ["*"]);

    public string CaPath => Path.Combine(CertificatesDirectory, CaFile);
    public string CertPath => Path.Combine(CertificatesDirectory, ServerCertFile);
    public string KeyPath => Path.Combine(CertificatesDirectory, ServerKeyFile);

    /// <summary>Whether a (CA-verified) certificate's common name is one of a site's: the patterns are globs (* and ?).</summary>
    public bool IsSiteName(string? commonName) =>
        !string.IsNullOrEmpty(commonName) && SiteNames.Any(p => FileSystemName.MatchesSimpleExpression(p, commonName, ignoreCase: false));

    public static SiteTlsSettings From(Config config)
    {
        var c = config.GetConfig("reloc.tls");
        if (c is null || c.IsEmpty) return Off;
        var mode = c.GetString("mode", "off");
        var dir = c.GetString("certificates", "");
        var names = c.GetStringList("site-names", ["*"]);
        bool on = mode switch
        {
            "off" => false,
            "allow" or "require" => true,
            _ => throw new ArgumentException($"reloc.tls.mode = '{mode}': expected off, allow or require"),
        };
        return new SiteTlsSettings(on, dir, names.ToList()).Validate();
    }

    public SiteTlsSettings Validate()
    {
        if (SiteNames.Count == 0 || SiteNames.Any(string.IsNullOrWhiteSpace))
            throw new ArgumentException("reloc.tls.site-names: give at least one pattern, none empty");
        if (!RemotingEnabled) return this;
        if (string.IsNullOrEmpty(CertificatesDirectory))
            throw new ArgumentException("reloc.tls.certificates: a folder with ca-cert.pem, server-cert.pem and server-key.pem is needed when reloc.tls.mode is not off");
        foreach (var f in new[] { CaPath, CertPath, KeyPath })
            if (!File.Exists(f)) throw new ArgumentException($"reloc.tls.certificates = {CertificatesDirectory}: {Path.GetFileName(f)} is missing");
        return this;
    }
}
