using System.Text;
using Reloc.Actors.Coordinator;
using Reloc.Actors.Disk;
using Reloc.Actors.Site;
using static Reloc.Actors.Coordinator.RelocationProtocol;

namespace Reloc.Actors.Tests.Model;

/// <summary>An invariant of issue 4 does not hold (or the run did not settle).</summary>
internal sealed class ModelViolation(string invariant, string message) : Exception($"[{invariant}] {message}")
{
    public string Invariant { get; } = invariant;
}


/// <summary>Disk content as block versions: the guest's n-th write of a block carries version n+1 (the
/// initial image is version 1 everywhere; a freshly created, empty image reads as version 0).</summary>
internal sealed class Image(int[] initial)
{
    public Image(int blocks, int initial) : this(Enumerable.Repeat(initial, blocks).ToArray()) { }

    /// <summary>What a read sees (page cache).</summary>
    public int[] Volatile { get; } = initial.ToArray();
    /// <summary>What survives a crash (written back by fdatasync only).</summary>
    public int[] Durable { get; } = initial.ToArray();
    public void Sync() => Array.Copy(Volatile, Durable, Volatile.Length);
    public void Crash() => Array.Copy(Durable, Volatile, Volatile.Length);
}

/// <summary>
/// Deterministic discrete-event simulation of the ownership protocol of issue 4: sites (<see cref="SiteModel"/>),
/// coordinators (the real <see cref="CoordinatorCore"/> in <see cref="CoordinatorModel"/>), one guest, an operator, and a network that delays, reorders,
/// duplicates and drops; sites crash, coordinators fail over, the network partitions. Every random choice
/// comes from one <see cref="Random"/>(seed), so a seed replays exactly. Times are milliseconds.
/// </summary>
internal sealed partial class Sim
{
    public const string DiskName = "vm1";
    public const int BlockSize = RelocationProtocol.TrackingBlockSize; // the default block size: one model block is one tracked unit

    // Timing of the implementation (reference.conf, SiteActor, MigrationCoordinator).
    public const long StreamTickMs = 200, ResendMs = 1_000, DiskTickMs = 250, PersistIntervalMs = 1_000;
    public const long ReconcileIntervalMs = 2_000, CoordinatorAskTimeoutMs = 10_000, SiteAskTimeoutMs = 30_000;
    public const long MissTimeoutMs = 30_000, GuestAskTimeoutMs = MissTimeoutMs + 5_000;

    private readonly PriorityQueue<Action, (long, long)> _queue = new();
    private long _seq;
    private readonly Dictionary<(string, string), long> _lastDelivery = new();
    private readonly Dictionary<string, int> _group = new(StringComparer.Ordinal);
    private readonly List<string>? _trace;
    private int _relocationIds;

    public Sim(int seed, SimOptions options, bool trace)
    {
        Seed = seed;
        O = options;
        Rng = new Random(seed);
        _trace = trace ? [] : null;
        Sites = Enumerable.Range(0, options.Sites).Select(i => new SiteModel(this, ((char)('a' + i)).ToString())).ToArray();
        Guest = new Guest(this, options.Blocks);
    }

    public int Seed { get; }
    public SimOptions O { get; }
    public Random Rng { get; }
    public long Now { get; private set; }
    public bool Chaos { get; private set; } = true;
    public SiteModel[] Sites { get; }
    public Guest Guest { get; }
    public List<CoordinatorModel> Coordinators { get; } = [];
    public CoordinatorModel? Coordinator => Coordinators.Count > 0 && Coordinators[^1].Alive ? Coordinators[^1] : null;
    public long Events { get; private set; }
    public Stats Stats { get; } = new();
    public IReadOnlyList<string> TraceLines => _trace ?? [];

    public SiteModel Site(string name) => Sites.First(s => s.Name == name);
    public SiteModel? SiteOrNull(string name) => Sites.FirstOrDefault(s => s.Name == name);
    /// <summary>Guid.NewGuid() of MigrationCoordinator.OnFound: a fresh id per attempt, unique across coordinators.</summary>
    public string NewRelocation() => "r" + ++_relocationIds;

    /// <summary>SiteActor.OnPrepareIncoming: Guid.NewGuid() for IncomingAdded.Journal (deterministic here).</summary>
    public string NewJournal() => "j" + ++_journalIds;
    private int _journalIds;

