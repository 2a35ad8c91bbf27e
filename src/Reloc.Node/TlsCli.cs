using System.CommandLine;
using Reloc.Nbd.Tls;

namespace Reloc.Node;

/// <summary>The server-side TLS flags <c>serve</c> and <c>proxy</c> share, named as nbdkit names them.</summary>
internal sealed class TlsCli
{
    public Option<NbdTlsMode> Mode { get; } = new("--tls")
    {
        Description = "NBD STARTTLS: off, allow (plain or TLS) or require",
        DefaultValueFactory = _ => NbdTlsMode.Off,
    };

    public Option<string?> Certificates { get; } = new("--tls-certificates")
    {
        Description = "folder with ca-cert.pem, server-cert.pem, server-key.pem (the nbdkit/QEMU layout); re-read when the files change",
    };

    public Option<bool> VerifyPeer { get; } = new("--tls-verify-peer")
    {
        Description = "require a client certificate signed by the folder's ca-cert.pem",
    };

    public void AddTo(Command command)
    {
        command.Options.Add(Mode);
        command.Options.Add(Certificates);
        command.Options.Add(VerifyPeer);
    }

    /// <exception cref="ArgumentException">An inconsistent combination, or a folder without the files.</exception>
    public NbdTlsSettings Settings(ParseResult result) =>
        new NbdTlsSettings
        {
            Mode = result.GetValue(Mode),
            CertificatesDirectory = result.GetValue(Certificates),
            VerifyPeer = result.GetValue(VerifyPeer),
        }.Validate();

    /// <summary>nbd or nbds, as clients should be told to connect.</summary>
    public static string Scheme(NbdTlsSettings tls) => tls.Mode == NbdTlsMode.Require ? "nbds" : "nbd";
}
