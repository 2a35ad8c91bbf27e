using System.Security.Cryptography.X509Certificates;
using Akka.Configuration;
using Akka.Event;
using Akka.Remote.Transport.DotNetty;
using Reloc.Nbd.Tls;

namespace Reloc.Actors.Security;

/// <summary>
/// Mutual TLS for Akka.Remote: each node presents its site certificate and accepts a peer (either side of a
/// connection) only if the peer's certificate chains to the site CA (that CA alone: CustomRootTrust, not the
/// system's roots) and its common name is a site's. Host names are not checked: sites address each other by
/// IP, and the CA + name rule is the identity.
/// </summary>
public static class RemotingTls
{
    private const string Plain = "akka.tcp://", Secure = "akka.ssl.tcp://";

    /// <summary>
    /// A node's configuration with DotNetty switched to TLS. Addresses then read akka.ssl.tcp://, so seed nodes
    /// written akka.tcp:// (the site files, RELOC_SEEDS) are rewritten: one cluster speaks one scheme. The
    /// certificate and its validation come with <see cref="Setup"/>, which takes precedence over HOCON's ssl section.
    /// </summary>
    public static Config Configure(Config node)
    {
        var seeds = node.GetStringList("akka.cluster.seed-nodes", [])
            .Select(s => s.StartsWith(Plain, StringComparison.Ordinal) ? Secure + s[Plain.Length..] : s)
            .Select(s => "\"" + s + "\"");
        return ConfigurationFactory.ParseString($"""
            akka.remote.dot-netty.tcp.enable-ssl = true
            akka.cluster.seed-nodes = [{string.Join(", ", seeds)}]
            """).WithFallback(node);
    }

    public static DotNettySslSetup Setup(SiteTlsSettings tls)
    {
        var certificate = X509Certificate2.CreateFromPemFile(tls.CertPath, tls.KeyPath);
        var ca = TlsCredentials.LoadRoots(tls.CertificatesDirectory); // one CA or several (during a CA change)
        return new DotNettySslSetup(certificate, suppressValidation: false, requireMutualAuthentication: true,
            validateCertificateHostname: false, customValidator: (peerCert, _, peer, _, log) => Accept(tls, ca, peerCert, peer, log));
    }

    private static bool Accept(SiteTlsSettings tls, X509Certificate2Collection ca, X509Certificate2? peerCert, string peer, ILoggingAdapter log)
    {
        var refusal = Refusal(tls, ca, peerCert);
        if (refusal is null) return true;
        log.Warning("cluster connection with {0} refused: {1}", peer, refusal);
        return false;
    }

    /// <summary>Why a peer's certificate is not a site's, or null when it is.</summary>
    public static string? Refusal(SiteTlsSettings tls, X509Certificate2Collection ca, X509Certificate2? peer)
    {
        if (peer is null) return "no certificate";
        using var chain = new X509Chain { ChainPolicy = TlsCredentials.ChainPolicy(ca) };
        if (!chain.Build(peer))
            return $"certificate '{peer.Subject}' does not chain to the site CA ({string.Join(", ", chain.ChainStatus.Select(s => s.Status))})";
        var (_, cn) = TlsCredentials.Identity(peer);
        return tls.IsSiteName(cn) ? null : $"certificate '{peer.Subject}' is from the CA but '{cn}' is not a site's name (reloc.tls.site-names)";
    }
}
