using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Reloc.Nbd.Client;

namespace Reloc.Nbd.Tls;

/// <summary>The client's side of STARTTLS, read from the folder at every connect (a reconnect picks up renewed files).</summary>
internal static class ClientTls
{
    public static SslClientAuthenticationOptions Options(NbdClientOptions options)
    {
        var dir = options.TlsCertificates;
        bool checkName = options.TlsVerifyHostname && (options.TlsHostname is not null || options.UnixSocketPath is null);
        var result = new SslClientAuthenticationOptions
        {
            TargetHost = options.TlsHostname ?? options.Host ?? "localhost",
            EnabledSslProtocols = TlsCredentials.Protocols,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            RemoteCertificateValidationCallback = (_, _, _, errors) =>
            {
                if (!options.TlsVerifyPeer) return true;
                if (!checkName) errors &= ~SslPolicyErrors.RemoteCertificateNameMismatch;
                return errors == SslPolicyErrors.None;
            },
        };
        if (dir is null) return result;
        if (File.Exists(Path.Combine(dir, TlsFiles.CaCert)))
            result.CertificateChainPolicy = TlsCredentials.ChainPolicy(TlsCredentials.LoadRoots(dir));
        if (File.Exists(Path.Combine(dir, TlsFiles.ClientCert)) && File.Exists(Path.Combine(dir, TlsFiles.ClientKey)))
            result.ClientCertificateContext = TlsCredentials.LoadIdentity(dir, TlsFiles.ClientCert, TlsFiles.ClientKey);
        return result;
    }
}
