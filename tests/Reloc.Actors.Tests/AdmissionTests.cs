using Akka.Configuration;
using Reloc.Actors.Coordinator;
using Reloc.Actors.Site;
using Xunit;
using static Reloc.Actors.Coordinator.CoordinatorInput;
using static Reloc.Actors.Coordinator.RelocationProtocol;
using static Reloc.Actors.Site.SiteProtocol;

namespace Reloc.Actors.Tests;

/// <summary>The admission decision alone (<see cref="Admission.Admit"/>), as a table: what runs, the queue, the limit,
/// and which queued relocations start.</summary>
public sealed class AdmissionTests
{
    private static (string, string) R(string fromTo) => (fromTo[..1], fromTo[1..]);
    private static Admission.Waiting W(string disk, string fromTo, bool ready = true) => new(disk, fromTo[..1], fromTo[1..], ready);

    public static TheoryData<string, string[], Admission.Waiting[], int, string[]> Table => new()
    {
        { "below the limit: it starts", ["ab"], [W("q1", "ab")], 2, ["q1"] },
        { "at the limit at the source: it waits", ["ab", "ac"], [W("q1", "ad")], 2, [] },
        { "at the limit at the destination: it waits (both ends count)", ["cb", "db"], [W("q1", "ab")], 2, [] },
        { "a site counts as source and destination alike", ["ab", "ca"], [W("q1", "ad")], 2, [] },
        { "one slot: the first in line takes it, not the second", ["ab"], [W("q1", "ac"), W("q2", "ad")], 2, ["q1"] },
        { "first come first served: a later one sharing a site does not pass the one waiting", ["ab", "ac"], [W("q1", "ad"), W("q2", "db")], 2, [] },
        { "one between two other sites passes", ["ab", "ac"], [W("q1", "ad"), W("q2", "ef")], 2, ["q2"] },
        { "several start in order while slots last", [], [W("q1", "ab"), W("q2", "ab"), W("q3", "ab")], 2, ["q1", "q2"] },
        { "one not yet durable cannot start, and holds its sites", [], [W("q1", "ab", ready: false), W("q2", "ac")], 2, [] },
        { "limit 0: no limit", ["ab", "ab", "ab"], [W("q1", "ab"), W("q2", "ab")], 0, ["q1", "q2"] },
        { "nothing queued: nothing starts", ["ab"], [], 1, [] },
    };

    [Theory]
    [MemberData(nameof(Table))]
    public void Admits(string what, string[] running, Admission.Waiting[] queue, int limit, string[] expected)
    {
        var started = Admission.Admit(running.Select(R), queue, limit);
        Assert.True(expected.SequenceEqual(started), $"{what}: expected [{string.Join(", ", expected)}], started [{string.Join(", ", started)}]");
    }

    [Theory]
    [InlineData("4", 4)]
    [InlineData("0", 0)]
    [InlineData("off", 0)]
    [InlineData("1", 1)]
    public void The_setting_reads(string value, int expected) =>
        Assert.Equal(expected, AdmissionSettings.From(ConfigurationFactory.ParseString($"{AdmissionSettings.Key} = {value}")).MaxPerSite);

    [Theory]
    [InlineData("-1")]
    [InlineData("four")]
    [InlineData("2.5")]
    [InlineData("10001")]
    public void A_bad_setting_is_refused_at_start(string value)
    {
        var ex = Assert.Throws<ArgumentException>(() => AdmissionSettings.From(ConfigurationFactory.ParseString($"{AdmissionSettings.Key} = \"{value}\"")));
        Assert.Contains(AdmissionSettings.Key, ex.Message);
    }

    [Fact]
    public void The_default_is_four() => Assert.Equal(4, AdmissionSettings.From(RelocConfig.Reference).MaxPerSite);
}

