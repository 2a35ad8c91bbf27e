namespace Reloc.Actors.Disk;

/// <summary>Validated, immutable settings of one relocating disk (defaults in reference.conf, reloc.disk).</summary>
public sealed record DiskSettings
{
    /// <summary>Relocation granularity: the unit of the bitmap, of on-demand fetches and of persistence.</summary>
    public int BlockSize { get; init; } = 64 * 1024;

    /// <summary>How long a guest request waits for missing blocks while the source is unreachable before EIO.</summary>
    public TimeSpan MissTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Background copy on or off.</summary>
    public bool Prefetch { get; init; } = true;

    /// <summary>Background copy rate cap in bytes/s; 0 = none (it still yields to guest misses).</summary>
    public long RateBytesPerSecond { get; init; }

    /// <summary>Background read size until the link's rate is known, and the window's unit (max-prefetch-window counts these).</summary>
    public int PrefetchChunkBytes { get; init; } = 128 * 1024;

    /// <summary>Bounds of the background read size once the rate is known (powers of two): about
    /// <see cref="PrefetchReadTime"/> of the rate, coalescing runs of missing blocks up to it.</summary>
    public int PrefetchChunkMinBytes { get; init; } = 128 * 1024;
    public int PrefetchChunkMaxBytes { get; init; } = 4 << 20;

    /// <summary>The read-size bounds in force: never below one block (a larger block-size raises both).</summary>
    public ReadSizing ReadSizing => new(Math.Max(PrefetchChunkMinBytes, BlockSize), Math.Max(PrefetchChunkMaxBytes, BlockSize), PrefetchReadTime);

    /// <summary>A background read's time on the wire at the measured rate: what a guest miss waits behind one.</summary>
    public TimeSpan PrefetchReadTime { get; init; } = TimeSpan.FromMilliseconds(2);

    /// <summary>The queue target while guest misses arrive (at most <see cref="PrefetchQueueTarget"/>).</summary>
    public TimeSpan PrefetchMissQueueTarget { get; init; } = TimeSpan.FromMilliseconds(1);

    /// <summary>Connections the background copy spreads its reads over. The source serves one connection's reads one
    /// after another; a second lets it read and send two at once, which a fast, low-RTT path can use.</summary>
    public int PrefetchConnections { get; init; } = 1;

    /// <summary>Upper bound on background reads in flight (the controller picks fewer when enough).</summary>
    public int MaxPrefetchWindow { get; init; } = 256;

    /// <summary>Background reads in flight before the first completion: the controller's startup doubles from here.</summary>
    public int PrefetchInitialWindow { get; init; } = 8;

    /// <summary>The first window of background reads goes out with the scan of the source's holes rather than after
    /// its answer (one round trip sooner; at worst one window of holes is read).</summary>
    public bool PrefetchBeforeScan { get; init; } = true;

    /// <summary>Queueing delay the background copy may add at the bottleneck (LEDBAT-style target):
    /// above it the window shrinks, so guest misses never wait long behind background data.</summary>
    public TimeSpan PrefetchQueueTarget { get; init; } = TimeSpan.FromMilliseconds(5);

    /// <summary>How often landed blocks are made durable (fdatasync, then one journal write) without a FLUSH.</summary>
    public TimeSpan PersistInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Events between snapshots of the block map.</summary>
    public int SnapshotEvery { get; init; } = 500;

    /// <summary>A disk actor that stopped or failed is created again after a backoff between these.</summary>
    public TimeSpan RestartBackoffMin { get; init; } = TimeSpan.FromSeconds(1);
    public TimeSpan RestartBackoffMax { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Fault injection, for fault campaigns only (reloc.disk.fault-injection.fsync-delay): every fdatasync of
    /// a disk image at this site waits this long first, as a slow disk would. Zero (off) in production.</summary>
    public TimeSpan FaultFsyncDelay { get; init; }

    public DiskSettings Validate()
    {
        if (FaultFsyncDelay < TimeSpan.Zero || FaultFsyncDelay > TimeSpan.FromSeconds(60))
            throw new ArgumentOutOfRangeException(nameof(FaultFsyncDelay), "fault-injection.fsync-delay must be between 0s (off) and 60s");
        if (BlockSize < 4096 || BlockSize > 16 << 20 || !int.IsPow2(BlockSize))
            throw new ArgumentOutOfRangeException(nameof(BlockSize), "block size must be a power of two from 4 KiB to 16 MiB");
        if (MissTimeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(MissTimeout));
        if (RateBytesPerSecond < 0) throw new ArgumentOutOfRangeException(nameof(RateBytesPerSecond));
        if (PrefetchChunkBytes < BlockSize || PrefetchChunkBytes > 32 << 20)
            throw new ArgumentOutOfRangeException(nameof(PrefetchChunkBytes), "prefetch chunk must be between the block size and 32 MiB");
        if (PrefetchChunkMinBytes < 4096 || !int.IsPow2(PrefetchChunkMinBytes) || PrefetchChunkMaxBytes > 32 << 20
            || !int.IsPow2(PrefetchChunkMaxBytes) || PrefetchChunkMaxBytes < PrefetchChunkMinBytes)
            throw new ArgumentOutOfRangeException(nameof(PrefetchChunkMaxBytes),
                "prefetch-chunk-min and prefetch-chunk-max must be powers of two, 4 KiB <= min <= max <= 32 MiB");
        if (PrefetchReadTime <= TimeSpan.Zero || PrefetchReadTime > TimeSpan.FromSeconds(1))
            throw new ArgumentOutOfRangeException(nameof(PrefetchReadTime), "prefetch-read-time must be between 0 (excluded) and 1s");
        if (PrefetchMissQueueTarget <= TimeSpan.Zero || PrefetchMissQueueTarget > PrefetchQueueTarget)
            throw new ArgumentOutOfRangeException(nameof(PrefetchMissQueueTarget), "prefetch-miss-queue-target must be above 0 and at most prefetch-queue-target");
        if (PrefetchConnections is < 1 or > 8) throw new ArgumentOutOfRangeException(nameof(PrefetchConnections), "prefetch-connections must be 1..8");
        if (MaxPrefetchWindow is < 1 or > 1024) throw new ArgumentOutOfRangeException(nameof(MaxPrefetchWindow));
        if (PrefetchInitialWindow < 1 || PrefetchInitialWindow > MaxPrefetchWindow)
            throw new ArgumentOutOfRangeException(nameof(PrefetchInitialWindow), "prefetch-initial-window must be between 1 and max-prefetch-window");
        if (PrefetchQueueTarget <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(PrefetchQueueTarget));
        if (PersistInterval <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(PersistInterval));
        if (SnapshotEvery < 1) throw new ArgumentOutOfRangeException(nameof(SnapshotEvery));
        if (RestartBackoffMin <= TimeSpan.Zero || RestartBackoffMax < RestartBackoffMin)
            throw new ArgumentOutOfRangeException(nameof(RestartBackoffMax), "restart backoff: 0 < min <= max");
        return this;
    }
}
