using Reloc.Actors.Coordinator;
using Xunit;
using static Reloc.Actors.Coordinator.CoordinatorInput;
using static Reloc.Actors.Coordinator.RelocationProtocol;
using static Reloc.Actors.Site.SiteProtocol;

namespace Reloc.Actors.Tests;

/// <summary>Link budgets in the coordinator's decisions, as a table: a sequence of inputs, and the rates the core tells
/// destinations on the last one (reloc.links: a↔b 100 B/s; a↔c none).</summary>
public sealed class CoordinatorLinkTests
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(2);
    private static DateTime T(double seconds) => new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc).AddSeconds(seconds);
    private static readonly string[] Sites = ["a", "b", "c"];
    private static readonly LinkSettings AtoB = new(new Dictionary<LinkPair, long> { [new("a", "b")] = 100 });

    private static RelocationProtocol.Relocate Req(string disk, string to = "b", bool hybrid = false, long rate = 0) => new(disk, to, hybrid, rate);

    /// <summary>A relocation of an idle disk from a, accepted, tracked and prepared: it hands over at once (Fencing: copying).
    /// Its attempt id is "r" + <paramref name="n"/> (the n-th accepted).</summary>
    private static CoordinatorInput[] Start(string disk, int n, string to = "b", bool hybrid = false, long rate = 0, int clients = 0) =>
    [
        new CoordinatorInput.Relocate(Req(disk, to, hybrid, rate), "op", Sites),
        new Found(Req(disk, to, hybrid, rate), "op", [new DiskList("a", [new DiskInfo(disk, 1 << 20, "a", 3, "owned", "nbd://a:10809/" + disk)]), new("b", []), new("c", [])], T(n)),
        new FromSite(new OutgoingStarted(disk, 3, clients, "r" + n), "a", T(n)),
        new FromSite(new IncomingPrepared(disk, 3, "r" + n), to, T(n)),
    ];

    /// <summary>Fenced, owned at b, every block there: the relocation stops copying (releasing).</summary>
    private static CoordinatorInput[] Done(string disk, int n) =>
    [
        new FromSite(new Fenced(disk, 4, [], "r" + n), "a", T(50)),
        new FromSite(new OwnershipMoved(disk, 4, "r" + n), "b", T(50)),
        new FromSite(new RelocationDone(disk, 4, "r" + n), "b", T(50)),
    ];
    private static CoordinatorInput Op(object request) => new Command(request, "op", T(60), Sites);

    /// <summary>The stamp of a set made by <see cref="Op"/> (its clock: T(60)) on a coordinator that saw no later one.</summary>
    private static readonly long At60 = T(60).Ticks;
    private static readonly long Future = T(1000).Ticks;
    private static RememberedBudget Kept(string a, string b, long bandwidth, long stamp) => new(new LinkPair(a, b), bandwidth, stamp);
    /// <summary><paramref name="site"/>'s answer to the store of a set made by <see cref="Op"/>: it holds it.</summary>
    private static LinkStored Stored(string site, string a, string b, long bandwidth) => new(site, Kept(a, b, bandwidth, At60), Kept(a, b, bandwidth, At60), null);
    private static LinkStored Failed(string site, string a, string b, long bandwidth) => new(site, Kept(a, b, bandwidth, At60), null, "no answer within 5 s");
    /// <summary>A reconcile round's answers: each site with the budgets it remembers, and no disks (asked before the rows'
    /// relocations began, so that it judges none of them: only what it says of the links counts here).</summary>
    private static Observed Round(params (string Site, RememberedBudget[] Links)[] sites) =>
        new([.. sites.Select(s => new DiskList(s.Site, [], s.Links))], T(0), T(59));

    public static TheoryData<string, CoordinatorInput[], string[]> Table => new()
    {
        { "the first to copy gets the whole budget: a postcopy relocation copies from its handover, and its prepare carries that share",
            Start("vm1", 1)[..3], ["b <- PrepareIncoming vm1 100"] },
        { "its handover then changes no rate: the destination held its share from the first byte", Start("vm1", 1), [] },
        { "a second one's prepare carries half, the share it gets once it copies", [.. Start("vm1", 1), .. Start("vm2", 2)[..3]],
            ["b <- PrepareIncoming vm2 50"] },
        { "a second one on the link: once it copies both get half", [.. Start("vm1", 1), .. Start("vm2", 2)],
            ["b <- SetRate vm1 50"] },
        { "one ends: the other gets it all again", [.. Start("vm1", 1), .. Start("vm2", 2), .. Done("vm1", 1)],
            ["b <- SetRate vm2 100"] },
        { "a postcopy relocation not yet handed over takes no share", [.. Start("vm1", 1), .. Start("vm2", 2, clients: 1)],
            [] },
        { "a hybrid relocation claims from its prepare, which carries its share",
            [.. Start("vm1", 1), new CoordinatorInput.Relocate(Req("vm2", hybrid: true), "op", Sites),
             new Found(Req("vm2", hybrid: true), "op", [new DiskList("a", [new DiskInfo("vm2", 1 << 20, "a", 3, "owned", "nbd://a:10809/vm2")]), new("b", []), new("c", [])], T(2)),
             new FromSite(new OutgoingStarted("vm2", 3, 1, "r2"), "a", T(2))],
            ["b <- PrepareIncoming vm2 50", "b <- SetRate vm1 50"] },
        { "a relocation on a pair without a budget keeps its cap", Start("vm1", 1, to: "c", rate: 7), [] },
        { "the operator's cap below its share is kept; the rest goes to the other",
            [.. Start("vm1", 1), .. Start("vm2", 2), Op(new SetRelocationRate("vm1", 10))],
            ["b <- SetRate vm1 10", "b <- SetRate vm2 90"] },
        { "a weight moves the shares", [.. Start("vm1", 1), .. Start("vm2", 2), Op(new SetRelocationWeight("vm2", 3))],
            ["b <- SetRate vm1 25", "b <- SetRate vm2 75"] },
        { "a weight out of range is refused", [.. Start("vm1", 1), Op(new SetRelocationWeight("vm1", 0))], ["reply RelocationRefused"] },
        { "a set changes nothing before a site of the pair has stored it: both are asked", [.. Start("vm1", 1), .. Start("vm2", 2), Op(new SetLinkBudget("b", "a", 40))],
            [$"ask a remember a<->b 40 @{At60}", $"ask b remember a<->b 40 @{At60}"] },
        { "the budget changed at run time, once a site stored it", [.. Start("vm1", 1), .. Start("vm2", 2), Op(new SetLinkBudget("b", "a", 40)), Stored("a", "a", "b", 40)],
            ["b <- SetRate vm1 20", "b <- SetRate vm2 20", "reply LinkInfo b 40 set"] },
        { "the other site's answer changes nothing more", [.. Start("vm1", 1), Op(new SetLinkBudget("b", "a", 40)), Stored("a", "a", "b", 40), Stored("b", "a", "b", 40)],
            [] },
        { "one site failed, the other stored it: applied", [.. Start("vm1", 1), Op(new SetLinkBudget("a", "b", 40)), Failed("b", "a", "b", 40), Stored("a", "a", "b", 40)],
            ["b <- SetRate vm1 40", "reply LinkInfo b 40 set"] },
        { "neither site stored it: refused, and the budget is reloc.links' still",
            [.. Start("vm1", 1), Op(new SetLinkBudget("a", "b", 40)), Failed("b", "a", "b", 40), Failed("a", "a", "b", 40)], ["reply RelocationRefused"] },
        { "... as the list shows", [Op(new SetLinkBudget("a", "b", 40)), Failed("b", "a", "b", 40), Failed("a", "a", "b", 40), Op(new GetLinks())],
            ["reply LinkList a-b 100 config []"] },
        { "a budget removed at run time: back to the caps", [.. Start("vm1", 1, rate: 70), .. Start("vm2", 2), Op(new SetLinkBudget("a", "b", 0)), Stored("b", "a", "b", 0)],
            ["b <- SetRate vm1 70", "b <- SetRate vm2 0", "reply LinkInfo b 0 set"] },
        { "a budget for a pair without one", [.. Start("vm1", 1, to: "c"), Op(new SetLinkBudget("a", "c", 30)), Stored("c", "a", "c", 30)],
            ["c <- SetRate vm1 30", "reply LinkInfo c 30 set"] },
        // A coordinator that takes over: what the sites remember, in its first round.
        { "a new coordinator adopts the budget the sites remember, and steers by it", [.. Start("vm1", 1), Round(("a", [Kept("a", "b", 40, 5)]), ("b", [Kept("a", "b", 40, 5)]))],
            ["b <- SetRate vm1 40"] },
        { "... and shows it as set at run time", [Round(("a", [Kept("a", "b", 40, 5)]), ("b", [Kept("a", "b", 40, 5)])), Op(new GetLinks())],
            ["reply LinkList a-b 40 set []"] },
        { "0 remembered overrides reloc.links", [Round(("a", [Kept("a", "b", 0, 5)]), ("b", [Kept("a", "b", 0, 5)])), Op(new GetLinks())],
            ["reply LinkList a-b 0 set []"] },
        { "two incarnations' sets: the later stamp wins, and the site that lacks it is told it",
            [Round(("a", [Kept("a", "b", 40, 5)]), ("b", [Kept("a", "b", 70, 9)])), Op(new GetLinks())], ["reply LinkList a-b 70 set []"] },
        { "... the repair", [Round(("a", [Kept("a", "b", 40, 5)]), ("b", [Kept("a", "b", 70, 9)]))], ["a <- remember a<->b 70 @9"] },
        { "a site that did not answer the round is not told", [Round(("b", [Kept("a", "b", 70, 9)]))], [] },
        { "an older one than it holds is ignored (and the site is told the newer)",
            [Op(new SetLinkBudget("a", "b", 40)), Stored("a", "a", "b", 40), Round(("a", [Kept("a", "b", 40, At60)]), ("b", [Kept("a", "b", 90, 5)])), Op(new GetLinks())],
            ["reply LinkList a-b 40 set []"] },
        { "... the repair of the older", [Op(new SetLinkBudget("a", "b", 40)), Stored("a", "a", "b", 40), Round(("a", [Kept("a", "b", 40, At60)]), ("b", [Kept("a", "b", 90, 5)]))],
            [$"b <- remember a<->b 40 @{At60}"] },
        { "a set after adopting is stamped above what it adopted, even with its clock behind",
            [Round(("a", [Kept("a", "b", 40, Future)])), Op(new SetLinkBudget("a", "b", 30))],
            [$"ask a remember a<->b 30 @{Future + 1}", $"ask b remember a<->b 30 @{Future + 1}"] },
        { "a site that holds a newer set answers with it: that one stays", [Op(new SetLinkBudget("a", "b", 30)), new LinkStored("a", new(new("a", "b"), 30, At60), Kept("a", "b", 80, At60 + 5), null), Op(new GetLinks())],
            ["reply LinkList a-b 80 set []"] },
        { "a repaired site's answer is learned too", [new FromSite(new LinkBudgetHeld("a", Kept("a", "c", 25, 3)), "a", T(1)), Op(new GetLinks())],
            ["reply LinkList a-b 100 config [] | a-c 25 set []"] },
        { "an unknown site is refused", [Op(new SetLinkBudget("a", "x", 30))], ["reply RelocationRefused"] },
        { "a link to itself is refused", [Op(new SetLinkBudget("a", "a", 30))], ["reply RelocationRefused"] },
        { "the budget of the other direction is its own", [.. Start("vm1", 1), .. Start("vm2", 2, to: "c"), Op(new GetLinks())],
            ["reply LinkList a-b 100 config [vm1 a->b 100] | a-c 0 config [vm2 a->c 0]"] },
    };

    [Theory]
    [MemberData(nameof(Table))]
    public void Decides(string what, CoordinatorInput[] inputs, string[] expected)
    {
        int ids = 0;
        var core = new CoordinatorCore(Interval, () => "r" + ++ids, AtoB);
        IReadOnlyList<CoordinatorDecision> last = [];
        foreach (var input in inputs) last = core.Handle(input);
        var decided = last.Select(Show).OfType<string>().ToList();
        Assert.True(expected.SequenceEqual(decided), $"{what}: expected [{string.Join(" | ", expected)}], decided [{string.Join(" | ", decided)}]");
    }

    [Fact]
    public void A_coordinator_without_budgets_sends_what_it_always_sent()
    {
        int ids = 0;
        var core = new CoordinatorCore(Interval, () => "r" + ++ids);
        var decided = Start("vm1", 1).SelectMany(core.Handle).Select(Show).OfType<string>().ToList();
        Assert.Equal(["reply RelocationAccepted", "b <- PrepareIncoming vm1 0"], decided.Where(d => d.StartsWith("reply") || d.StartsWith("b <-")));
    }

    private static string? Show(CoordinatorDecision d) => d switch
    {
        CoordinatorDecision.SendToSite { Message: SetRate r } s => $"{s.Site} <- SetRate {r.Disk} {r.RateBytesPerSecond}",
        CoordinatorDecision.SendToSite { Message: PrepareIncoming p } s => $"{s.Site} <- PrepareIncoming {p.Disk} {p.RateBytesPerSecond}",
        CoordinatorDecision.Reply { Message: LinkInfo l } => $"reply LinkInfo {l.SiteB} {l.BandwidthBytesPerSecond} {(l.SetAtRunTime ? "set" : "config")}",
        CoordinatorDecision.Reply { Message: LinkList l } => "reply LinkList " + string.Join(" | ", l.Links.Select(i =>
            $"{i.SiteA}-{i.SiteB} {i.BandwidthBytesPerSecond} {(i.SetAtRunTime ? "set" : "config")} [{string.Join(", ", i.Shares.Select(s => $"{s.Disk} {s.FromSite}->{s.ToSite} {s.RateBytesPerSecond}"))}]")),
        CoordinatorDecision.Reply { Message: RelocationAccepted } => "reply RelocationAccepted",
        CoordinatorDecision.AskToRemember a => $"ask {a.Site} remember {a.Budget.Pair} {a.Budget.BandwidthBytesPerSecond} @{a.Budget.Stamp}",
        CoordinatorDecision.SendToSite { Message: RememberLinkBudget r } s => $"{s.Site} <- remember {r.Budget.Pair} {r.Budget.BandwidthBytesPerSecond} @{r.Budget.Stamp}",
        CoordinatorDecision.Reply { Message: RelocationRefused } => "reply RelocationRefused",
        CoordinatorDecision.Reply { Message: RelocationInfo } => null,
        _ => null,
    };
}