/// <summary>The admission queue in the coordinator's decisions, as a table: a sequence of inputs, and what the core decides
/// on the last one (sites a, b, c, d; attempt ids r1, r2 ... in the order relocations are admitted or queued).</summary>
public sealed class CoordinatorAdmissionTests
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(2);
    private static DateTime T(double seconds) => new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc).AddSeconds(seconds);
    private static readonly string[] Sites = ["a", "b", "c", "d"];

    private static DiskInfo Owned(string disk, string site, QueuedRelocation? queued = null) =>
        new(disk, 1 << 20, site, 3, "owned", $"nbd://{site}:10809/{disk}", Queued: queued);

    private static DiskList[] Lists(params DiskInfo[] disks) => Sites.Select(s => new DiskList(s, disks.Where(d => d.Site == s).ToList())).ToArray();

    /// <summary>An operator's relocation of <paramref name="disk"/> (owned at <paramref name="from"/>) to <paramref name="to"/>.</summary>
    private static CoordinatorInput[] Ask(string disk, string from = "a", string to = "b", double at = 1) =>
    [
        new CoordinatorInput.Relocate(new(disk, to), "op", Sites),
        new Found(new(disk, to), "op", Lists(Owned(disk, from)), T(at)),
    ];

    /// <summary>Admitted and running with a guest at the source (it stays serving): attempt r<paramref name="n"/>.</summary>
    private static CoordinatorInput[] Run(string disk, int n, string from = "a", string to = "b") =>
    [
        .. Ask(disk, from, to),
        new FromSite(new OutgoingStarted(disk, 3, 1, "r" + n), from, T(2)),
        new FromSite(new IncomingPrepared(disk, 3, "r" + n), to, T(2)),
    ];

    private static CoordinatorInput Durable(string disk, int n, string from = "a") => new FromSite(new QueuedAt(disk, n, "r" + n), from, T(3));

    /// <summary>Handed over by the operator, copied, released: the relocation completed.</summary>
    private static CoordinatorInput[] Complete(string disk, int n) =>
    [
        Op(new RequestHandover(disk)),
        new FromSite(new Fenced(disk, 4, [], "r" + n), "a", T(10)),
        new FromSite(new OwnershipMoved(disk, 4, "r" + n), "b", T(10)),
        new FromSite(new RelocationDone(disk, 4, "r" + n), "b", T(10)),
        new FromSite(new Released(disk, 4, "r" + n), "a", T(10)),
    ];

    /// <summary>The destination stalled (out of space) before the handover: cancelled by the coordinator, then over.</summary>
    private static CoordinatorInput[] Fail(string disk, int n) =>
    [
        new FromSite(new RelocationStalled(disk, "r" + n, "b", "no space left"), "b", T(10)),
        new FromSite(new OutgoingStopped(disk, 3, "r" + n), "a", T(10)),
        new FromSite(new IncomingDropped(disk, 3, "r" + n), "b", T(10)),
    ];

    private static CoordinatorInput[] Abort(string disk, int n) =>
    [
        Op(new CancelRelocation(disk)),
        new FromSite(new OutgoingStopped(disk, 3, "r" + n), "a", T(10)),
        new FromSite(new IncomingDropped(disk, 3, "r" + n), "b", T(10)),
    ];

    private static CoordinatorInput Op(object request) => new Command(request, "op", T(20), Sites);

    /// <summary>limit 2 at a: vm1 and vm2 run, vm3 and vm4 are queued (durable) behind them.</summary>
    private static CoordinatorInput[] Full() => [.. Run("vm1", 1), .. Run("vm2", 2), .. Ask("vm3"), Durable("vm3", 3), .. Ask("vm4"), Durable("vm4", 4)];

    public static TheoryData<string, int, CoordinatorInput[], string[]> Table => new()
    {
        { "below the limit it starts as before", 2, Ask("vm1"), ["event Started vm1", "reply accepted vm1", "a <- StartOutgoing vm1 r1"] },
        { "over the limit it is queued at its source, not refused, and not answered yet", 2, [.. Run("vm1", 1), .. Run("vm2", 2), .. Ask("vm3")],
            ["a <- QueueRelocation vm3 r3"] },
        { "once its source kept it: answered with its place, and an event", 2, [.. Run("vm1", 1), .. Run("vm2", 2), .. Ask("vm3"), Durable("vm3", 3)],
            ["event Queued vm3", "reply queued vm3 1"] },
        { "the destination counts too", 1, [.. Run("vm1", 1, "a", "b"), .. Ask("vm2", "c", "b")], ["c <- QueueRelocation vm2 r2"] },
        { "a relocation between other sites is not held", 1, [.. Run("vm1", 1, "a", "b"), .. Ask("vm2", "c", "d")],
            ["event Started vm2", "reply accepted vm2", "c <- StartOutgoing vm2 r2"] },
        { "unlimited: the fifth starts too", 0, [.. Run("vm1", 1), .. Run("vm2", 2), .. Run("vm3", 3), .. Run("vm4", 4), .. Ask("vm5")],
            ["event Started vm5", "reply accepted vm5", "a <- StartOutgoing vm5 r5"] },
        { "a completed relocation frees a slot: the first in line starts (not the second)", 2, [.. Full(), .. Complete("vm1", 1)],
            ["event Completed vm1", "event Started vm3", "a <- StartOutgoing vm3 r3"] },
        { "an aborted one frees a slot", 2, [.. Full(), .. Abort("vm2", 2)],
            ["event Cancelled vm2", "reply cancelled vm2", "event Started vm3", "a <- StartOutgoing vm3 r3"] },
        { "a failed one frees a slot", 2, [.. Full(), .. Fail("vm1", 1)],
            ["event Cancelled vm1", "event Started vm3", "a <- StartOutgoing vm3 r3"] },
        { "two slots free: both queued start, in order", 2, [.. Full(), .. Complete("vm1", 1), .. Complete("vm2", 2)],
            ["event Completed vm2", "event Started vm4", "a <- StartOutgoing vm4 r4"] },
        { "one not yet durable does not start when a slot frees", 2, [.. Run("vm1", 1), .. Run("vm2", 2), .. Ask("vm3"), .. Complete("vm1", 1)],
            ["event Completed vm1"] },
        { "and starts once it is durable", 2, [.. Run("vm1", 1), .. Run("vm2", 2), .. Ask("vm3"), .. Complete("vm1", 1), Durable("vm3", 3)],
            ["event Queued vm3", "reply queued vm3 1", "event Started vm3", "a <- StartOutgoing vm3 r3"] },
        { "cancel while queued: only its source forgets it", 2, [.. Full(), Op(new CancelRelocation("vm3"))],
            ["a <- Unqueue vm3 r3", "event Cancelled vm3", "reply cancelled vm3"] },
        { "a cancelled one never starts: the next in line does", 2, [.. Full(), Op(new CancelRelocation("vm3")), .. Complete("vm1", 1)],
            ["event Completed vm1", "event Started vm4", "a <- StartOutgoing vm4 r4"] },
        { "the list shows the queue with places", 2, [.. Full(), Op(new GetRelocations())],
            ["reply list vm1:serving:0 vm2:serving:0 vm3:queued:1 vm4:queued:2"] },
        { "a queued one cannot be queued twice", 2, [.. Full(), new CoordinatorInput.Relocate(new("vm3", "c"), "op", Sites)], ["reply refused"] },
        { "nor handed over", 2, [.. Full(), Op(new RequestHandover("vm4"))], ["reply refused"] },
        { "a coordinator that takes over finds the queue at the sites, in ticket order", 1,
            [new Observed(Lists(Owned("vm7", "a", new("b", 20, false, 0, true, "r7")), Owned("vm6", "a", new("b", 10, false, 0, true, "r6"))), T(0), T(1))],
            ["event Started vm6", "a <- StartOutgoing vm6 r6"] },
        { "a cancel lost on its way is sent again, and never adopted", 1,
            [.. Run("vm1", 1), .. Ask("vm2"), Durable("vm2", 2), Op(new CancelRelocation("vm2")),
             new Observed(Lists(new DiskInfo("vm1", 1 << 20, "a", 3, "outgoing", "nbd://a:10809/vm1", "b", Relocation: "r1"), Owned("vm2", "a", new("b", 2, false, 0, true, "r2"))), T(30), T(31))],
            ["a <- Unqueue vm2 r2"] },
        { "drain: each disk owned there, through the queue; the rest skipped with why", 1,
            [.. Run("vm0", 1, "a", "c"), Op(new DrainSite("a", "b")),
             new DrainFound(new("a", "b"), "op", Lists(new DiskInfo("vm0", 1 << 20, "a", 3, "outgoing", "nbd://a/vm0", "c", Relocation: "r1"),
                 Owned("vm1", "a"), Owned("vm2", "a"), Owned("vm9", "c")), T(40))],
            ["a <- QueueRelocation vm1 r2", "a <- QueueRelocation vm2 r3"] },
        { "drain: answered once every queued one is durable", 1,
            [.. Run("vm0", 1, "a", "c"), Op(new DrainSite("a", "b")),
             new DrainFound(new("a", "b"), "op", Lists(new DiskInfo("vm0", 1 << 20, "a", 3, "outgoing", "nbd://a/vm0", "c", Relocation: "r1"),
                 Owned("vm1", "a"), Owned("vm2", "a")), T(40)), Durable("vm1", 2), Durable("vm2", 3)],
            ["event Queued vm2", "reply drain vm1:queued:1 vm2:queued:2 skipped vm0"] },
        { "a queued one whose destination left the cluster does not hold its source", 1,
            [.. Run("vm1", 1, "a", "b"), .. Ask("vm2", "c", "b"), Durable("vm2", 2, "c"),
             new CoordinatorInput.Relocate(new("vm3", "d"), "op", ["a", "c", "d"]), new Found(new("vm3", "d"), "op", Lists(Owned("vm3", "c")), T(5))],
            ["event Started vm3", "reply accepted vm3", "c <- StartOutgoing vm3 r3"] },
        { "drain into itself is refused", 1, [Op(new DrainSite("a", "a"))], ["reply refused"] },
        { "drain to a site not up is refused", 1, [Op(new DrainSite("a", "x"))], ["reply refused"] },
    };

    [Theory]
    [MemberData(nameof(Table))]
    public void Decides(string what, int limit, CoordinatorInput[] inputs, string[] expected)
    {
        int ids = 0;
        var core = new CoordinatorCore(Interval, () => "r" + ++ids, admission: new AdmissionSettings(limit));
        IReadOnlyList<CoordinatorDecision> last = [];
        foreach (var input in inputs) last = core.Handle(input);
        var decided = last.Select(Show).OfType<string>().ToList();
        Assert.True(expected.SequenceEqual(decided), $"{what}: expected [{string.Join(" | ", expected)}], decided [{string.Join(" | ", decided)}]");
    }

    /// <summary>Never more than the limit at once at a site, whatever order relocations end in (a few hundred random runs).</summary>
    [Fact]
    public void Never_more_than_the_limit_runs_at_a_site()
    {
        for (int seed = 0; seed < 200; seed++)
        {
            var random = new Random(seed);
            int ids = 0, limit = 1 + random.Next(3);
            var core = new CoordinatorCore(Interval, () => "r" + ++ids, admission: new AdmissionSettings(limit));
            var ids0 = new Dictionary<string, string>();
            void Feed(CoordinatorInput input)
            {
                foreach (var d in core.Handle(input))
                {
                    if (d is CoordinatorDecision.SendToSite { Message: QueueRelocation q } s) core.Handle(new FromSite(new QueuedAt(q.Disk, q.Ticket, q.Relocation), s.Site, T(1)));
                    if (d is CoordinatorDecision.SendToSite { Message: StartOutgoing st }) ids0[st.Disk] = st.Relocation;
                }
            }
            for (int i = 0; i < 12; i++)
            {
                string from = Sites[random.Next(4)], to = Sites.Where(s => s != from).ElementAt(random.Next(3)), disk = "vm" + i;
                Feed(new CoordinatorInput.Relocate(new(disk, to), "op", Sites));
                Feed(new Found(new(disk, to), "op", Lists(Owned(disk, from)), T(1)));
            }
            while (core.Flows.Count > 0)
            {
                foreach (var site in Sites) Assert.True(core.Flows.Count(f => f.From == site || f.To == site) <= limit, $"seed {seed}: more than {limit} at {site}");
                var f = core.Flows[random.Next(core.Flows.Count)];
                // It ends (cancelled here; completed or failed free the slot alike: the table above shows each).
                Feed(new FromSite(new OutgoingStarted(f.Disk, f.Epoch, 1, f.Relocation), f.From, T(100)));
                Feed(new FromSite(new IncomingPrepared(f.Disk, f.Epoch, f.Relocation), f.To, T(100)));
                Feed(new Command(new CancelRelocation(f.Disk), "op", T(100), Sites));
                Feed(new FromSite(new OutgoingStopped(f.Disk, f.Epoch, f.Relocation), f.From, T(100)));
                Feed(new FromSite(new IncomingDropped(f.Disk, f.Epoch, f.Relocation), f.To, T(100)));
                Assert.Null(core.FlowOf(f.Disk));
            }
            Assert.Equal(12, ids0.Count); // every one started in the end
        }
    }

    private static string? Show(CoordinatorDecision d) => d switch
    {
        CoordinatorDecision.SendToSite { Message: StartOutgoing m } s => $"{s.Site} <- StartOutgoing {m.Disk} {m.Relocation}",
        CoordinatorDecision.SendToSite { Message: QueueRelocation m } s => $"{s.Site} <- QueueRelocation {m.Disk} {m.Relocation}",
        CoordinatorDecision.SendToSite { Message: Unqueue m } s => $"{s.Site} <- Unqueue {m.Disk} {m.Relocation}",
        CoordinatorDecision.Reply { Message: RelocationAccepted m } => $"reply accepted {m.Disk}",
        CoordinatorDecision.Reply { Message: RelocationQueued m } => $"reply queued {m.Disk} {m.Position}",
        CoordinatorDecision.Reply { Message: RelocationCancelled m } => $"reply cancelled {m.Disk}",
        CoordinatorDecision.Reply { Message: RelocationRefused } => "reply refused",
        CoordinatorDecision.Reply { Message: RelocationList m } => "reply list " + string.Join(" ", m.Relocations.Select(r => $"{r.Disk}:{r.Phase}:{r.Position}")),
        CoordinatorDecision.Reply { Message: DrainAccepted m } => "reply drain " + string.Join(" ", m.Relocations.Select(r => $"{r.Disk}:{r.Phase}:{r.Position}"))
            + " skipped " + string.Join(" ", m.Skipped.Select(s => s.Disk)),
        CoordinatorDecision.Lifecycle l when l.Kind is RelocationEventKind.Started or RelocationEventKind.Queued or RelocationEventKind.Completed or RelocationEventKind.Cancelled
            => $"event {l.Kind} {l.Disk}",
        _ => null,
    };
}
