namespace Reloc.Nbd.Tls;

/// <summary>Whether the NBD server offers NBD_OPT_STARTTLS (nbdkit's and qemu-nbd's --tls values).</summary>
public enum NbdTlsMode
{
    /// <summary>No TLS: STARTTLS is refused with NBD_REP_ERR_POLICY.</summary>
    Off,
    /// <summary>Plain and TLS clients are both served.</summary>
    Allow,
    /// <summary>Every option but ABORT before STARTTLS is refused with NBD_REP_ERR_TLS_REQD.</summary>
    Require,
}

/// <summary>Validated TLS settings of the NBD server.</summary>
public sealed record NbdTlsSettings
{
    public static NbdTlsSettings Disabled { get; } = new();

    public NbdTlsMode Mode { get; init; } = NbdTlsMode.Off;

    /// <summary>A folder in the nbdkit/QEMU layout: ca-cert.pem, server-cert.pem, server-key.pem. Files are
    /// re-read when they change, so certificates can be renewed without a restart.</summary>
    public string? CertificatesDirectory { get; init; }

    /// <summary>Require a client certificate signed by ca-cert.pem (and only by it).</summary>
    public bool VerifyPeer { get; init; }

    public bool Enabled => Mode != NbdTlsMode.Off;

    public NbdTlsSettings Validate()
    {
        if (!Enabled)
        {
            if (VerifyPeer) throw new ArgumentException("TLS verify-peer needs TLS mode allow or require");
            return this;
        }
        if (string.IsNullOrWhiteSpace(CertificatesDirectory))
            throw new ArgumentException($"TLS mode {Mode} needs a certificates directory");
        if (!Directory.Exists(CertificatesDirectory))
            throw new ArgumentException($"TLS certificates directory '{CertificatesDirectory}' does not exist");
        foreach (var file in VerifyPeer
                     ? new[] { TlsFiles.ServerCert, TlsFiles.ServerKey, TlsFiles.CaCert }
                     : [TlsFiles.ServerCert, TlsFiles.ServerKey])
        {
            if (!File.Exists(Path.Combine(CertificatesDirectory, file)))
                throw new ArgumentException($"TLS certificates directory '{CertificatesDirectory}' has no {file}");
        }
        return this;
    }
}

/// <summary>File names of the nbdkit/QEMU/libnbd certificates folder.</summary>
public static class TlsFiles
{
    public const string CaCert = "ca-cert.pem";
    public const string ServerCert = "server-cert.pem";
    public const string ServerKey = "server-key.pem";
    public const string ClientCert = "client-cert.pem";
    public const string ClientKey = "client-key.pem";
}
