namespace Reloc.Actors.Coordinator;

/// <summary>A link budget set at run time, as the two sites of its pair remember it (0: no budget, which overrides
/// reloc.links too). <paramref name="Stamp"/> orders the sets of every coordinator that ever ran (<see cref="LinkMemory.NextStamp"/>).</summary>
public sealed record RememberedBudget(LinkPair Pair, long BandwidthBytesPerSecond, long Stamp)
{
    public override string ToString() => $"{Pair} {(BandwidthBytesPerSecond == 0 ? "none" : $"{BandwidthBytesPerSecond} B/s")} @{Stamp}";
}

/// <summary>
/// The rules that make a budget set at run time outlive the coordinator that set it (pure; the coordinator and the
/// sites both decide by them). The coordinator holds no authority: a set is stored at both sites of its pair, each
/// keeps the newest per pair, and a coordinator adopts, per pair, the newest the sites report (last writer wins).
/// </summary>
public static class LinkMemory
{
    /// <summary>Whether <paramref name="candidate"/> replaces <paramref name="held"/>: a later stamp wins; equal stamps
    /// (two coordinators in the same tick, which only a split brain makes) go to the larger budget, so that every
    /// site and coordinator picks the same one whatever order they heard them in.</summary>
    public static bool Supersedes(RememberedBudget candidate, RememberedBudget? held) =>
        held is null || candidate.Stamp > held.Stamp
        || (candidate.Stamp == held.Stamp && candidate.BandwidthBytesPerSecond > held.BandwidthBytesPerSecond);

    /// <summary>The stamp of a new set: the clock's ticks, but above every stamp this coordinator has seen, so a set
    /// by a coordinator whose clock is behind its predecessor's still wins once it has heard the sites.</summary>
    public static long NextStamp(DateTime now, long highestSeen) => Math.Max(now.Ticks, highestSeen == long.MaxValue ? long.MaxValue : highestSeen + 1);

    /// <summary>What the coordinator adopts from what the sites report: per pair, the newest reported, when it
    /// supersedes what it holds (ordered by pair, for deterministic logs).</summary>
    public static IReadOnlyList<RememberedBudget> Adopt(IReadOnlyDictionary<LinkPair, RememberedBudget> held, IEnumerable<RememberedBudget> reported) =>
        reported.GroupBy(r => r.Pair)
            .Select(g => g.Aggregate((best, r) => Supersedes(r, best) ? r : best))
            .Where(newest => Supersedes(newest, held.GetValueOrDefault(newest.Pair)))
            .OrderBy(r => r.Pair.A, StringComparer.Ordinal).ThenBy(r => r.Pair.B, StringComparer.Ordinal)
            .ToList();

    /// <summary>The sites that answered a round without the budget the coordinator holds for their pair (a store that
    /// did not reach them: down at the set, or its answer lost): they are told it again, so both sides keep it.
    /// <paramref name="answered"/>: each site that answered, with what it remembers.</summary>
    public static IReadOnlyList<(string Site, RememberedBudget Budget)> Repairs(IReadOnlyDictionary<LinkPair, RememberedBudget> held,
        IReadOnlyDictionary<string, IReadOnlyList<RememberedBudget>> answered) =>
        held.Values.OrderBy(b => b.Pair.A, StringComparer.Ordinal).ThenBy(b => b.Pair.B, StringComparer.Ordinal)
            .SelectMany(b => new[] { b.Pair.A, b.Pair.B }
                .Where(site => answered.TryGetValue(site, out var remembers) && Supersedes(b, remembers.FirstOrDefault(r => r.Pair == b.Pair)))
                .Select(site => (site, b)))
            .ToList();
}
