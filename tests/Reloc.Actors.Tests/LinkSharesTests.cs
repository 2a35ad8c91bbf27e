using Akka.Configuration;
using Reloc.Actors.Coordinator;
using Xunit;

namespace Reloc.Actors.Tests;

/// <summary>How a link's budget is shared (<see cref="LinkShares"/>), and reloc.links (<see cref="LinkSettings"/>), as tables.</summary>
public sealed class LinkSharesTests
{
    private static LinkShares.Claim C(int weight = 1, long cap = 0) => new(weight, cap);

    public static TheoryData<string, long, LinkShares.Claim[], long[]> Table => new()
    {
        { "nobody on the link", 100, [], [] },
        { "one relocation gets the whole budget", 100, [C()], [100] },
        { "equal weights share equally", 100, [C(), C(), C(), C()], [25, 25, 25, 25] },
        { "ten relocations on 20 MB/s: 2 MB/s each", 20_000_000, Enumerable.Repeat(C(), 10).ToArray(), Enumerable.Repeat(2_000_000L, 10).ToArray() },
        { "weights divide in proportion", 100, [C(3), C(1)], [75, 25] },
        { "a cap below its share is kept, the rest goes to the others", 100, [C(cap: 10), C(), C()], [10, 45, 45] },
        { "a cap above its share does not matter", 100, [C(cap: 80), C()], [50, 50] },
        { "caps that cover the budget leave budget unused", 100, [C(cap: 10), C(cap: 20)], [10, 20] },
        { "water-filling in several steps", 100, [C(cap: 5), C(cap: 30), C(), C()], [5, 30, 32, 33] },
        { "weight and cap together: the capped one's share is shared by weight", 100, [C(cap: 10), C(2), C(1)], [10, 60, 30] },
        { "a share never rounds to 0 (which would mean unlimited)", 2, [C(), C(), C()], [1, 1, 1] },
        { "no budget: every relocation keeps its cap (0 unlimited)", 0, [C(cap: 10), C()], [10, 0] },
        { "the largest weight", 1001, [C(LinkShares.MaxWeight), C()], [1000, 1] },
    };

    [Theory]
    [MemberData(nameof(Table))]
    public void Divides(string what, long budget, LinkShares.Claim[] claims, long[] expected) =>
        Assert.True(expected.SequenceEqual(LinkShares.Divide(budget, claims)),
            $"{what}: expected [{string.Join(", ", expected)}], got [{string.Join(", ", LinkShares.Divide(budget, claims))}]");

    [Fact]
    public void Shares_never_exceed_the_budget_and_fill_it_when_nobody_is_capped()
    {
        var random = new Random(7);
        for (int run = 0; run < 1000; run++)
        {
            var claims = Enumerable.Range(0, random.Next(1, 30))
                .Select(_ => C(random.Next(1, 10), random.Next(3) == 0 ? random.Next(1, 50_000_000) : 0)).ToArray();
            long budget = random.Next(1_000, 1_000_000_000);
            var rates = LinkShares.Divide(budget, claims);
            Assert.True(rates.Sum() <= budget, $"run {run}: {rates.Sum()} > {budget}");
            for (int i = 0; i < rates.Length; i++) Assert.True(rates[i] >= 1 && (claims[i].Cap == 0 || rates[i] <= claims[i].Cap));
            if (claims.All(c => c.Cap == 0)) Assert.True(rates.Sum() > budget - claims.Length, $"run {run}: {rates.Sum()} of {budget}");
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(LinkShares.MaxWeight + 1)]
    public void Refuses_a_weight_out_of_range(int weight) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => LinkShares.Divide(100, [C(weight)]));

    [Fact]
    public void A_pair_is_the_same_either_way() =>
        Assert.Equal(new LinkPair("site-b", "site-a"), new LinkPair("site-a", "site-b"));

    [Fact]
    public void Reads_reloc_links()
    {
        var settings = LinkSettings.From(ConfigurationFactory.ParseString("""
            reloc.links = [
              { sites = [site-b, site-a], bandwidth = 100MB/s }
              { sites = [site-a, site-c], bandwidth = "1Gbit/s" }
            ]
            """).WithFallback(RelocConfig.Reference));
        Assert.Equal(100_000_000, settings.Budgets[new LinkPair("site-a", "site-b")]);
        Assert.Equal(125_000_000, settings.Budgets[new LinkPair("site-c", "site-a")]);
        Assert.Equal(2, settings.Budgets.Count);
        Assert.Empty(LinkSettings.From(RelocConfig.Reference).Budgets); // none by default
        Assert.Empty(LinkSettings.From(ConfigurationFactory.ParseString("reloc.links = [  ]")).Budgets);
    }

    [Theory]
    [InlineData("[ { sites = [site-a], bandwidth = 1MB/s } ]", "two different site names")]
    [InlineData("[ { sites = [site-a, site-a], bandwidth = 1MB/s } ]", "two different site names")]
    [InlineData("[ { sites = [site-a, site-b], bandwidth = 0 } ]", "above 0")]
    [InlineData("[ { sites = [site-a, site-b], bandwidth = 1Mb } ]", "reloc.links[0].bandwidth")]
    [InlineData("[ { sites = [site-a, site-b] } ]", "reloc.links[0].bandwidth")]
    [InlineData("[ { sites = [site-a, site-b], bandwidth = 1MB/s }, { sites = [site-b, site-a], bandwidth = 2MB/s } ]", "listed twice")]
    public void Refuses_a_bad_reloc_links(string links, string expected)
    {
        var ex = Assert.Throws<ArgumentException>(() => LinkSettings.From(ConfigurationFactory.ParseString($"reloc.links = {links}")));
        Assert.Contains(expected, ex.Message);
    }
}
