using Reloc.Nbd.Server;
using Reloc.Nbd.Tls;
using Reloc.Testing;

namespace Reloc.Nbd.Tests.Support;

/// <summary>Two throwaway CAs and the certificate folders the TLS tests hand to servers and clients.</summary>
public sealed class TlsFixture : IDisposable
{
    public TestPki Ca { get; } = TestPki.Create("Reloc test CA");
    public TestPki OtherCa { get; } = TestPki.Create("Another CA");

    /// <summary>CA, server pair (localhost, 127.0.0.1) and client pair (CN "client"), all from <see cref="Ca"/>.</summary>
    public string Good { get; }

    /// <summary>The same layout from <see cref="OtherCa"/>.</summary>
    public string Other { get; }

    /// <summary>Trusts <see cref="Ca"/> but has no client certificate.</summary>
    public string NoClientCert { get; }

    /// <summary>Trusts <see cref="Ca"/> but presents a client certificate from <see cref="OtherCa"/>.</summary>
    public string WrongCaClient { get; }

    public TlsFixture()
    {
        Good = Ca.Folder("good");
        Other = OtherCa.Folder("other");
        NoClientCert = Path.Combine(Ca.Root, "no-client-cert");
        Directory.CreateDirectory(NoClientCert);
        File.Copy(Ca.CaCert, Path.Combine(NoClientCert, TlsFiles.CaCert));
        WrongCaClient = Path.Combine(Ca.Root, "wrong-ca-client");
        Directory.CreateDirectory(WrongCaClient);
        File.Copy(Ca.CaCert, Path.Combine(WrongCaClient, TlsFiles.CaCert));
        File.Copy(Path.Combine(Other, TlsFiles.ClientCert), Path.Combine(WrongCaClient, TlsFiles.ClientCert));
        File.Copy(Path.Combine(Other, TlsFiles.ClientKey), Path.Combine(WrongCaClient, TlsFiles.ClientKey));
    }

    public static NbdServerSettings Settings(NbdTlsMode mode, string dir, bool verifyPeer = false, IExportAccessPolicy? access = null) =>
        new()
        {
            Tls = new NbdTlsSettings { Mode = mode, CertificatesDirectory = dir, VerifyPeer = verifyPeer },
            ExportAccess = access ?? AllowAllExports.Instance,
        };

    public static async Task<(TestServer Server, LogCapture Log)> StartAsync(NbdServerSettings settings, long size = 8 << 20)
    {
        var log = new LogCapture();
        var server = await TestServer.StartAsync(size, roContent: Tool.RandomBytes(1 << 20, 3), settings: settings, loggers: log);
        return (server, log);
    }

    public static string Nbds(int port, string dir, string export = "disk") => $"nbds://127.0.0.1:{port}/{export}?tls-certificates={dir}";

    /// <summary>nbdinfo over TLS succeeds: the server still serves good clients.</summary>
    public async Task AssertServesAsync(int port, string? dir = null, string export = "disk")
    {
        var r = await Tool.RunAsync("nbdinfo", Nbds(port, dir ?? Good, export));
        Xunit.Assert.True(r.ExitCode == 0, $"a good TLS client was not served: {r}");
        Xunit.Assert.Contains("export-size", r.StdOut);
    }

    public void Dispose()
    {
        Ca.Dispose();
        OtherCa.Dispose();
    }
}
