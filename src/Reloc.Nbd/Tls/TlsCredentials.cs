using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;

namespace Reloc.Nbd.Tls;

/// <summary>Loading certificates from an nbdkit/QEMU-layout folder and the TLS policy both ends share.</summary>
public static class TlsCredentials
{
    /// <summary>TLS 1.3, with 1.2 as the floor the NBD spec makes mandatory; every client met here (libnbd,
    /// qemu, .NET) negotiates 1.3.</summary>
    public const SslProtocols Protocols = SslProtocols.Tls12 | SslProtocols.Tls13;

    /// <summary>The CA certificates of ca-cert.pem (several may be joined in one file).</summary>
    public static X509Certificate2Collection LoadRoots(string dir)
    {
        var roots = new X509Certificate2Collection();
        roots.ImportFromPemFile(Path.Combine(dir, TlsFiles.CaCert));
        if (roots.Count == 0) throw new InvalidDataException($"{Path.Combine(dir, TlsFiles.CaCert)} holds no certificate");
        return roots;
    }

    public static SslStreamCertificateContext LoadIdentity(string dir, string certFile, string keyFile)
    {
        var cert = X509Certificate2.CreateFromPemFile(Path.Combine(dir, certFile), Path.Combine(dir, keyFile));
        // offline: no AIA fetches for intermediates while building the context.
        return SslStreamCertificateContext.Create(cert, additionalCertificates: null, offline: true);
    }

    /// <summary>Chain validation against the folder's CA only: the system store is not trusted.</summary>
    public static X509ChainPolicy ChainPolicy(X509Certificate2Collection roots)
    {
        var policy = new X509ChainPolicy
        {
            TrustMode = X509ChainTrustMode.CustomRootTrust,
            RevocationMode = X509RevocationMode.NoCheck,
        };
        policy.CustomTrustStore.AddRange(roots);
        return policy;
    }

    /// <summary>The subject and common name of the certificate a verified peer presented.</summary>
    public static (string? Subject, string? CommonName) Identity(X509Certificate? cert)
    {
        if (cert is null) return (null, null);
        var c2 = cert as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(cert.GetRawCertData());
        var cn = c2.GetNameInfo(X509NameType.SimpleName, forIssuer: false);
        return (c2.Subject, string.IsNullOrEmpty(cn) ? null : cn);
    }
}

/// <summary>
/// The server's TLS credentials, re-read when a file of the folder changes (compared by write time and
/// length at each handshake): renewed certificates take effect for new connections without a restart. A new
/// set that does not load keeps the old one and logs an error once.
/// </summary>
internal sealed class ServerTlsCredentials
{
    private static readonly string[] Files = [TlsFiles.CaCert, TlsFiles.ServerCert, TlsFiles.ServerKey];
    private readonly NbdTlsSettings _settings;
    private readonly string _dir;
    private readonly ILogger _log;
    private readonly Lock _lock = new();
    private string _stamp;
    private string? _failedStamp;
    private Loaded _current;

    private sealed record Loaded(SslStreamCertificateContext Identity, X509Certificate2Collection? Roots);

    /// <exception cref="Exception">The files do not load (at start-up that is fatal, unlike at a reload).</exception>
    public ServerTlsCredentials(NbdTlsSettings settings, ILogger log)
    {
        _settings = settings;
        _dir = settings.CertificatesDirectory!;
        _log = log;
        _stamp = Stamp();
        _current = Load();
    }

    public bool VerifyPeer => _settings.VerifyPeer;

    public SslServerAuthenticationOptions Options()
    {
        var loaded = Current();
        var options = new SslServerAuthenticationOptions
        {
            ServerCertificateContext = loaded.Identity,
            EnabledSslProtocols = TlsCredentials.Protocols,
            // With a CA a certificate is always asked for: without verify-peer it is optional (guests need none),
            // but one that is presented must verify, and it is the identity access rules see (a site fetching).
            ClientCertificateRequired = loaded.Roots is not null,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        };
        if (loaded.Roots is not null)
        {
            options.CertificateChainPolicy = TlsCredentials.ChainPolicy(loaded.Roots);
            // A missing certificate shows as RemoteCertificateNotAvailable, a foreign CA as a chain error.
            options.RemoteCertificateValidationCallback = (_, _, _, errors) =>
                errors == SslPolicyErrors.None || (!_settings.VerifyPeer && errors == SslPolicyErrors.RemoteCertificateNotAvailable);
        }
        else
        {
            options.RemoteCertificateValidationCallback = (_, _, _, _) => true; // no CA: no client certificate is asked for
        }
        return options;
    }

    private Loaded Current()
    {
        lock (_lock)
        {
            var stamp = Stamp();
            if (stamp == _stamp || stamp == _failedStamp) return _current;
            try
            {
                _current = Load();
                _stamp = stamp;
                _failedStamp = null;
                _log.LogInformation("NBD TLS certificates reloaded from {Dir}", _dir);
            }
            catch (Exception ex)
            {
                _failedStamp = stamp;
                _log.LogError("NBD TLS certificates in {Dir} changed but do not load ({Reason}); the previous ones stay in use",
                    _dir, ex.Message);
            }
            return _current;
        }
    }

    private Loaded Load() =>
        new(TlsCredentials.LoadIdentity(_dir, TlsFiles.ServerCert, TlsFiles.ServerKey),
            _settings.VerifyPeer || File.Exists(Path.Combine(_dir, TlsFiles.CaCert)) ? TlsCredentials.LoadRoots(_dir) : null);

    private string Stamp() => string.Join('|', Files.Select(f =>
    {
        var info = new FileInfo(Path.Combine(_dir, f));
        return info.Exists ? $"{info.LastWriteTimeUtc.Ticks}:{info.Length}" : "-";
    }));
}
