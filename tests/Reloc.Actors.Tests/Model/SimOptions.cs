namespace Reloc.Actors.Tests.Model;

/// <summary>How hostile one run is; drawn from the seed (<see cref="Draw"/>) unless a test fixes it.</summary>
internal sealed record SimOptions
{
    public int Sites { get; init; } = 3;
    public int Blocks { get; init; } = 4;
    /// <summary>Akka remoting keeps the order of messages between two nodes and never duplicates one;
    /// false: any message may overtake any other (and be duplicated).</summary>
    public bool FifoPerPair { get; init; } = true;
    public double Drop { get; init; }
    public double Duplicate { get; init; }
    /// <summary>Chance that a message is held for a long time (a stalled connection).</summary>
    public double LongDelay { get; init; }
    public double CrashPerSecond { get; init; }
    public double FailoverPerSecond { get; init; }
    public double PartitionPerSecond { get; init; }
    /// <summary>A coordinator that lost its role keeps running for a while (split brain): data safety must not depend on the SBR.</summary>
    public bool Zombies { get; init; }
    public long ChaosMs { get; init; } = 30_000;
    public long QuiesceMs { get; init; } = 240_000;
    /// <summary>The operator ends relocations left when the faults stop by cancelling (else by asking for the handover).</summary>
    public bool CancelAtEnd { get; init; }
    /// <summary>The guest's mean think time between requests.</summary>
    public int GuestThinkMs { get; init; } = 40;
    /// <summary>How often the operator starts a relocation when none is under way.</summary>
    public int RelocateEveryMs { get; init; } = 3_000;

    /// <summary>Blocks that are holes in the initial image (a sparse disk: version 0, reported zero by BLOCK_STATUS).</summary>
    public IReadOnlySet<int> Holes { get; init; } = new HashSet<int>();

    /// <summary>The initial image: version 1 where it holds data, 0 in its holes.</summary>
    public int InitialVersion(int block) => Holes.Contains(block) ? 0 : 1;

    /// <summary>false: no VM uses the disk (an idle disk).</summary>
    public bool GuestRuns { get; init; } = true;

    /// <summary>The VM migrates (as QEMU does) when a relocation of its disk is under way.</summary>
    public bool GuestMigrates { get; init; } = true;

    /// <summary>A directed scenario: no random operator, faults or losses; these actions at these times instead.</summary>
    public IReadOnlyList<(long AtMs, Action<Sim> Action)>? Script { get; init; }

    /// <summary>A directed scenario's hand on the network: for a message (from node, to node, body) the delays
    /// (ms) of the copies to deliver, or null for the usual behaviour.</summary>
    public Func<Sim, string, string, object, IReadOnlyList<long>?>? Intercept { get; init; }

    /// <summary>A directed scenario's hand on a destination: called when a disk actor has journaled
    /// RelocationCompleted, before its site hears of it (the scenario may crash the site there).</summary>
    public Action<Sim, SiteModel>? AfterDiskComplete { get; init; }

    /// <summary>A directed scenario's fixed fdatasync latency (ms) instead of the random one.</summary>
    public long? FlushMs { get; init; }

    public static SimOptions Draw(int seed)
    {
        var r = new Random(unchecked(seed * 7919 + 17));
        bool adversarial = r.Next(3) == 0; // one seed in three: reordering within a pair and duplicates
        return new SimOptions
        {
            Sites = r.Next(4) == 0 ? 2 : 3,
            Blocks = 2 + r.Next(4),
            FifoPerPair = !adversarial,
            Drop = r.Next(4) == 0 ? 0 : r.NextDouble() * 0.15,
            Duplicate = adversarial ? r.NextDouble() * 0.1 : 0,
            LongDelay = r.Next(3) == 0 ? 0 : r.NextDouble() * 0.05,
            CrashPerSecond = r.Next(4) == 0 ? 0 : r.NextDouble() * 0.3,
            FailoverPerSecond = r.Next(4) == 0 ? 0 : r.NextDouble() * 0.2,
            PartitionPerSecond = r.Next(4) == 0 ? 0 : r.NextDouble() * 0.2,
            Zombies = r.Next(5) == 0,
            CancelAtEnd = r.Next(3) == 0,
            GuestThinkMs = 10 + r.Next(60),
            RelocateEveryMs = 500 + r.Next(4000),
            Holes = DrawHoles(seed),
            GuestRuns = new Random(unchecked(seed * 13 + 3)).Next(8) != 0, // its own generator, like the holes
        };
    }

    /// <summary>Half the seeds start from a sparse disk, each block a hole with even chance (a generator of its
    /// own, so the other options of a seed stay what they were).</summary>
    private static HashSet<int> DrawHoles(int seed)
    {
        var r = new Random(unchecked(seed * 31 + 5));
        return r.Next(2) == 0 ? [] : Enumerable.Range(0, 6).Where(_ => r.Next(2) == 0).ToHashSet();
    }

    public override string ToString() =>
        $"sites={Sites} blocks={Blocks} fifo={FifoPerPair} drop={Drop:0.###} dup={Duplicate:0.###} long={LongDelay:0.###} " +
        $"crash/s={CrashPerSecond:0.###} failover/s={FailoverPerSecond:0.###} partition/s={PartitionPerSecond:0.###} zombies={Zombies} cancelAtEnd={CancelAtEnd}" +
        $" holes=[{string.Join(",", Holes.Order())}]{(GuestRuns ? "" : " no guest")}";
}
