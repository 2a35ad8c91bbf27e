using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Reloc.Nbd.Tls;

/// <summary>
/// A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, written in the nbdkit/QEMU folder
/// layout: only for <see cref="NbdWarmUp"/>'s TLS pass, which needs both ends to check a chain as sites do. ECDSA
/// P-256 keys (made in microseconds, unlike RSA's), valid for an hour, never trusted by anything but that pass.
/// </summary>
internal static class WarmUpPki
{
    public static void Write(string dir)
    {
        var now = DateTimeOffset.UtcNow;
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=reloc warm-up CA", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        using var ca = caRequest.CreateSelfSigned(now.AddMinutes(-5), now.AddHours(1));
        File.WriteAllText(Path.Combine(dir, TlsFiles.CaCert), ca.ExportCertificatePem());

        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        names.AddDnsName("localhost");
        Issue(dir, ca, "CN=reloc warm-up server", names.Build(), TlsFiles.ServerCert, TlsFiles.ServerKey, now, serial: 1,
            new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")); // server and client auth, as a site's certificate
        Issue(dir, ca, "CN=reloc warm-up client", null, TlsFiles.ClientCert, TlsFiles.ClientKey, now, serial: 2,
            new Oid("1.3.6.1.5.5.7.3.2"));
    }

    private static void Issue(string dir, X509Certificate2 ca, string subject, X509Extension? names, string certFile, string keyFile,
        DateTimeOffset now, byte serial, params Oid[] usages)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([.. usages], false));
        if (names is not null) request.CertificateExtensions.Add(names);
        using var cert = request.Create(ca, now.AddMinutes(-5), now.AddHours(1), [serial]);
        File.WriteAllText(Path.Combine(dir, certFile), cert.ExportCertificatePem());
        File.WriteAllText(Path.Combine(dir, keyFile), key.ExportPkcs8PrivateKeyPem());
    }
}