    /// <summary>Relocations a coordinator saw end (released, or cancelled): for the notes that explain a violation.</summary>
    public HashSet<string> EndedRelocations { get; } = new(StringComparer.Ordinal);

    /// <summary>How long an fdatasync takes: usually milliseconds, sometimes seconds (a large dirty page cache).</summary>
    public long FlushLatency() => O.FlushMs ?? (Rng.Next(10) == 0 ? 100 + Rng.Next(3_000) : 1 + Rng.Next(20));

    public void Trace(string line)
    {
        _trace?.Add($"{Now,7} {line}");
    }

    public bool Tracing => _trace is not null;

    /// <summary>Facts the model saw that explain a violation (what the known findings are recognised by).</summary>
    public HashSet<string> Notes { get; } = [];

    public void Note(string fact)
    {
        if (Notes.Add(fact)) Trace($"note: {fact}");
    }

    // ---------------- scheduling ----------------

    public void After(long delayMs, Action action) => _queue.Enqueue(action, (Now + Math.Max(0, delayMs), _seq++));

    /// <summary>Between actors of one node (or an actor and its pipe): never lost, in order, soon.</summary>
    public void Local(string node, string to, Action deliver) => Deliver(node, to + "@" + node, Rng.Next(0, 3), deliver, fifo: true);

    private void Deliver(string from, string to, long delay, Action deliver, bool fifo)
    {
        if (fifo)
        {
            var key = (from, to);
            long at = Math.Max(Now + delay, _lastDelivery.GetValueOrDefault(key));
            _lastDelivery[key] = at;
            delay = at - Now;
        }
        After(delay, deliver);
    }

    /// <summary>A message between nodes (Akka remoting or an NBD connection): delayed, maybe reordered,
    /// duplicated or lost while the chaos lasts; lost across a partition (checked when sent and when it arrives).</summary>
    public void Send(string fromNode, string toNode, object body, Action deliver, bool nbd = false)
    {
        if (fromNode == toNode)
        {
            Local(fromNode, toNode, deliver);
            return;
        }
        if (Cut(fromNode, toNode) || (Chaos && Rng.NextDouble() < O.Drop))
        {
            Stats.Dropped++;
            if (Tracing) Trace($"  lost {fromNode}->{toNode} {Fmt(body)}");
            return;
        }
        var intercepted = O.Intercept?.Invoke(this, fromNode, toNode, body);
        int copies = intercepted?.Count ?? (!nbd && Chaos && Rng.NextDouble() < O.Duplicate ? 2 : 1);
        if (intercepted is not null && Tracing) Trace($"  intercepted {fromNode}->{toNode} {Fmt(body)}: {(copies == 0 ? "dropped" : "delivered after " + string.Join(", ", intercepted) + " ms")}");
        for (int i = 0; i < copies; i++)
        {
            long delay = intercepted?[i] ?? 1 + Rng.Next(30);
            if (intercepted is null && Chaos && Rng.NextDouble() < O.LongDelay) delay = 200 + Rng.Next(8_000);
            Deliver(fromNode, toNode, delay, () =>
            {
                if (Cut(fromNode, toNode))
                {
                    Stats.Dropped++;
                    if (Tracing) Trace($"  lost {fromNode}->{toNode} {Fmt(body)} (partition)");
                    return;
                }
                if (Tracing) Trace($"{fromNode}->{toNode} {Fmt(body)}");
                deliver();
            }, fifo: O.FifoPerPair || nbd);
        }
    }

    public bool Cut(string a, string b) => _group.GetValueOrDefault(a) != _group.GetValueOrDefault(b);

    // ---------------- the run ----------------

    public void Run()
    {
        foreach (var s in Sites) s.Boot();
        Sites[0].CreateInitialDisk(DiskName, O.Blocks);
        StartCoordinator();
        if (O.GuestRuns) After(1 + Rng.Next(50), GuestLoop);
        if (O.Script is null)
        {
            After(100 + Rng.Next(500), OperatorLoop);
            After(Rng.Next(1_000), FaultLoop);
        }
        else
        {
            foreach (var (at, action) in O.Script) After(at, () => action(this));
            After(O.ChaosMs + 1, OperatorLoop); // after the script, the operator ends what is left
        }
        After(O.ChaosMs, EndChaos);
        long end = O.ChaosMs + O.QuiesceMs;
        while (_queue.TryDequeue(out var action, out var when))
        {
            if (when.Item1 > end) break;
            Now = when.Item1;
            action();
            Events++;
            AfterEvent();
            CheckAlways();
            CheckEnds();
            if (!Chaos && Settled()) break;
        }
        FinalCheck();
    }

