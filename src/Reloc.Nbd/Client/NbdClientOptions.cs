namespace Reloc.Nbd.Client;

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

    /// <summary>Requests one connection keeps in flight; further callers wait for a reply to free a slot.</summary>
    public int MaxInFlight { get; init; } = 64;

    /// <summary>Upper bound on a READ/WRITE request even if the server advertises more (the spec's
    /// safe default, and what qemu and nbdkit accept).</summary>
    public int MaxRequestBytes { get; init; } = 32 << 20;

    /// <summary>Covers the TCP/Unix connect and the whole handshake.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long disposal waits for the server to answer requests in flight after NBD_CMD_DISC.</summary>
    public TimeSpan DisconnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    public static NbdClientOptions FromUri(string uri) => FromUri(NbdUri.Parse(uri));

    public static NbdClientOptions FromUri(NbdUri uri) =>
        new() { Host = uri.Host, Port = uri.Port, UnixSocketPath = uri.SocketPath, Export = uri.Export };

    public NbdUri ToUri() => new(UnixSocketPath is null ? Host : null, Port, Export, UnixSocketPath);

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
        return this;
    }

    public override string ToString() => ToUri().ToString();
}
