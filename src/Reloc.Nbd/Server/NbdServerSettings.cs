using Reloc.Nbd.Tls;

namespace Reloc.Nbd.Server;

/// <summary>Validated, immutable settings of the NBD server.</summary>
public sealed record NbdServerSettings
{
    /// <summary>Requests one connection may have in flight before the server stops reading more
    /// (the bound that keeps the data path's queues finite).</summary>
    public int MaxInFlightPerConnection { get; init; } = 128;

    /// <summary>Largest READ/WRITE accepted (advertised as the maximum block size).</summary>
    public int MaxRequestBytes { get; init; } = 32 * 1024 * 1024;

    /// <summary>Advertised preferred block size.</summary>
    public int PreferredBlockSize { get; init; } = 4096;

    /// <summary>Largest handshake option body read; longer ones are skipped and refused with ERR_TOO_BIG.</summary>
    public int MaxOptionBytes { get; init; } = 64 * 1024;

    /// <summary>Most extents one BLOCK_STATUS reply carries.</summary>
    public int MaxExtentsPerReply { get; init; } = 4096;

    /// <summary>NBD_OPT_STARTTLS: off, allow or require, and the certificates.</summary>
    public NbdTlsSettings Tls { get; init; } = NbdTlsSettings.Disabled;

    /// <summary>A connection that has not reached the transmission phase within this time (TLS handshake
    /// included) is closed: an idle or trickling client cannot hold a connection forever.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Who may see and open which export; checked in the option phase.</summary>
    public IExportAccessPolicy ExportAccess { get; init; } = AllowAllExports.Instance;

    public NbdServerSettings Validate()
    {
        ArgumentNullException.ThrowIfNull(Tls);
        ArgumentNullException.ThrowIfNull(ExportAccess);
        Tls.Validate();
        if (HandshakeTimeout <= TimeSpan.Zero || HandshakeTimeout > TimeSpan.FromHours(1))
            throw new ArgumentOutOfRangeException(nameof(HandshakeTimeout), HandshakeTimeout, "must be more than 0 and at most 1 h");
        if (MaxInFlightPerConnection is < 1 or > 4096) throw new ArgumentOutOfRangeException(nameof(MaxInFlightPerConnection));
        if (MaxRequestBytes is < 4096 or > 256 * 1024 * 1024) throw new ArgumentOutOfRangeException(nameof(MaxRequestBytes));
        if (PreferredBlockSize < 1 || PreferredBlockSize > MaxRequestBytes || !int.IsPow2(PreferredBlockSize))
            throw new ArgumentOutOfRangeException(nameof(PreferredBlockSize));
        if (MaxOptionBytes is < 4096 or > 16 * 1024 * 1024) throw new ArgumentOutOfRangeException(nameof(MaxOptionBytes));
        if (MaxExtentsPerReply is < 1 or > 1 << 20) throw new ArgumentOutOfRangeException(nameof(MaxExtentsPerReply));
        return this;
    }
}