    private long _settledSince = -1;

    /// <summary>After the chaos: nothing relocating at any site, no coordinator flow, the guest idle — for a while.</summary>
    private bool Settled()
    {
        bool quiet = Sites.All(s => s.Up && s.Quiet) && Coordinator is { } c && c.Flows.Count == 0
                     && Sites.Count(s => s.State.TryGet(DiskName, out _)) == 1;
        if (!quiet) { _settledSince = -1; return false; }
        if (_settledSince < 0) _settledSince = Now;
        return Now - _settledSince > 3 * ReconcileIntervalMs;
    }

    private void EndChaos()
    {
        Chaos = false;
        Trace("==== chaos ends: partitions heal, crashed sites restart, a coordinator runs, nothing is lost any more");
        _group.Clear();
        foreach (var s in Sites.Where(s => !s.Up)) s.Restart();
        foreach (var c in Coordinators.Take(Coordinators.Count - 1).Where(c => c.Alive)) c.Die();
        if (Coordinator is null) StartCoordinator();
    }

    // ---------------- coordinator fail-over ----------------

    public void StartCoordinator()
    {
        var c = new CoordinatorModel(this, Coordinators.Count + 1);
        Coordinators.Add(c);
        Trace($"coordinator k{c.Incarnation} starts (no memory of flows)");
        c.Start();
        FlushProxies();
    }

    // ---------------- operator ----------------

    private void OperatorLoop()
    {
        var c = Coordinator;
        After(Chaos ? 200 + Rng.Next(O.RelocateEveryMs) : ReconcileIntervalMs * 2, OperatorLoop);
        if (c is null) return;
        int dice = Rng.Next(100);
        object? request = null;
        if (c.Flows.TryGetValue(DiskName, out var flow))
        {
            // A relocation that never starts (its source keeps refusing it) is cancelled, as an operator would.
            if (flow.Phase != RelocationPhase.Starting) _startingSince.Remove(flow.Relocation);
            else _startingSince.TryAdd(flow.Relocation, Now);
            bool neverStarts = _startingSince.TryGetValue(flow.Relocation, out var since) && Now - since >= 5 * ReconcileIntervalMs;
            if (neverStarts) request = new CancelRelocation(DiskName);
            // After the chaos the operator ends what is left: a relocation waiting for a trigger gets one (or is cancelled).
            // A VM that migrates triggers its handover itself, and an idle disk moves by the reconciler (invariant 5).
            else if (!Chaos) request = O.CancelAtEnd && dice < 50 ? new CancelRelocation(DiskName) : O.GuestMigrates ? null : new RequestHandover(DiskName);
            else if (dice < 15) request = new RequestHandover(DiskName);
            else if (dice < 20) request = new CancelRelocation(DiskName);
        }
        else if (Chaos && dice < 70)
        {
            var owner = Sites.FirstOrDefault(s => s.Up && s.State.TryGet(DiskName, out var d) && d.Phase == DiskPhase.Owned);
            bool relocating = Sites.Any(s => s.State.TryGet(DiskName, out var d) && d.Phase != DiskPhase.Owned);
            if (!relocating && owner is not null)
            {
                var to = Sites.Where(s => s != owner).ElementAt(Rng.Next(Sites.Length - 1)).Name;
                // Without a guest, pure post-copy on demand never completes: nothing reads.
                request = new Relocate(DiskName, to, Hybrid: Rng.Next(2) == 0, Prefetch: Rng.Next(5) != 0 || !O.GuestRuns);
                Stats.Relocations++;
            }
        }
        if (request is null) return;
        Trace($"operator -> k{c.Incarnation} {Fmt(request)}");
        c.Receive(request, Operator);
    }

    private readonly Dictionary<string, long> _startingSince = new(StringComparer.Ordinal);

    /// <summary>For scripts: the operator's request to the coordinator now running.</summary>
    public void Ask(object request)
    {
        if (Coordinator is not { } c) return;
        Trace($"operator -> k{c.Incarnation} {Fmt(request)}");
        if (request is Relocate) Stats.Relocations++;
        c.Receive(request, Operator);
    }

