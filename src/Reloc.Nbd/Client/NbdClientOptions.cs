namespace Reloc.Nbd.Client;

/// <summary>Whether the client insists on TLS (libnbd's LIBNBD_TLS_DISABLE / LIBNBD_TLS_REQUIRE).</summary>
public enum NbdClientTlsMode
{
    None,
    /// <summary>STARTTLS first; a server that refuses it, or whose certificate does not verify, is not used.</summary>
    Require,
}

/// <summary>Where and how <see cref="NbdClient"/> connects. Either <see cref="Host"/> (TCP) or
/// <see cref="UnixSocketPath"/> is set.</summary>
public sealed record NbdClientOptions
{
    public string? Host { get; init; }
    public int Port { get; init; } = NbdUri.DefaultPort;
    public string? UnixSocketPath { get; init; }
    public string Export { get; init; } = "";

    /// <summary>Ask for structured replies (hole chunks save the WAN the zeros; needed for block status).</summary>
    public bool StructuredReplies { get; init; } = true;

    /// <summary>Ask for the base:allocation metadata context (block status).</summary>
    public bool BlockStatus { get; init; } = true;

    /// <summary>Send STRUCTURED_REPLY, SET_META_CONTEXT and GO in one write and read their replies after: one round
    /// trip instead of three. Off: each option waits for the previous one's reply (for a server that cannot take them
    /// pipelined; qemu-nbd, nbdkit and Reloc's own server can).</summary>
    public bool PipelineOptions { get; init; } = true;

    /// <summary>Requests one connection keeps in flight; further callers wait for a reply to free a slot.</summary>
    public int MaxInFlight { get; init; } = DefaultMaxInFlight;

    public const int DefaultMaxInFlight = 64;

    /// <summary>Upper bound on a READ/WRITE request even if the server advertises more (the spec's
    /// safe default, and what qemu and nbdkit accept).</summary>
    public int MaxRequestBytes { get; init; } = 32 << 20;

    /// <summary>Covers the TCP/Unix connect and the whole handshake.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long disposal waits for the server to answer requests in flight after NBD_CMD_DISC.</summary>
    public TimeSpan DisconnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    public NbdClientTlsMode Tls { get; init; } = NbdClientTlsMode.None;

    /// <summary>A folder in the libnbd/QEMU layout: ca-cert.pem (the only CA trusted for the server), and
    /// client-cert.pem with client-key.pem, presented when present. Null: the system's trusted CAs, no client certificate.</summary>
    public string? TlsCertificates { get; init; }

    /// <summary>Verify the server's certificate (chain, and host name unless <see cref="TlsVerifyHostname"/> is off).</summary>
    public bool TlsVerifyPeer { get; init; } = true;

    /// <summary>Check the server certificate's names against <see cref="TlsHostname"/> or <see cref="Host"/>. Over a
    /// Unix socket there is no host, so the check is made only when <see cref="TlsHostname"/> is given.</summary>
    public bool TlsVerifyHostname { get; init; } = true;

    /// <summary>The name the server certificate must carry (and the TLS SNI) instead of <see cref="Host"/>.</summary>
    public string? TlsHostname { get; init; }

    public static NbdClientOptions FromUri(string uri) => FromUri(NbdUri.Parse(uri));

    public static NbdClientOptions FromUri(NbdUri uri) =>
        new()
        {
            Host = uri.Host, Port = uri.Port, UnixSocketPath = uri.SocketPath, Export = uri.Export,
            Tls = uri.Tls ? NbdClientTlsMode.Require : NbdClientTlsMode.None, TlsCertificates = uri.TlsCertificates,
            TlsHostname = uri.TlsHostname, TlsVerifyPeer = uri.TlsVerifyPeer,
        };

    public NbdUri ToUri() => new(UnixSocketPath is null ? Host : null, Port, Export, UnixSocketPath)
    {
        Tls = Tls == NbdClientTlsMode.Require, TlsCertificates = TlsCertificates, TlsHostname = TlsHostname, TlsVerifyPeer = TlsVerifyPeer,
    };

    public NbdClientOptions Validate()
    {
        if ((Host is null) == (UnixSocketPath is null))
            throw new ArgumentException("set exactly one of Host and UnixSocketPath");
        if (Host is not null && Host.Length == 0) throw new ArgumentException("Host is empty");
        if (Port is < 1 or > 65535) throw new ArgumentOutOfRangeException(nameof(Port), Port, "must be 1..65535");
        ArgumentNullException.ThrowIfNull(Export);
        if (MaxInFlight is < 1 or > 16384) throw new ArgumentOutOfRangeException(nameof(MaxInFlight), MaxInFlight, "must be 1..16384");
        if (MaxRequestBytes < 4096 || !int.IsPow2(MaxRequestBytes))
            throw new ArgumentOutOfRangeException(nameof(MaxRequestBytes), MaxRequestBytes, "must be a power of two of at least 4096");
        if (ConnectTimeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(ConnectTimeout));
        if (DisconnectTimeout < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(DisconnectTimeout));
        if (Tls == NbdClientTlsMode.None && (TlsCertificates is not null || TlsHostname is not null))
            throw new ArgumentException("TLS certificates or host name given, but TLS is not enabled (use nbds://)");
        if (TlsCertificates is not null && !Directory.Exists(TlsCertificates))
            throw new ArgumentException($"TLS certificates directory '{TlsCertificates}' does not exist");
        return this;
    }

    public override string ToString() => ToUri().ToString();
}
