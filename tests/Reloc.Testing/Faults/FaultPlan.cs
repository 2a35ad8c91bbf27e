namespace Reloc.Testing.Faults;

/// <summary>The faults of the campaign: one per run.</summary>
/// <remarks><see cref="ClusterBlackHole"/> is last and a seed never draws it (only <c>--fault ClusterBlackHole</c> runs it):
/// the seeds run before it existed still name the same plans.</remarks>
public enum FaultKind { KillSource, KillDestination, KillCoordinator, BlackHole, DiskFull, SlowFsync, ClusterBlackHole }

/// <summary>When in the relocation the fault strikes: pre-copy under way, just after the guest moved to the
/// destination (the handover), during post-copy; a slow fsync lasts from the start.</summary>
public enum FaultPoint { Start, Serving, Handover, Postcopy }

/// <summary>
/// Everything a run decides at random, drawn from its seed alone, so a seed names the run (replayed with
/// <c>--seed</c>; what the processes and the scheduler do with it still varies). The source and destination are
/// sites b and c (in either order): site a starts first, so the coordinator singleton lives there, and killing
/// it is a fault of its own.
/// </summary>
public sealed record FaultPlan(int Seed, FaultKind Kind, FaultPoint Point, TimeSpan Delay, TimeSpan Duration, char Source, char Destination, int GuestSeed,
    bool CutSource = false)
{
    /// <summary>The kinds a seed draws from (all but <see cref="FaultKind.ClusterBlackHole"/>).</summary>
    public const int DrawnKinds = (int)FaultKind.ClusterBlackHole;

    public static FaultPlan From(int seed, FaultKind? kind = null)
    {
        var rng = new Random(seed);
        var k = (FaultKind)rng.Next(DrawnKinds);
        var source = rng.Next(2) == 0 ? 'b' : 'c';
        var point = (FaultPoint)rng.Next(1, 4);
        var delay = TimeSpan.FromMilliseconds(rng.Next(0, 1500));
        var down = TimeSpan.FromMilliseconds(rng.Next(0, 3000)); // how long a killed site stays down
        var hole = TimeSpan.FromSeconds(rng.Next(5, 61));
        var full = TimeSpan.FromSeconds(rng.Next(5, 16));
        var guestSeed = rng.Next();
        var cutSource = rng.Next(2) == 0; // drawn last: the draws above are those of the seeds before it
        k = kind ?? k;
        (point, delay, var duration) = k switch
        {
            FaultKind.BlackHole or FaultKind.ClusterBlackHole => (FaultPoint.Handover, TimeSpan.FromMilliseconds(delay.TotalMilliseconds / 3), hole),
            FaultKind.SlowFsync => (FaultPoint.Start, TimeSpan.Zero, TimeSpan.Zero),
            FaultKind.DiskFull => (point, delay, full),
            _ => (point, delay, down),
        };
        return new FaultPlan(seed, k, point, delay, duration, source, source == 'b' ? 'c' : 'b', guestSeed, k == FaultKind.ClusterBlackHole && cutSource);
    }

    /// <summary>The site the fault strikes (for <see cref="FaultKind.ClusterBlackHole"/>: the end cut from the cluster).</summary>
    public char Target => Kind switch
    {
        FaultKind.KillSource => Source,
        FaultKind.ClusterBlackHole when CutSource => Source,
        FaultKind.KillCoordinator => 'a',
        _ => Destination,
    };

    public override string ToString() =>
        $"{Kind} at {Point}+{Delay.TotalMilliseconds:0}ms for {Duration.TotalSeconds:0.#}s, site-{Source} -> site-{Destination}" +
        (Kind == FaultKind.ClusterBlackHole ? $", cut site-{Target}" : "");
}