    /// <summary>For scripts: the singleton moves: the coordinator stops (what it sent is still in flight), a new one starts.</summary>
    public void Failover()
    {
        Coordinator?.Die();
        StartCoordinator();
    }

    /// <summary>For scripts: the operator's request to one coordinator (a zombie too).</summary>
    public void AskCoordinator(int incarnation, object request)
    {
        var c = Coordinators[incarnation - 1];
        Trace($"operator -> k{c.Incarnation} {Fmt(request)}");
        c.Receive(request, Operator);
    }

    /// <summary>For scripts: split brain: a new coordinator starts while the old one keeps running (until the chaos ends).</summary>
    public void SplitBrain()
    {
        if (Coordinator is { } c) Trace($"coordinator k{c.Incarnation} loses the singleton role but keeps running");
        StartCoordinator();
    }

    /// <summary>For scripts: kill -9 a site and start it again after <paramref name="downMs"/>.</summary>
    public void Bounce(string site, long downMs = 0)
    {
        var s = Site(site);
        s.Crash();
        if (downMs == 0) s.Restart();
        else After(downMs, s.Restart);
    }

    /// <summary>Replies to the operator: only traced.</summary>
    public Addr Operator { get; } = new("operator", 0);

    // ---------------- faults ----------------

    private void FaultLoop()
    {
        if (!Chaos) return;
        const int stepMs = 250;
        After(stepMs, FaultLoop);
        double p(double perSecond) => perSecond * stepMs / 1000.0;
        if (Rng.NextDouble() < p(O.CrashPerSecond))
        {
            var up = Sites.Where(s => s.Up).ToList();
            if (up.Count > 0)
            {
                var s = up[Rng.Next(up.Count)];
                long down = Rng.Next(4) == 0 ? 5_000 + Rng.Next(40_000) : 20 + Rng.Next(3_000);
                s.Crash();
                After(down, () => { if (!s.Up && Chaos) s.Restart(); });
            }
        }
        if (Rng.NextDouble() < p(O.FailoverPerSecond) && Coordinator is { } c)
        {
            // The singleton moves: the old one stops (or, split brain, keeps running a while); the new one starts later.
            if (O.Zombies && Rng.Next(2) == 0)
            {
                long zombie = 100 + Rng.Next(10_000);
                Trace($"coordinator k{c.Incarnation} loses the singleton role but keeps running for {zombie} ms");
                After(zombie, () =>
                {
                    if (c.Alive) c.Die();
                    if (Coordinator is null && !Chaos) StartCoordinator();
                });
                After(Rng.Next(2_000), () => { if (Chaos && Coordinators[^1] == c) StartCoordinator(); });
            }
            else
            {
                c.Die();
                long gap = Rng.Next(4) == 0 ? 5_000 + Rng.Next(40_000) : 50 + Rng.Next(3_000);
                After(gap, () => { if (Chaos && Coordinator is null) StartCoordinator(); });
            }
        }
        if (Rng.NextDouble() < p(O.PartitionPerSecond))
        {
            var nodes = Sites.Select(s => s.Name).Concat(Coordinators.Where(k => k.Alive).Select(k => k.Node)).ToList();
            foreach (var n in nodes) _group[n] = Rng.Next(2);
            long heal = 100 + Rng.Next(Rng.Next(4) == 0 ? 40_000 : 5_000);
            Trace($"partition {{{string.Join(",", nodes.Where(n => _group[n] == 0))}}} | {{{string.Join(",", nodes.Where(n => _group[n] == 1))}}} for {heal} ms");
            int generation = ++_partitionGeneration;
            After(heal, () =>
            {
                if (generation != _partitionGeneration) return;
                _group.Clear();
                Trace("partition heals");
            });
        }
    }

    private int _partitionGeneration;

    // ---------------- the guest ----------------

    private void GuestLoop()
    {
        After(1 + Rng.Next(2 * O.GuestThinkMs), GuestLoop);
        Guest.Act();
    }

    // ---------------- invariants ----------------

    private readonly Dictionary<long, string> _writerOfEpoch = new();

