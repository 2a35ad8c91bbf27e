using Reloc.Actors.Coordinator;
using Xunit;

namespace Reloc.Actors.Tests;

/// <summary>The rules by which a budget set at run time outlives its coordinator (<see cref="LinkMemory"/>), as tables.</summary>
public sealed class LinkMemoryTests
{
    private static readonly LinkPair AB = new("a", "b"), AC = new("a", "c");
    private static RememberedBudget K(LinkPair pair, long bandwidth, long stamp) => new(pair, bandwidth, stamp);

    public static TheoryData<string, RememberedBudget, RememberedBudget?, bool> Supersedes => new()
    {
        { "anything replaces nothing", K(AB, 0, 1), null, true },
        { "a later stamp wins, even with a smaller budget", K(AB, 10, 2), K(AB, 90, 1), true },
        { "an earlier stamp loses", K(AB, 90, 1), K(AB, 10, 2), false },
        { "the same set again changes nothing", K(AB, 40, 5), K(AB, 40, 5), false },
        { "equal stamps: the larger budget, whichever was heard first", K(AB, 50, 5), K(AB, 40, 5), true },
        { "... and not the other way", K(AB, 40, 5), K(AB, 50, 5), false },
        { "0 (none) is a budget like any other: a later 0 wins", K(AB, 0, 6), K(AB, 50, 5), true },
    };

    [Theory]
    [MemberData(nameof(Supersedes))]
    public void Decides_which_set_is_newer(string what, RememberedBudget candidate, RememberedBudget? held, bool expected) =>
        Assert.True(expected == LinkMemory.Supersedes(candidate, held), what);

    public static TheoryData<string, long, long, long> Stamps => new()
    {
        { "a fresh coordinator: its clock", 1000, 0, 1000 },
        { "a clock behind the newest stamp seen (another incarnation's): one above it", 1000, 5000, 5001 },
        { "a clock ahead: the clock", 9000, 5000, 9000 },
        { "the same tick as the last set: the next one", 5000, 5000, 5001 },
    };

    [Theory]
    [MemberData(nameof(Stamps))]
    public void Stamps_order_every_incarnations_sets(string what, long nowTicks, long highestSeen, long expected) =>
        Assert.True(expected == LinkMemory.NextStamp(new DateTime(nowTicks, DateTimeKind.Utc), highestSeen), what);

    public static TheoryData<string, RememberedBudget[], RememberedBudget[], string> Adoptions => new()
    {
        { "nothing held: the newest per pair", [], [K(AB, 40, 5), K(AB, 70, 9), K(AC, 0, 2)], "a<->b 70 B/s @9, a<->c none @2" },
        { "held newer: kept", [K(AB, 40, 10)], [K(AB, 70, 9)], "" },
        { "held older: replaced", [K(AB, 40, 1)], [K(AB, 70, 9)], "a<->b 70 B/s @9" },
        { "held the same: nothing to adopt", [K(AB, 40, 5)], [K(AB, 40, 5), K(AB, 40, 5)], "" },
        { "nothing reported: nothing adopted (reloc.links or what is held stays)", [K(AB, 40, 5)], [], "" },
    };

    [Theory]
    [MemberData(nameof(Adoptions))]
    public void Adopts_the_newest_the_sites_report(string what, RememberedBudget[] held, RememberedBudget[] reported, string expected) =>
        Assert.True(expected == string.Join(", ", LinkMemory.Adopt(held.ToDictionary(h => h.Pair), reported)), what);

    public static TheoryData<string, RememberedBudget[], (string, RememberedBudget[])[], string> Repairs => new()
    {
        { "both sides hold it: nothing", [K(AB, 40, 5)], [("a", [K(AB, 40, 5)]), ("b", [K(AB, 40, 5)])], "" },
        { "a side without it is told", [K(AB, 40, 5)], [("a", [K(AB, 40, 5)]), ("b", [])], "b a<->b 40 B/s @5" },
        { "a side with an older one is told", [K(AB, 40, 5)], [("a", [K(AB, 10, 4)]), ("b", [K(AB, 40, 5)])], "a a<->b 40 B/s @5" },
        { "a side that did not answer is not", [K(AB, 40, 5)], [("a", [K(AB, 40, 5)])], "" },
        { "a site not on the pair is not", [K(AB, 40, 5)], [("a", [K(AB, 40, 5)]), ("b", [K(AB, 40, 5)]), ("c", [])], "" },
    };

    [Theory]
    [MemberData(nameof(Repairs))]
    public void Tells_a_side_that_lacks_the_budget(string what, RememberedBudget[] held, (string, RememberedBudget[])[] answered, string expected) =>
        Assert.True(expected == string.Join(", ", LinkMemory.Repairs(held.ToDictionary(h => h.Pair),
            answered.ToDictionary(a => a.Item1, a => (IReadOnlyList<RememberedBudget>)a.Item2)).Select(r => $"{r.Site} {r.Budget}")), what);
}
