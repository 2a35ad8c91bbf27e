using System.Net;
using Akka.Configuration;

namespace Reloc.Actors.Management;

/// <summary>What a principal of the management API may do: a viewer reads (every GET, /metrics), an operator also changes.</summary>
public enum ManagementRole { Viewer, Operator }

/// <summary>reloc.management.auth.mode.</summary>
public enum AuthMode { Auto, On, Off }

/// <summary>
/// Validated settings of the management port's security (reloc.management.tls and reloc.management.auth in reference.conf).
/// </summary>
/// <param name="CertificatesDir">Folder with server-cert.pem, server-key.pem, ca-cert.pem; null: plain HTTP.</param>
/// <param name="Enabled">Authentication and authorization on (mode on, or auto with a credential source configured).</param>
/// <param name="TokensFile">The bearer tokens file (<see cref="TokenFile"/>); null: none.</param>
/// <param name="CertificateRoles">Client certificates' subject CN → role.</param>
public sealed record ManagementSecuritySettings(string? CertificatesDir, bool Enabled, string? TokensFile,
    IReadOnlyDictionary<string, ManagementRole> CertificateRoles, TimeSpan CookieLifetime)
{
    public static readonly ManagementSecuritySettings Open = new(null, false, null, new Dictionary<string, ManagementRole>(), TimeSpan.FromHours(8));

    public bool Tls => CertificatesDir is not null;
    public bool ClientCertificates => Enabled && CertificateRoles.Count > 0;
    public string ServerCert => Path.Combine(CertificatesDir ?? "", "server-cert.pem");
    public string ServerKey => Path.Combine(CertificatesDir ?? "", "server-key.pem");
    public string CaCert => Path.Combine(CertificatesDir ?? "", "ca-cert.pem");

    public static ManagementSecuritySettings From(Config config)
    {
        var dir = config.GetString("reloc.management.tls.certificates", "");
        var modeText = config.GetString("reloc.management.auth.mode", "auto");
        if (!Enum.TryParse<AuthMode>(modeText, ignoreCase: true, out var mode) || int.TryParse(modeText, out _))
            throw new ArgumentException($"reloc.management.auth.mode = '{modeText}': expected auto, on or off");
        var tokens = config.GetString("reloc.management.auth.tokens-file", "");
        var roles = new Dictionary<string, ManagementRole>(StringComparer.Ordinal);
        foreach (var (key, role) in new[] { ("operators", ManagementRole.Operator), ("viewers", ManagementRole.Viewer) })
            foreach (var cn in config.GetStringList($"reloc.management.auth.certificates.{key}") ?? [])
            {
                if (string.IsNullOrWhiteSpace(cn)) throw new ArgumentException($"reloc.management.auth.certificates.{key}: an empty CN");
                if (!roles.TryAdd(cn, role))
                    throw new ArgumentException($"reloc.management.auth.certificates: CN '{cn}' is listed twice");
            }
        var lifetime = config.GetTimeSpan("reloc.management.auth.cookie-lifetime", TimeSpan.FromHours(8));
        return Validate(string.IsNullOrWhiteSpace(dir) ? null : dir, mode, string.IsNullOrWhiteSpace(tokens) ? null : tokens, roles, lifetime);
    }

    /// <summary>The rules (pure, tested as a table): what auto means, and the combinations that cannot work.</summary>
    public static ManagementSecuritySettings Validate(string? certificatesDir, AuthMode mode, string? tokensFile,
        IReadOnlyDictionary<string, ManagementRole> certificateRoles, TimeSpan cookieLifetime)
    {
        bool configured = tokensFile is not null || certificateRoles.Count > 0;
        if (mode == AuthMode.On && !configured)
            throw new ArgumentException("reloc.management.auth.mode = on: set tokens-file or certificates.operators/viewers (nobody could log in)");
        if (certificateRoles.Count > 0 && certificatesDir is null && mode != AuthMode.Off)
            throw new ArgumentException("reloc.management.auth.certificates needs reloc.management.tls.certificates (client certificates come with TLS)");
        if (certificatesDir is not null)
            foreach (var f in new[] { "server-cert.pem", "server-key.pem", "ca-cert.pem" })
                if (!File.Exists(Path.Combine(certificatesDir, f)))
                    throw new ArgumentException($"reloc.management.tls.certificates = {certificatesDir}: {f} is missing");
        if (tokensFile is not null && !File.Exists(tokensFile))
            throw new ArgumentException($"reloc.management.auth.tokens-file = {tokensFile}: no such file");
        if (cookieLifetime <= TimeSpan.Zero) throw new ArgumentException("reloc.management.auth.cookie-lifetime must be positive");
        return new ManagementSecuritySettings(certificatesDir, mode == AuthMode.On || (mode == AuthMode.Auto && configured),
            tokensFile, certificateRoles, cookieLifetime);
    }

    /// <summary>Anyone who reaches a non-loopback address could change disks: worth a warning at start.</summary>
    public bool ExposedWithoutAuth(IPEndPoint listen) => !Enabled && !IPAddress.IsLoopback(listen.Address);
}