    /// <summary>After every event. (1) at most one site accepts the disk's writes, and an epoch's writes are
    /// only ever accepted at one site.</summary>
    private void CheckAlways()
    {
        string? writer = null;
        foreach (var s in Sites)
        {
            var epoch = s.AcceptsWritesAt(DiskName);
            if (epoch is null) continue;
            if (writer is not null)
                throw new ModelViolation("1 one writer", $"sites {writer} and {s.Name} both accept writes for {DiskName} ({Describe()})");
            writer = s.Name;
            if (_writerOfEpoch.TryGetValue(epoch.Value, out var earlier) && earlier != s.Name)
                throw new ModelViolation("1 one writer per epoch", $"site {s.Name} accepts writes at epoch {epoch} after site {earlier} did ({Describe()})");
            _writerOfEpoch[epoch.Value] = s.Name;
        }
    }

    /// <summary>How long after the faults stop every relocation must have ended: a site down at the end restarts and
    /// recovers, a miss or an ask times out, the reconciler's idle trigger waits its rounds, the copy completes.</summary>
    public const long EndsWithinMs = 120_000;

    /// <summary>When no relocation was under way any more after the faults stopped (for the bound's margin).</summary>
    public long? EndedAfterChaosMs { get; private set; }

    /// <summary>(5) Once the faults stop, every relocation ends (done or cancelled) within <see cref="EndsWithinMs"/>,
    /// by the system alone: after the chaos the operator asks for a handover only of a VM that does not migrate.</summary>
    private void CheckEnds()
    {
        if (Chaos || EndedAfterChaosMs is not null) return;
        bool underway = Sites.Any(s => s.State.TryGet(DiskName, out var d) && d.Phase != DiskPhase.Owned) || Coordinator is { Flows.Count: > 0 };
        if (!underway) EndedAfterChaosMs = Now - O.ChaosMs;
        else if (Now - O.ChaosMs > EndsWithinMs)
            throw new ModelViolation("5 ends in bounded time", $"{EndsWithinMs} ms after the faults stopped a relocation is still under way: {Describe()}");
    }

    /// <summary>(2) A message whose epoch is older than the receiver's must leave the receiver as it was.</summary>
    public void CheckStale(string receiver, object message, long messageBase, long receiverBase, string before, string after)
    {
        if (messageBase < receiverBase && before != after)
        {
            // Recorded, not thrown: the run goes on, so that what the stale message leads to (a lost write, two
            // writers) is found too; reported at the end if nothing worse happens.
            var v = new ModelViolation("2 stale epoch", $"{receiver} changed on {Fmt(message)} (relocation from epoch {messageBase}) while at epoch {receiverBase}:\n  before: {before}\n  after:  {after}");
            _stale.Add(v);
            Note($"{receiver} acted on a stale {message.GetType().Name}");
            Trace($"!!! {v.Message}");
        }
    }

    /// <summary>(2) A step or answer naming another relocation than the one the receiver is on must leave it as it was.</summary>
    public void CheckForeign(string receiver, object message, string messageRelocation, string receiverRelocation, string before, string after)
    {
        if (before == after) return;
        var v = new ModelViolation("2 stale relocation", $"{receiver} changed on {Fmt(message)} (relocation {messageRelocation}) while on relocation {receiverRelocation}:\n  before: {before}\n  after:  {after}");
        _stale.Add(v);
        Note($"{receiver} acted on a {message.GetType().Name} of another relocation");
        Trace($"!!! {v.Message}");
    }

    private readonly List<ModelViolation> _stale = [];

    /// <summary>(4) When a copy completes (every block local, this site the owner), each of its blocks holds the
    /// guest's last acknowledged write of it, wherever that write was made: nothing the source knew is lost.</summary>
    public void CheckCompleteCopy(string site, Image image)
    {
        var lost = Enumerable.Range(0, O.Blocks).Where(b => image.Volatile[b] < Guest.Acked[b])
            .Select(b => $"block {b} holds v{image.Volatile[b]}, v{Guest.Acked[b]} was acknowledged").ToList();
        if (lost.Count > 0)
            throw new ModelViolation("4 complete copy", $"{site} completed its copy without the guest's last writes: {string.Join("; ", lost)}: {Describe()}");
    }

