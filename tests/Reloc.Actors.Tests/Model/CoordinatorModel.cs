using Reloc.Actors.Coordinator;
using Reloc.Actors.Site;
using static Reloc.Actors.Coordinator.RelocationProtocol;

namespace Reloc.Actors.Tests.Model;

/// <summary>
/// The simulation's shell of the real <see cref="CoordinatorCore"/> (as <see cref="MigrationCoordinator"/> is the
/// actor's): messages in as inputs, decisions carried out over the simulated network. Flows live in the core's
/// memory only (a fail-over loses them). One instance per incarnation of the singleton, each on its own node
/// (for partitions).
/// </summary>
internal sealed class CoordinatorModel
{
    private readonly Sim _sim;
    private readonly CoordinatorCore _core;

    public CoordinatorModel(Sim sim, int incarnation)
    {
        _sim = sim;
        Incarnation = incarnation;
        _core = new CoordinatorCore(TimeSpan.FromMilliseconds(Sim.ReconcileIntervalMs), sim.NewRelocation);
    }

    public int Incarnation { get; }
    public string Node => "k" + Incarnation;
    public bool Alive { get; private set; }
    public IReadOnlyDictionary<string, CoordinatorCore.FlowView> Flows => _core.Flows.ToDictionary(f => f.Disk, StringComparer.Ordinal);
    private Addr Self => new(Node, Incarnation);

    /// <summary>The simulated clock as the core's time.</summary>
    private static DateTime At(long ms) => DateTime.UnixEpoch.AddMilliseconds(ms);
    private DateTime Now => At(_sim.Now);

    /// <summary>PreStart: reconcile at once, then every interval.</summary>
    public void Start()
    {
        Alive = true;
        _sim.Stats.Failovers++;
        void Fire()
        {
            if (!Alive) return;
            _sim.After(Sim.ReconcileIntervalMs, Fire);
            Run(new CoordinatorInput.Tick(Now));
        }
        _sim.After(0, Fire);
    }

    public void Die()
    {
        Alive = false;
        _sim.Trace($"coordinator k{Incarnation} stops");
    }

    /// <summary>A message to the coordinator (from a site, an ask's pipe, or the operator).</summary>
    public void Receive(object m, Addr sender)
    {
        if (!Alive) return;
        long? messageBase = SiteModel.EpochBase(m);
        var disk = SiteModel.DiskOf(m) is { Length: > 0 } name ? name : (m as HandoverRequested)?.Disk ?? "";
        var flow = _core.FlowOf(disk);
        bool stale = messageBase is not null && flow is not null && messageBase < flow.Epoch;
        // An answer (or a handover request) of another relocation than the flow's must change nothing.
        var relocation = SiteModel.RelocationOf(m);
        var current = relocation is not null ? flow?.Relocation : null;
        bool foreign = current is not null && current != relocation;
        string before = stale || foreign ? Fingerprint() : "";
        Run(m switch
        {
            Relocate r => new CoordinatorInput.Relocate(r, sender, _sim.Sites.Select(s => s.Name).ToList()),
            RequestHandover or CancelRelocation or SetRelocationRate or GetRelocations or GetRelocationStatus => new CoordinatorInput.Command(m, sender, Now),
            _ => new CoordinatorInput.FromSite(m, sender.Node, Now),
        });
        if (stale) _sim.CheckStale($"coordinator k{Incarnation}", m, messageBase!.Value, flow!.Epoch, before, Fingerprint());
        if (foreign) _sim.CheckForeign($"coordinator k{Incarnation}", m, relocation!, current!, before, Fingerprint());
    }

    private string Fingerprint() => string.Join(";", _core.Flows.Select(f => $"{f}{(f.WriteAtDestination ? " early handover" : "")}"));

    private void Run(CoordinatorInput input)
    {
        if (input is CoordinatorInput.Observed o)
            foreach (var d in Reconciler.Derive(o.Lists).Where(d => d.Anomaly is null)) NoteIfStale(d);
        foreach (var decision in _core.Handle(input)) Execute(decision);
    }

