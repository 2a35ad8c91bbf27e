namespace Reloc.Nbd.Client;

/// <summary>Validated settings of a <see cref="PeerConnectionPool"/>.</summary>
public sealed record PeerPoolSettings
{
    /// <summary>Connections kept parked (one per lane a relocation opens: guest misses and the background copy).</summary>
    public int Parked { get; init; } = 2;

    /// <summary>A parked connection is retired at this age, well before the server's handshake timeout (Reloc's: 10 s)
    /// closes it; its replacement is opened at <see cref="PeerPoolCore.RenewFraction"/> of it.</summary>
    public TimeSpan MaxAge { get; init; } = TimeSpan.FromSeconds(5);

    public PeerPoolSettings Validate()
    {
        if (Parked is < 1 or > 16) throw new ArgumentOutOfRangeException(nameof(Parked), Parked, "must be 1..16");
        if (MaxAge <= TimeSpan.Zero || MaxAge > TimeSpan.FromMinutes(1))
            throw new ArgumentOutOfRangeException(nameof(MaxAge), MaxAge, "must be more than 0 and at most 1 min");
        return this;
    }
}

/// <summary>
/// The decisions of a <see cref="PeerConnectionPool"/>, pure: which parked connections to retire, how many to open,
/// when to look again, and which one a take gets.
/// </summary>
public static class PeerPoolCore
{
    /// <summary>A parked connection is renewed (a replacement opened) at this fraction of the max age, so that one is
    /// parked while the old one is retired: a take in between finds one.</summary>
    public const double RenewFraction = 0.75;

    /// <summary>Even with nothing due, the pool looks at least this often: a parked connection the server closed
    /// (a restarted peer) is noticed and replaced.</summary>
    public static readonly TimeSpan LookEvery = TimeSpan.FromSeconds(1);

    public static readonly TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(200);
    public static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(10);

    /// <summary>One parked connection as the pool sees it.</summary>
    public readonly record struct Parked(TimeSpan Age, bool Closed);

    /// <param name="Retire">Indexes (into the parked list given) to retire: NBD_OPT_ABORT and close.</param>
    /// <param name="Open">Connections to open and park now.</param>
    /// <param name="LookIn">When to decide again (sooner if a take or an open that ends wakes the pool).</param>
    public sealed record Decision(IReadOnlyList<int> Retire, int Open, TimeSpan LookIn);

    /// <param name="opening">Connections being opened now.</param>
    /// <param name="failures">Opens that failed in a row (0 after one succeeds).</param>
    /// <param name="sinceFailure">Since the last of them failed.</param>
    public static Decision Decide(IReadOnlyList<Parked> parked, int opening, int failures, TimeSpan sinceFailure, PeerPoolSettings settings)
    {
        var renewAt = settings.MaxAge * RenewFraction;
        var retire = new List<int>();
        int fresh = 0, kept = 0;
        var lookIn = LookEvery;
        for (int i = 0; i < parked.Count; i++)
        {
            var p = parked[i];
            if (p.Closed || p.Age >= settings.MaxAge)
            {
                retire.Add(i);
                continue;
            }
            kept++;
            if (p.Age < renewAt)
            {
                fresh++;
                lookIn = Min(lookIn, renewAt - p.Age);
            }
            else lookIn = Min(lookIn, settings.MaxAge - p.Age);
        }
        // Bounded: parked and opening together never pass twice the target (old ones being renewed, and their replacements).
        int open = Math.Max(0, Math.Min(settings.Parked - fresh - opening, 2 * settings.Parked - kept - opening));
        if (open > 0 && failures > 0)
        {
            var wait = Backoff(failures) - sinceFailure;
            if (wait > TimeSpan.Zero)
            {
                open = 0;
                lookIn = Min(lookIn, wait);
            }
            else open = Math.Min(open, 1); // a peer that was failing gets one try at a time
        }
        return new Decision(retire, open, lookIn);
    }

    /// <summary>The delay after <paramref name="failures"/> failed opens in a row: 200 ms doubling up to 10 s.</summary>
    public static TimeSpan Backoff(int failures) =>
        failures <= 0 ? TimeSpan.Zero : Min(MaxBackoff, FirstBackoff * Math.Pow(2, Math.Min(failures - 1, 16)));

    /// <summary>Which parked connection a take gets: the oldest still usable (so the younger last longer), or -1.</summary>
    public static int PickForTake(IReadOnlyList<Parked> parked, PeerPoolSettings settings)
    {
        int pick = -1;
        for (int i = 0; i < parked.Count; i++)
        {
            var p = parked[i];
            if (p.Closed || p.Age >= settings.MaxAge) continue;
            if (pick < 0 || p.Age > parked[pick].Age) pick = i;
        }
        return pick;
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;
}