    private void FinalCheck()
    {
        if (!Settled() && !(Now - _settledSince > 3 * ReconcileIntervalMs && _settledSince >= 0))
        {
            var leaked = Sites.Where(s => s.Up).SelectMany(s => s.Incoming.Values.Where(a => !a.Complete && a.Reserved.Count > 0).Select(a => (s, a))).FirstOrDefault();
            if (leaked.a is not null)
                throw new ModelViolation("4 settles: leaked write reservation",
                    $"after {O.QuiesceMs} ms without faults block(s) {string.Join(",", leaked.a.Reserved)} at {leaked.s.Name} stay reserved by a guest write nobody completes: the relocation never completes: {Describe()}");
            bool Has(string site, Func<SiteDisk, bool> what) => SiteOrNull(site) is { } x && x.State.TryGet(DiskName, out var d) && what(d);
            foreach (var s in Sites)
            {
                if (!s.State.TryGet(DiskName, out var d)) continue;
                if (d.Phase == DiskPhase.Fenced && !Has(d.Peer, p => (p.Phase == DiskPhase.Incoming && p.Relocation == d.Relocation) || p.Phase == DiskPhase.Owned))
                {
                    // The handover it was fenced for happened, and the disk moved on from there: a leak, not a loss.
                    var movedOn = Sites.FirstOrDefault(x => x != s && x.AcceptsWritesAt(DiskName) >= d.Epoch);
                    if (movedOn is not null)
                        throw new ModelViolation("4 settles: fenced copy never released",
                            $"after {O.QuiesceMs} ms without faults {s.Name} is still fenced for {d.Peer} by relocation {d.Relocation} at epoch {d.Epoch}, " +
                            $"while {movedOn.Name} owns the disk at epoch {movedOn.AcceptsWritesAt(DiskName)}: nothing releases the copy: {Describe()}");
                    var image = s.Owned[DiskName].Image.Volatile;
                    var lost = Enumerable.Range(0, O.Blocks).Where(b => image[b] < Guest.Acked[b]).Select(b => $"block {b} acknowledged at v{Guest.Acked[b]}{(Guest.Flushed[b] == Guest.Acked[b] ? " (flushed)" : "")}, only v{image[b]} left").ToList();
                    throw new ModelViolation("4 settles: orphaned disk",
                        $"after {O.QuiesceMs} ms without faults {s.Name} is fenced for {d.Peer} by relocation {d.Relocation}, which does not have the disk from it: no site will accept its writes again" +
                        $"{(lost.Count > 0 ? "; and writes are lost: " + string.Join("; ", lost) : "")}: {Describe()}");
                }
                if (d.Phase == DiskPhase.Incoming && !(s.Incoming.TryGetValue(DiskName, out var a) && a.State.IsOwner)
                    && !Has(d.Peer, p => p.Phase is DiskPhase.Outgoing or DiskPhase.Fenced && p.Peer == s.Name && p.Relocation == d.Relocation))
                    throw new ModelViolation("4 settles: orphaned incoming copy",
                        $"after {O.QuiesceMs} ms without faults {s.Name} holds an incoming copy from {d.Peer} (relocation {d.Relocation}), which is not relocating it there by it: nothing removes it: {Describe()}");
            }
            var unreported = Sites.FirstOrDefault(s => s.State.TryGet(DiskName, out var d) && d.Phase == DiskPhase.Incoming && s.Incoming.TryGetValue(DiskName, out var a) && a.Complete);
            if (unreported is not null)
                throw new ModelViolation("4 settles: complete copy never reported",
                    $"after {O.QuiesceMs} ms without faults {unreported.Name} holds every block and owns the disk, but its site still calls it incoming: the source is never released: {Describe()}");
            var c = Coordinator;
            var flow = c?.Flows.Values.FirstOrDefault();
            var source = Sites.FirstOrDefault(s => s.State.TryGet(DiskName, out var d) && d.Phase is DiskPhase.Outgoing or DiskPhase.Fenced);
            if (flow is not null && source is not null && source.State.TryGet(DiskName, out var sd) && (flow.From != source.Name || flow.To != sd.Peer || flow.Relocation != sd.Relocation))
                throw new ModelViolation("4 settles: flow with other endpoints",
                    $"after {O.QuiesceMs} ms without faults the coordinator drives {flow} while the sites relocate from {source.Name} to {sd.Peer} by {sd.Relocation}: {Describe()}");
            throw new ModelViolation("4 settles", $"after {O.QuiesceMs} ms without faults the relocation neither completed nor aborted: {Describe()}");
        }
        var holders = Sites.Where(s => s.State.TryGet(DiskName, out _)).ToList();
        var owner = holders.Single();
        if (owner.AcceptsWritesAt(DiskName) is null)
            throw new ModelViolation("4 settles: owner refuses writes", $"{owner.Name} holds {DiskName} but refuses its writes: {Describe()}");
        for (int b = 0; b < O.Blocks; b++)
        {
            int v = owner.SettledVersion(DiskName, b);
            if (v < Guest.Acked[b])
                throw new ModelViolation("4 no lost write", $"block {b} reads version {v} at the owner {owner.Name}, but version {Guest.Acked[b]} was acknowledged{(Guest.Acked[b] == Guest.Flushed[b] ? " and flushed" : "")}: {Describe()}");
        }
        // A stale message that changed a site weighs more than one that changed a coordinator's (volatile) flows.
        if (_stale.Count > 0) throw _stale.FirstOrDefault(v => !v.Message.Contains("] coordinator ")) ?? _stale[0];
    }

