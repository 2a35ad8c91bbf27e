using Reloc.Nbd.Client;
using Xunit;
using static Reloc.Nbd.Client.PeerPoolCore;

namespace Reloc.Nbd.Tests;

/// <summary>The pool's decisions as a table: ages of the parked connections (ms, "x" when the server closed it), opens
/// under way, failures in a row and the time since the last one → what it retires, how many it opens, when it looks again.
/// Settings: 2 parked, max age 4 s (renewed from 3 s).</summary>
public sealed class PeerPoolCoreTests
{
    private static readonly PeerPoolSettings Two = new() { Parked = 2, MaxAge = TimeSpan.FromSeconds(4) };

    private static List<Parked> P(string ages) => ages.Length == 0
        ? []
        : ages.Split(' ').Select(a => a.EndsWith('x') ? new Parked(TimeSpan.FromMilliseconds(int.Parse(a[..^1])), true)
                                                       : new Parked(TimeSpan.FromMilliseconds(int.Parse(a)), false)).ToList();

    [Theory]
    //           parked          opening failures sinceFailure  retire  open lookInMs
    [InlineData("",              0,      0,       0,            "",     2,   1000)] // empty: fill
    [InlineData("",              1,      0,       0,            "",     1,   1000)] // one on its way: one more
    [InlineData("",              2,      0,       0,            "",     0,   1000)] // both on their way
    [InlineData("100 200",       0,      0,       0,            "",     0,   1000)] // full and young: look within LookEvery
    [InlineData("2500 2900",     0,      0,       0,            "",     0,   100)]  // renewal of the older is due in 100 ms
    [InlineData("3100 200",      0,      0,       0,            "",     1,   900)]  // one past 3 s: its replacement opens, it stays till 4 s
    [InlineData("3100 3200",     0,      0,       0,            "",     2,   800)]  // both renewing: two more (4 at most)
    [InlineData("3100 3200",     2,      0,       0,            "",     0,   800)]  // replacements on their way
    [InlineData("4000 200",      0,      0,       0,            "0",    1,   1000)] // max age: retired, and replaced
    [InlineData("5000 4100",     0,      0,       0,            "0 1",  2,   1000)] // both past max age
    [InlineData("100x 200",      0,      0,       0,            "0",    1,   1000)] // closed by the server: retired, replaced
    [InlineData("",              0,      1,       100,          "",     0,   100)]  // one failure: wait out 200 ms
    [InlineData("",              0,      1,       250,          "",     1,   1000)] // waited: one try, not two
    [InlineData("",              0,      3,       500,          "",     0,   300)]  // three in a row: 800 ms
    [InlineData("",              0,      30,      9000,         "",     0,   1000)] // backoff capped at 10 s
    [InlineData("",              0,      30,      10000,        "",     1,   1000)]
    [InlineData("100",           0,      2,       0,            "",     0,   400)]  // a failing peer with one parked: wait too
    public void Decides(string parked, int opening, int failures, int sinceFailureMs, string retire, int open, int lookInMs)
    {
        var d = Decide(P(parked), opening, failures, TimeSpan.FromMilliseconds(sinceFailureMs), Two);
        Assert.Equal(retire, string.Join(' ', d.Retire));
        Assert.Equal(open, d.Open);
        Assert.Equal(TimeSpan.FromMilliseconds(lookInMs), d.LookIn);
    }

    [Theory]
    [InlineData("",              -1)]
    [InlineData("100",           0)]
    [InlineData("100 2000 900",  1)]  // the oldest usable
    [InlineData("100 4000 900",  2)]  // never one at max age
    [InlineData("100 3000x 900", 2)]  // nor one the server closed
    [InlineData("4100 5000x",    -1)]
    public void Picks_for_a_take(string parked, int pick) => Assert.Equal(pick, PickForTake(P(parked), Two));

    [Fact]
    public void Parked_and_opening_stay_within_twice_the_target()
    {
        for (int parked = 0; parked <= 4; parked++)
        for (int opening = 0; opening <= 4; opening++)
        {
            var ages = Enumerable.Range(0, parked).Select(i => new Parked(TimeSpan.FromMilliseconds(3500), false)).ToList();
            var d = Decide(ages, opening, 0, TimeSpan.MaxValue, Two);
            Assert.True(parked - d.Retire.Count + opening + d.Open <= Math.Max(4, parked + opening), $"{parked} parked, {opening} opening: {d}");
        }
    }

    [Theory]
    [InlineData(0, 1)]
    [InlineData(17, 1)]
    [InlineData(2, 0)]
    [InlineData(2, 61_000)]
    public void Settings_are_validated(int parked, int maxAgeMs) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new PeerPoolSettings { Parked = parked, MaxAge = TimeSpan.FromMilliseconds(maxAgeMs) }.Validate());
}
