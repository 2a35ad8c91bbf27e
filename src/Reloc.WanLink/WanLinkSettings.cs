namespace Reloc.Wan;

/// <summary>The two directions of a relayed connection.</summary>
public enum WanDirection
{
    /// <summary>From the side that connected to the link towards the link's target.</summary>
    ToTarget,

    /// <summary>From the target back to the side that connected.</summary>
    ToClient,
}

/// <summary>
/// What a <see cref="WanLink"/> emulates, per direction: a propagation delay, a bottleneck rate shared
/// by every connection going that way, and the bottleneck's queue. Immutable; every property checks its
/// value when set, so an instance is always valid.
/// </summary>
public sealed record WanLinkSettings
{
    public static readonly TimeSpan DefaultQueueDuration = TimeSpan.FromMilliseconds(100);

    private static readonly TimeSpan MaxDelay = TimeSpan.FromMinutes(10);
    private static readonly TimeSpan MaxQueueDuration = TimeSpan.FromMinutes(1);

    public WanLinkSettings()
    {
    }

    public WanLinkSettings(TimeSpan rtt, long rateBytesPerSecond, TimeSpan queueDuration)
    {
        Rtt = rtt;
        RateBytesPerSecond = rateBytesPerSecond;
        QueueDuration = queueDuration;
    }

    /// <summary>Round-trip propagation delay; each direction gets half of it unless set on its own.</summary>
    public TimeSpan Rtt { get; init => field = Delay(value, nameof(Rtt)); }

    /// <summary>Bottleneck rate of each direction in bytes per second; 0 means unlimited.</summary>
    public long RateBytesPerSecond
    {
        get;
        init => field = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(RateBytesPerSecond), value, "must not be negative (0 = unlimited)");
    }

    /// <summary>Bottleneck queue size as time at the link rate (so it follows <see cref="WanLink.SetRate(long)"/>).</summary>
    public TimeSpan QueueDuration
    {
        get;
        init => field = value > TimeSpan.Zero && value <= MaxQueueDuration
            ? value
            : throw new ArgumentOutOfRangeException(nameof(QueueDuration), value, $"must be above 0 and at most {MaxQueueDuration}");
    } = DefaultQueueDuration;

    /// <summary>Bottleneck queue size in bytes; when set it replaces <see cref="QueueDuration"/>.</summary>
    public long? QueueBytes
    {
        get;
        init => field = value is null or > 0 ? value : throw new ArgumentOutOfRangeException(nameof(QueueBytes), value, "must be positive");
    }

    /// <summary>One-way delay towards the target; null means half the <see cref="Rtt"/>.</summary>
    public TimeSpan? ToTargetDelay { get; init => field = value is { } v ? Delay(v, nameof(ToTargetDelay)) : null; }

    /// <summary>One-way delay back to the client; null means half the <see cref="Rtt"/>.</summary>
    public TimeSpan? ToClientDelay { get; init => field = value is { } v ? Delay(v, nameof(ToClientDelay)) : null; }

    public TimeSpan DelayOf(WanDirection direction) =>
        (direction == WanDirection.ToTarget ? ToTargetDelay : ToClientDelay) ?? Rtt / 2;

    /// <summary>The queue bound in bytes at <paramref name="rateBytesPerSecond"/> (0 when unlimited and given as time).</summary>
    public long QueueLimitBytes(long rateBytesPerSecond) =>
        QueueBytes ?? (long)((Int128)rateBytesPerSecond * QueueDuration.Ticks / TimeSpan.TicksPerSecond);

    /// <summary>
    /// Reads a command-line description such as "rtt=50ms rate=40MB/s queue=100ms" (keys separated by
    /// spaces or commas). Keys: rtt, rate, queue (a duration or a size), delay-to-target, delay-to-client.
    /// Keys left out keep their defaults.
    /// </summary>
    public static WanLinkSettings Parse(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var settings = new WanLinkSettings();
        foreach (var item in spec.Split([' ', ',', '\t'], StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = item.IndexOf('=');
            if (eq <= 0) throw new FormatException($"'{item}' in '{spec}' is not key=value (e.g. rtt=50ms rate=40MB/s queue=100ms)");
            var (key, value) = (item[..eq], item[(eq + 1)..]);
            try
            {
                settings = key switch
                {
                    "rtt" => settings with { Rtt = Units.ParseDuration(value) },
                    "rate" => settings with { RateBytesPerSecond = Units.ParseRate(value) },
                    "queue" when Units.LooksLikeDuration(value) => settings with { QueueDuration = Units.ParseDuration(value), QueueBytes = null },
                    "queue" => settings with { QueueBytes = Units.ParseSize(value) },
                    "delay-to-target" => settings with { ToTargetDelay = Units.ParseDuration(value) },
                    "delay-to-client" => settings with { ToClientDelay = Units.ParseDuration(value) },
                    _ => throw new FormatException($"unknown key '{key}' in '{spec}' (keys: rtt, rate, queue, delay-to-target, delay-to-client)"),
                };
            }
            catch (ArgumentOutOfRangeException ex)
            {
                throw new FormatException($"'{item}' is out of range: {ex.Message}", ex);
            }
        }
        return settings;
    }

    /// <summary>The same form <see cref="Parse"/> reads, e.g. "rtt=50ms rate=40MB/s queue=100ms".</summary>
    public override string ToString()
    {
        var parts = new List<string> { $"rtt={Units.FormatDuration(Rtt)}", $"rate={Units.FormatRate(RateBytesPerSecond).Replace(" ", "")}" };
        parts.Add(QueueBytes is { } b ? $"queue={Units.FormatSize(b).Replace(" ", "")}" : $"queue={Units.FormatDuration(QueueDuration)}");
        if (ToTargetDelay is { } t) parts.Add($"delay-to-target={Units.FormatDuration(t)}");
        if (ToClientDelay is { } c) parts.Add($"delay-to-client={Units.FormatDuration(c)}");
        return string.Join(' ', parts);
    }

    private static TimeSpan Delay(TimeSpan value, string name) =>
        value >= TimeSpan.Zero && value <= MaxDelay
            ? value
            : throw new ArgumentOutOfRangeException(name, value, $"must be between 0 and {MaxDelay}");
}