    public string Describe()
    {
        var sb = new StringBuilder();
        foreach (var s in Sites) sb.Append(s.Describe()).Append("; ");
        foreach (var c in Coordinators.Where(c => c.Alive)) sb.Append(c.Describe()).Append("; ");
        sb.Append(Guest.Describe());
        return sb.ToString();
    }

    // ---------------- formatting ----------------

    public static string Fmt(object? o) => o switch
    {
        null => "null",
        IReadOnlyList<(long First, long Count)> runs => Runs(runs),
        InvalidateAt m => $"InvalidateAt({m.Disk}, e{m.Epoch}, seq {m.Seq}, {Runs(m.Blocks)}, #{m.Relocation})",
        Fenced m => $"Fenced({m.Disk}, e{m.NewEpoch}, {Runs(m.FinalDirty)}, #{m.Relocation})",
        TakeOwnershipAt m => $"TakeOwnershipAt({m.Disk}, e{m.NewEpoch}, {Runs(m.FinalDirty)}, #{m.Relocation})",
        SiteProtocol.DiskList l => $"DiskList({l.Site}: {string.Join(", ", l.Disks.Select(d => $"{d.Phase} e{d.Epoch}{(d.Peer.Length > 0 ? " peer " + d.Peer : "")}{(d.Relocation.Length > 0 ? " #" + d.Relocation : "")}{(d.Writable ? " writable" : "")}{(d.Clients > 0 ? $" clients {d.Clients}" : "")}{(d.HandoverWanted ? " wanted" : "")}"))})",
        SiteEvents.DiskFenced f => $"DiskFenced({f.Name}, e{f.NewEpoch}, to {f.ToSite}, {Runs(f.FinalDirty ?? [])}, #{f.Relocation})",
        _ => o.ToString() ?? "?",
    };

    public static string Runs(IReadOnlyList<(long First, long Count)> runs) =>
        "[" + string.Join(",", runs.Select(r => r.Count == 1 ? $"{r.First}" : $"{r.First}..{r.First + r.Count - 1}")) + "]";
}

/// <summary>Where a reply goes: an actor of one incarnation of a node (a restarted node is a new incarnation).</summary>
internal sealed record Addr(string Node, int Incarnation, int Ask = 0);

internal sealed class Stats
{
    public long Dropped, Relocations, Handovers, Completions, Cancels, Reads, Writes, Flushes, FailedOps, Crashes, Failovers;
    /// <summary>StartOutgoing refused by a site that owns the disk after it arrived by relocation but has no OwnedDisk for it (F1).</summary>
    public long RefusedArrived;
    /// <summary>How often each protection of the protocol acted (what the directed scenarios check they exercise).</summary>
    public Dictionary<string, long> Paths { get; } = new(StringComparer.Ordinal);
    /// <summary>The block state changes the disk cores made (all of them in <see cref="BlockTransitions.Table"/>).</summary>
    public HashSet<(Reloc.Storage.BlockState, BlockEvent, Reloc.Storage.BlockState)> BlockMoves { get; } = [];
    public void Hit(string path) => Paths[path] = Paths.GetValueOrDefault(path) + 1;
    public long this[string path] => Paths.GetValueOrDefault(path);
}