    private void Execute(CoordinatorDecision decision)
    {
        switch (decision)
        {
            case CoordinatorDecision.SendToSite s:
                _sim.ToSite(Node, s.Site, s.Message, Self);
                break;
            case CoordinatorDecision.Reply r:
                _sim.Reply(Self, (Addr)r.To, r.Message);
                break;
            case CoordinatorDecision.AskAllSites { ForRelocate: null } a:
                AskAllSites(lists => Run(new CoordinatorInput.Observed(lists.OfType<SiteProtocol.DiskList>().ToList(), a.AskedAt, Now)));
                break;
            case CoordinatorDecision.AskAllSites { ForRelocate: { } request } a:
                // Task.WhenAll fails if any ask failed: Found with no lists.
                AskAllSites(answers => Run(new CoordinatorInput.Found(request, a.ReplyTo!,
                    answers.Any(x => x is null) ? [] : answers.Select(x => x!).ToList(), Now)));
                break;
            case CoordinatorDecision.Log l:
                if (PathOf(l.Event) is { } path) _sim.Stats.Hit(path);
                _sim.Trace($"  k{Incarnation}: {l.Text}");
                break;
            case CoordinatorDecision.Lifecycle:
                break; // the history's concern, not the protocol's
            case CoordinatorDecision.Ended e:
                _sim.EndedRelocations.Add(e.Relocation);
                if (e.Cancelled) _sim.Stats.Cancels++;
                break;
            default:
                throw new InvalidOperationException($"coordinator k{Incarnation} decided {decision}");
        }
    }

    private static string? PathOf(CoordinatorEvent e) => e switch
    {
        CoordinatorEvent.DropAfterStop => Paths.DropAfterStop,
        CoordinatorEvent.RefusedLeftoverCopy => Paths.RefusedLeftoverCopy,
        CoordinatorEvent.SitesWin => Paths.SitesWin,
        CoordinatorEvent.StaleRoundNotJudged => Paths.StaleRoundNotJudged,
        CoordinatorEvent.ForeignAnswerIgnored => Paths.ForeignAnswerIgnored,
        CoordinatorEvent.IdleHandover => Paths.IdleHandover,
        _ => null,
    };

    /// <summary>Ask every site for its disks (each ask times out on its own); then <paramref name="then"/> with
    /// the lists in site order (null where the ask failed), in this actor's mailbox.</summary>
    private void AskAllSites(Action<SiteProtocol.DiskList?[]> then)
    {
        var sites = _sim.Sites.Select(s => s.Name).ToList(); // Sites(): every member with a site role
        var lists = new SiteProtocol.DiskList?[sites.Count];
        int remaining = sites.Count;
        for (int i = 0; i < sites.Count; i++)
        {
            int index = i;
            bool over = false;
            void Complete(SiteProtocol.DiskList? list)
            {
                if (over) return;
                over = true;
                lists[index] = list;
                if (--remaining == 0) _sim.Local(Node, "coordinator", () => { if (Alive) then(lists); });
            }
            var ask = _sim.NewAsk(Node, Incarnation, r => Complete(r as SiteProtocol.DiskList));
            _sim.ToSite(Node, sites[i], new SiteProtocol.ListDisks(), ask);
            _sim.After(Sim.CoordinatorAskTimeoutMs, () => Complete(null));
        }
    }

    /// <summary>For the checks: the round's answers may be of different ages; note when what it derives is not
    /// what the sites show now (what the coordinator then does is based on the past).</summary>
    private void NoteIfStale(Reconciler.Derived d)
    {
        var lists = _sim.Sites.Select(s => s.ListNow()).OfType<SiteProtocol.DiskList>().ToList();
        var now = Reconciler.Derive(lists).FirstOrDefault(x => x.Info.Disk == d.Info.Disk);
        if (now is null || now.Info != d.Info || now.Relocation != d.Relocation)
            _sim.Note($"coordinator k{Incarnation} reconciles from a stale view: derived {d.Info.FromSite}->{d.Info.ToSite} e{d.Info.Epoch} #{d.Relocation} {d.Info.Phase}, the sites now show {(now is null ? "no relocation" : $"{now.Info.FromSite}->{now.Info.ToSite} e{now.Info.Epoch} #{now.Relocation} {now.Info.Phase}")}");
    }

    public string Describe() => $"k{Incarnation}: {(_core.Flows.Count == 0 ? "no flows" : string.Join(", ", _core.Flows))}";
}
