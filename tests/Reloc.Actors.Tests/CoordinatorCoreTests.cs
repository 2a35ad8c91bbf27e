using System.Text.RegularExpressions;
using Reloc.Actors.Coordinator;
using Xunit;
using static Reloc.Actors.Coordinator.CoordinatorInput;
using static Reloc.Actors.Coordinator.RelocationProtocol;
using static Reloc.Actors.Site.SiteProtocol;

namespace Reloc.Actors.Tests;

/// <summary>The coordinator's decisions as a table: a sequence of inputs, and what the core decides on the last one
/// (its log lines left out, the protections it names kept as "event ...").</summary>
public sealed class CoordinatorCoreTests
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(2);
    private static DateTime T(double seconds) => new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc).AddSeconds(seconds);

    private static readonly RelocationProtocol.Relocate ToB = new("vm", "b");
    private static readonly string[] Sites = ["a", "b", "c"];

    private static DiskInfo Disk(string site, string phase, long epoch, string peer = "", int clients = 0, bool wanted = false,
        string relocation = "r1", bool? writable = null) =>
        new("vm", 1 << 20, site, epoch, phase, $"nbd://{site}:10809/vm", peer, 0, clients,
            writable ?? phase is "owned" or "outgoing", wanted, phase == "owned" ? "" : relocation);

    private static DiskList At(string site, params DiskInfo[] disks) => new(site, disks);

    // Building blocks of the sequences.
    private static readonly CoordinatorInput Ask = new CoordinatorInput.Relocate(ToB, "op", Sites);
    private static CoordinatorInput FoundAtA(double t = 0) => new Found(ToB, "op", [At("a", Disk("a", "owned", 3)), At("b"), At("c")], t == 0 ? T(0) : T(t));
    private static CoordinatorInput Site(object m, double t) => new FromSite(m, "a site", T(t));
    private static CoordinatorInput Started(int clients, string relocation = "r1", double t = 1) => Site(new OutgoingStarted("vm", 3, clients, relocation), t);
    private static CoordinatorInput Prepared(double t = 2) => Site(new IncomingPrepared("vm", 3, "r1"), t);
    private static CoordinatorInput Op(object request, double t) => new Command(request, "op", T(t));
    /// <summary>An operator's request while the shell knows only <paramref name="sites"/> (the others left the cluster).</summary>
    private static CoordinatorInput OpWith(object request, double t, params string[] sites) => new Command(request, "op", T(t), sites);
    private static CoordinatorInput TickWith(double t, params string[] sites) => new Tick(T(t), sites);
    private static readonly string[] WithoutB = ["a", "c"];
    private static readonly CoordinatorInput[] Serving1 = [Ask, FoundAtA(), Started(1), Prepared()];
    private static readonly CoordinatorInput[] Fencing0 = [Ask, FoundAtA(), Started(0), Prepared()];
    /// <summary>b left the cluster; the operator cancelled; a stopped sending: the cancel is over.</summary>
    private static readonly CoordinatorInput[] CancelledWithoutB =
        [.. Serving1, OpWith(new CancelRelocation("vm"), 3, WithoutB), Site(new OutgoingStopped("vm", 3, "r1"), 4)];
    private static CoordinatorInput Round(double askedAt, double now, params DiskList[] lists) => new Observed(lists, T(askedAt), T(now));
    private static DiskList[] Serving(int sourceClients, int destinationClients = 0, bool wanted = false, string relocation = "r1") =>
        [At("a", Disk("a", "outgoing", 3, "b", sourceClients, relocation: relocation)), At("b", Disk("b", "incoming", 3, "a", destinationClients, wanted, relocation)), At("c")];

    /// <summary>Released at t=6: the relocation ended past its handover.</summary>
    private static readonly CoordinatorInput[] Released6 =
        [Ask, FoundAtA(), Started(0), Prepared(), Site(new Fenced("vm", 4, [], "r1"), 3), Site(new RelocationDone("vm", 4, "r1"), 5), Site(new Released("vm", 4, "r1"), 6)];
    /// <summary>What a round asked before the release shows: the source fenced, the destination owning it, postcopy.</summary>
    private static readonly DiskList[] PostcopyShown =
        [At("a", Disk("a", "fenced", 3, "b")), At("b", Disk("b", "owned", 4, "a") with { Relocation = "r1" }), At("c")];

    private const string Prepare = "b <- PrepareIncoming { vm, 1048576, a, nbd://a:10809/vm%40peer, 3, False, 0, True, r1 }";
    private const string Fence = "a <- Fence { vm, 4, r1 }";

    public static TheoryData<string, CoordinatorInput[], string[]> Table => new()
    {
        { "a relocate request asks every site where the disk is", [Ask], ["ask all sites for Relocate"] },
        { "an unknown destination is refused at once", [new CoordinatorInput.Relocate(new RelocationProtocol.Relocate("vm", "x"), "op", Sites)], ["reply RelocationRefused"] },
        { "a found owner starts the source's tracking first", [Ask, FoundAtA()],
            ["reply RelocationAccepted", "a <- StartOutgoing { vm, b, 3, 65536, r1 }"] },
        { "no answer from some site: refused", [Ask, new Found(ToB, "op", [], T(0))], ["reply RelocationRefused"] },
        { "F13: a copy left at another site is released first",
            [Ask, new Found(ToB, "op", [At("a", Disk("a", "owned", 5)), At("c", Disk("c", "fenced", 5, "a", relocation: "r0"))], T(0))],
            ["event RefusedLeftoverCopy", "reply RelocationRefused"] },
        { "tracking under way: the destination is prepared", [Ask, FoundAtA(), Started(1)], [Prepare] },
        { "F6: an answer of another relocation changes nothing", [Ask, FoundAtA(), Started(1, "r0")], ["event ForeignAnswerIgnored"] },
        { "an idle source hands over once the destination serves", [Ask, FoundAtA(), Started(0), Prepared()], [Fence] },
        { "a source with a guest waits for a trigger", [Ask, FoundAtA(), Started(1), Prepared()], [] },
        { "a write at the destination before it served triggers once it serves",
            [Ask, FoundAtA(), Started(1), Site(new HandoverRequested("vm", "r1"), 1.5), Prepared()], [Fence] },
        { "the guest moved: its last source client left after one came at the destination",
            [Ask, FoundAtA(), Started(1), Prepared(), Site(new GuestClients("vm", "b", 1), 3), Site(new GuestClients("vm", "a", 0), 4)], [Fence] },
        { "the operator's handover", [Ask, FoundAtA(), Started(1), Prepared(), Op(new RequestHandover("vm"), 3)], [Fence, "reply RelocationInfo"] },
        { "fenced: the destination takes ownership with the final dirty set",
            [Ask, FoundAtA(), Started(0), Prepared(), Site(new Fenced("vm", 4, [], "r1"), 3)], ["b <- TakeOwnershipAt { vm, 4, runs, r1 }"] },
        { "complete: the source is released",
            [Ask, FoundAtA(), Started(0), Prepared(), Site(new Fenced("vm", 4, [], "r1"), 3), Site(new OwnershipMoved("vm", 4, "r1"), 4), Site(new RelocationDone("vm", 4, "r1"), 5)],
            ["a <- Release { vm, 4, r1 }"] },
        { "released: the relocation ends",
            [Ask, FoundAtA(), Started(0), Prepared(), Site(new Fenced("vm", 4, [], "r1"), 3), Site(new RelocationDone("vm", 4, "r1"), 5), Site(new Released("vm", 4, "r1"), 6)],
            ["ended r1"] },
        { "out of space at the destination before the handover: cancelled, the source stops first",
            [Ask, FoundAtA(), Started(1), Prepared(), Site(new RelocationStalled("vm", "r1", "b", "no space left"), 3)], ["event StalledCancelled", "a <- StopOutgoing { vm, 3, r1 }"] },
        { "out of space while the destination is still being prepared: cancelled too",
            [Ask, FoundAtA(), Started(1), Site(new RelocationStalled("vm", "r1", "b", "no space left"), 2)], ["event StalledCancelled", "a <- StopOutgoing { vm, 3, r1 }"] },
        { "out of space after the handover: it waits, the source is not released",
            [Ask, FoundAtA(), Started(0), Prepared(), Site(new Fenced("vm", 4, [], "r1"), 3), Site(new OwnershipMoved("vm", 4, "r1"), 4),
             Site(new RelocationStalled("vm", "r1", "b", "no space left"), 5)], ["event StalledWaiting"] },
        { "a stall of another attempt changes nothing",
            [Ask, FoundAtA(), Started(1), Prepared(), Site(new RelocationStalled("vm", "r0", "b", "no space left"), 3)], [] },
        { "cancel before the handover stops the source first", [Ask, FoundAtA(), Started(1), Prepared(), Op(new CancelRelocation("vm"), 3)], ["a <- StopOutgoing { vm, 3, r1 }"] },
        { "the source stopped: the destination's copy is dropped",
            [Ask, FoundAtA(), Started(1), Prepared(), Op(new CancelRelocation("vm"), 3), Site(new OutgoingStopped("vm", 3, "r1"), 4)], ["b <- DropIncoming { vm, 3, r1 }"] },
        { "dropped: the cancel ends and the operator hears it",
            [Ask, FoundAtA(), Started(1), Prepared(), Op(new CancelRelocation("vm"), 3), Site(new OutgoingStopped("vm", 3, "r1"), 4), Site(new IncomingDropped("vm", 3, "r1"), 5)],
            ["ended r1 cancelled", "reply RelocationCancelled"] },
        { "past the handover a cancel is refused", [Ask, FoundAtA(), Started(0), Prepared(), Op(new CancelRelocation("vm"), 3)], ["reply RelocationRefused"] },
        { "a timer tick begins one round at a time", [new Tick(T(0)), new Tick(T(2))], [] },
        { "a new coordinator adopts a relocation the sites show and resends its step",
            [Round(0, 0.1, At("a", Disk("a", "outgoing", 3, "b")), At("b"))], [Prepare] },
        { "the sites' trigger hands over", [Round(0, 0.1, Serving(1, wanted: true))], [Fence] },
        { "F8: the sites win over a flow of another attempt",
            [Ask, FoundAtA(), Round(10, 10.1, Serving(1, relocation: "r7"))], ["event SitesWin"] },
        { "F3: a round older than the flow's last change does not judge it",
            [Round(0, 0.1, Serving(1)), Op(new CancelRelocation("vm"), 5), Round(4, 9, Serving(1))], ["event StaleRoundNotJudged"] },
        { "issue 13: a round asked before a relocation ended does not adopt it again past its handover",
            [.. Released6, Round(5, 6.5, PostcopyShown)], ["event StaleRoundNotJudged"] },
        { "issue 13: ... a round asked after it ended adopts what the sites show",
            [.. Released6, Round(5, 6.5, PostcopyShown), Round(7, 7.1, PostcopyShown)], ["a <- Release { vm, 3, r1 }"] },
        { "issue 13: ... another attempt shown past its handover by that old round is adopted",
            [.. Released6, Round(5, 6.5, [At("a", Disk("a", "fenced", 3, "b", relocation: "r2")), At("b", Disk("b", "owned", 4, "a") with { Relocation = "r2" }), At("c")])],
            ["a <- Release { vm, 3, r2 }"] },
        { "issue 13 / F12: ... the same attempt shown before its handover is adopted (its revived copy is dropped later)",
            [.. Released6, Round(5, 6.5, At("a", Disk("a", "outgoing", 3, "b")), At("b"), At("c"))], [Prepare] },
        { "F3: a copy its source no longer sends is dropped only once the source confirms",
            [Round(0, 0.1, At("a", Disk("a", "owned", 3)), At("b", Disk("b", "incoming", 3, "a", relocation: "r9")))], ["a <- StopOutgoing { vm, 3, r9 }"] },
        { "F3: ... and then dropped",
            [Round(0, 0.1, At("a", Disk("a", "owned", 3)), At("b", Disk("b", "incoming", 3, "a", relocation: "r9"))), Site(new OutgoingStopped("vm", 3, "r9"), 1)],
            ["event DropAfterStop", "b <- DropIncoming { vm, 3, r9 }"] },
        { "issue 10: a source idle on judged rounds hands over once idle long enough",
            [Round(0, 0.1, Serving(0)), Round(4.2, 4.3, Serving(0)), Round(8.4, 8.5, Serving(0))], ["event IdleHandover", Fence] },
        { "issue 10: not before (a restarted source's VM may be reconnecting)",
            [Round(0, 0.1, Serving(0)), Round(4.2, 4.3, Serving(0))], [] },
        { "issue 10: a round without the source starts the idle time again",
            [Round(0, 0.1, Serving(0)), Round(4.2, 4.3, At("b", Disk("b", "incoming", 3, "a")), At("c")), Round(8.4, 8.5, Serving(0)), Round(12.6, 12.7, Serving(0))], [] },
        { "issue 10: a guest seen at the source starts it again",
            [Round(0, 0.1, Serving(0)), Site(new GuestClients("vm", "a", 1), 1), Site(new GuestClients("vm", "a", 0), 2), Round(4.2, 4.3, Serving(0)), Round(8.4, 8.5, Serving(0))], [] },
        { "issue 10: a destination that left the cluster is reported once, with what the operator can do",
            [.. Serving1, TickWith(3, WithoutB)], ["event DestinationGone", "ask all sites"] },
        { "issue 10: ... once", [.. Serving1, TickWith(3, WithoutB), TickWith(5, WithoutB)], [] },
        { "issue 10: ... also past the handover", [.. Fencing0, TickWith(3, WithoutB)], ["event DestinationGone", "ask all sites"] },
        { "issue 10: ... again when a handover came meanwhile (what it means changed)",
            [.. Serving1, TickWith(3, WithoutB), Op(new RequestHandover("vm"), 4), TickWith(5, WithoutB)], ["event DestinationGone"] },
        { "issue 10: the status of a relocation whose destination is gone is answered here, not asked of it",
            [.. Serving1, OpWith(new GetRelocationStatus("vm"), 3, WithoutB)], ["reply RelocationRefused"] },
        { "issue 10: ... while a present destination is asked", [.. Serving1, OpWith(new GetRelocationStatus("vm"), 3, Sites)], ["ask b for progress"] },
        { "issue 10: a cancel whose destination left the cluster stops the source", [.. Serving1, OpWith(new CancelRelocation("vm"), 3, WithoutB)],
            ["a <- StopOutgoing { vm, 3, r1 }"] },
        { "issue 10: ... and ends once it stopped, nothing asked of the destination", CancelledWithoutB,
            ["ended r1 cancelled", "reply RelocationCancelled", "event CancelledWithoutDestination"] },
        { "issue 10: ... when the destination is back, the sites show its copy as a cancel half done: the source confirms",
            [.. CancelledWithoutB, TickWith(6, Sites), Round(6, 6.1, At("a", Disk("a", "owned", 3)), At("b", Disk("b", "incoming", 3, "a")), At("c"))],
            ["a <- StopOutgoing { vm, 3, r1 }"] },
        { "issue 10: ... and the copy is dropped",
            [.. CancelledWithoutB, TickWith(6, Sites), Round(6, 6.1, At("a", Disk("a", "owned", 3)), At("b", Disk("b", "incoming", 3, "a")), At("c")),
                Site(new OutgoingStopped("vm", 3, "r1"), 7)],
            ["event DropAfterStop", "b <- DropIncoming { vm, 3, r1 }"] },
        { "issue 10: a destination that left after the drop was sent: a round showing the source stopped ends the cancel",
            [.. Serving1, Op(new CancelRelocation("vm"), 3), Site(new OutgoingStopped("vm", 3, "r1"), 4), TickWith(5, WithoutB),
                Round(5, 9.1, At("a", Disk("a", "owned", 3)), At("c"))],
            ["ended r1 cancelled", "reply RelocationCancelled", "event CancelledWithoutDestination"] },
        { "issue 10: ... a round showing the source still sending stops it again",
            [.. Serving1, OpWith(new CancelRelocation("vm"), 3, WithoutB), TickWith(5, WithoutB), Round(5, 9.1, At("a", Disk("a", "outgoing", 3, "b", 1)), At("c"))],
            ["a <- StopOutgoing { vm, 3, r1 }"] },
        { "issue 10: ... a round without the source's answer waits",
            [.. Serving1, OpWith(new CancelRelocation("vm"), 3, WithoutB), TickWith(5, WithoutB), Round(5, 9.1, At("c"))], [] },
    };

    /// <summary>What the operator reads: a refusal's reason, or a log line, after a sequence.</summary>
    public static TheoryData<string, CoordinatorInput[], string> Says => new()
    {
        { "a cancel past the handover says what can be done", [.. Fencing0, Op(new CancelRelocation("vm"), 3)],
            "past the handover a relocation only goes forward; wait for it to finish, or relocate it back to a once it has" },
        { "... and that a gone destination finishes it when back", [.. Fencing0, OpWith(new CancelRelocation("vm"), 3, WithoutB)],
            "relocate it back to a once it has (b is not in the cluster: it finishes when b is back)" },
        { "the status before the handover, destination gone", [.. Serving1, OpWith(new GetRelocationStatus("vm"), 3, WithoutB)],
            "is serving: site b is not in the cluster: cancel the relocation (the disk stays at a), or it goes on when b is back" },
        { "the status past the handover, destination gone", [.. Fencing0, OpWith(new GetRelocationStatus("vm"), 3, WithoutB)],
            "site b left the cluster after the handover: the disk is b's (epoch 4) and a refuses its writes, so it cannot be written until b is back" },
        { "the log past the handover, destination gone", [.. Fencing0, TickWith(3, WithoutB)], "(fencing): site b left the cluster after the handover" },
        { "the log of a cancel without its destination", CancelledWithoutB, "a owns it at epoch 3; b is not in the cluster: its copy is dropped when it is back" },
    };

    [Theory]
    [MemberData(nameof(Says))]
    public void Explains(string what, CoordinatorInput[] inputs, string expected)
    {
        int ids = 0;
        var core = new CoordinatorCore(Interval, () => "r" + ++ids);
        IReadOnlyList<CoordinatorDecision> last = [];
        foreach (var input in inputs) last = core.Handle(input);
        var said = last.Select(d => d switch
        {
            CoordinatorDecision.Reply { Message: RelocationRefused r } => r.Reason,
            CoordinatorDecision.Log l => l.Text,
            _ => null,
        }).OfType<string>().ToList();
        Assert.True(said.Any(t => t.Contains(expected, StringComparison.Ordinal)), $"{what}: expected \"{expected}\" in [{string.Join(" | ", said)}]");
    }

    [Theory]
    [MemberData(nameof(Table))]
    public void Decides(string what, CoordinatorInput[] inputs, string[] expected)
    {
        int ids = 0;
        var core = new CoordinatorCore(Interval, () => "r" + ++ids);
        IReadOnlyList<CoordinatorDecision> last = [];
        foreach (var input in inputs) last = core.Handle(input);
        Assert.True(expected.SequenceEqual(last.Select(Show).OfType<string>()), $"{what}: expected [{string.Join(" | ", expected)}], decided [{string.Join(" | ", last.Select(Show).OfType<string>())}]");
    }

    [Fact]
    public void The_same_inputs_give_the_same_decisions()
    {
        var inputs = Table.SelectMany(row => (CoordinatorInput[])row[1]).ToList();
        string Trace()
        {
            int ids = 0;
            var core = new CoordinatorCore(Interval, () => "r" + ++ids);
            return string.Join("\n", inputs.SelectMany(i => core.Handle(i)).Select(d => d.ToString()));
        }
        Assert.Equal(Trace(), Trace());
    }

    [Fact]
    public void Phases_keep_their_names_on_the_wire()
    {
        Assert.Equal(["starting", "preparing", "serving", "fencing", "transferring", "postcopy", "releasing", "cancelling"],
            Enum.GetValues<RelocationPhase>().Select(p => p.Name()));
        Assert.All(Enum.GetValues<RelocationPhase>(), p => Assert.Equal(p, RelocationPhases.Parse(p.Name())));
    }

    private static string? Show(CoordinatorDecision d) => d switch
    {
        CoordinatorDecision.SendToSite s => $"{s.Site} <- {Compact(s.Message)}",
        CoordinatorDecision.Reply r => $"reply {r.Message.GetType().Name}",
        CoordinatorDecision.AskAllSites a => a.ForRelocate is null ? "ask all sites" : "ask all sites for Relocate",
        CoordinatorDecision.AskProgress p => $"ask {p.Site} for progress",
        CoordinatorDecision.Ended e => $"ended {e.Relocation}{(e.Cancelled ? " cancelled" : "")}",
        CoordinatorDecision.Log { Event: not CoordinatorEvent.None } l => $"event {l.Event}",
        _ => null,
    };

    private static string Compact(object message) =>
        Regex.Replace(Regex.Replace(message.ToString()!, @"\w+ = ", ""), @"System\.\S*\[\]", "runs");
}
