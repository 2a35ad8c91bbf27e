namespace Reloc.Actors.Coordinator;

/// <summary>A direction of a WAN link between two sites: the data of a relocation flows <see cref="From"/> its source
/// <see cref="To"/> its destination. A budget applies to each direction separately (WAN links are full duplex).</summary>
public readonly record struct LinkDirection(string From, string To)
{
    public LinkPair Pair => new(From, To);
    public override string ToString() => $"{From}->{To}";
}

/// <summary>Two sites, in either order (the key of a link's budget): <see cref="A"/> sorts before <see cref="B"/>.</summary>
public readonly record struct LinkPair
{
    public LinkPair(string a, string b)
    {
        ArgumentException.ThrowIfNullOrEmpty(a);
        ArgumentException.ThrowIfNullOrEmpty(b);
        if (a == b) throw new ArgumentException($"a link joins two different sites, not {a} and itself");
        (A, B) = string.CompareOrdinal(a, b) < 0 ? (a, b) : (b, a);
    }

    public string A { get; }
    public string B { get; }
    public override string ToString() => $"{A}<->{B}";
}

/// <summary>
/// How a link's budget is shared among the relocations on one of its directions (pure; one place for the
/// arithmetic): weighted max-min fairness. Each relocation gets budget × weight / Σ weights, except that one whose
/// operator cap is below that gets its cap, and what it leaves is shared again among the others (water-filling).
/// </summary>
public static class LinkShares
{
    /// <summary>The largest weight: enough to express any useful priority, small enough that Σ weights × budget stays exact.</summary>
    public const int MaxWeight = 1000;

    /// <summary>One relocation's claim: its <paramref name="Weight"/> (1..<see cref="MaxWeight"/>) and the operator's
    /// <paramref name="Cap"/> in bytes per second (0: none).</summary>
    public readonly record struct Claim(int Weight, long Cap);

    /// <summary>The rate of each claim (in their order), in bytes per second. <paramref name="budget"/> 0: no budget,
    /// each gets its cap (0: unlimited). With a budget every rate is at least 1: 0 would mean unlimited to the
    /// destination's rate limiter.</summary>
    public static long[] Divide(long budget, IReadOnlyList<Claim> claims)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(budget);
        var rates = new long[claims.Count];
        foreach (var c in claims)
        {
            if (c.Weight is < 1 or > MaxWeight) throw new ArgumentOutOfRangeException(nameof(claims), $"weight {c.Weight}: 1..{MaxWeight}");
            if (c.Cap < 0) throw new ArgumentOutOfRangeException(nameof(claims), $"cap {c.Cap} is negative");
        }
        if (budget == 0)
        {
            for (int i = 0; i < claims.Count; i++) rates[i] = claims[i].Cap;
            return rates;
        }
        // Water-filling: visit the claims by cap per weight, smallest first. The fair level (what is left per unit of
        // weight) only rises as capped claims leave, so once a claim is not held by its cap, none after it is.
        var order = Enumerable.Range(0, claims.Count)
            .OrderBy(i => claims[i].Cap == 0 ? double.PositiveInfinity : (double)claims[i].Cap / claims[i].Weight)
            .ThenBy(i => i)
            .ToArray();
        long left = budget;
        long weights = claims.Sum(c => (long)c.Weight);
        foreach (var i in order)
        {
            var (weight, cap) = claims[i];
            // Int128: budget (up to long.MaxValue) × weight must not overflow.
            var fair = (long)((Int128)left * weight / weights);
            var rate = cap > 0 && cap <= fair ? cap : fair;
            rates[i] = Math.Max(1, rate);
            left = Math.Max(0, left - rate);
            weights -= weight;
        }
        return rates;
    }
}
