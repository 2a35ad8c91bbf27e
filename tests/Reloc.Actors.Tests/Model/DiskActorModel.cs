using System.Text;
using Reloc.Actors.Disk;
using Reloc.Storage;
using P = Reloc.Actors.Disk.VirtualDiskProtocol;

namespace Reloc.Actors.Tests.Model;

/// <summary>
/// The shell of the production <see cref="DiskCore"/> at a destination site, as <see cref="VirtualDiskActor"/>
/// is, with its children (<c>BlockFetcher</c> for misses and read-through, <c>Prefetcher</c> for background copy
/// and hole scans) over the simulated network, fdatasync latency, and its NBD face (the guest's entry points, in
/// DiskActorModel.Guest.cs). The journal holds the core's real events and recovery replays them through
/// <see cref="DiskState.Apply"/>. Messages are closures run in the actor's mailbox order; while the actor
/// recovers they are stashed (as Akka.Persistence does). Snapshots are not kept: recovery replays the whole journal.
/// </summary>
internal sealed partial class DiskActorModel
{
    private sealed record FetchInFlight(long First, long Count, bool Prefetch, int[] InvalidationsAtIssue, bool Zero = false);

    private const int PrefetchWindow = 2, PrefetchChunkBlocks = 2;

    private readonly Sim _sim;
    private readonly SiteModel _site;
    private readonly int _siteInc;
    private readonly string _source;
    private readonly List<object> _journal;
    private readonly bool _prefetchEnabled;
    private readonly DiskCore _core;
    private readonly object _prefetcher = new(); // the reply token of the prefetcher's RequestWork
    private readonly List<Action> _stash = [];
    private readonly Dictionary<int, FetchInFlight> _fetches = [];
    private readonly int[] _invalidations; // per block: how many invalidations the core applied (invariant 3)
    private readonly HashSet<long> _scansInFlight = [];
    private string? _ownershipBefore; // the fingerprint before a TakeOwnership of an older relocation
    private bool _prefetchPaused, _stopped, _dead, _noWork;
    private int _fetchIds, _prefetchInFlight, _prefetchRequested, _tickGeneration;

    public DiskActorModel(Sim sim, SiteModel site, string name, long incomingEpoch, string relocation, string source, Image image, List<object> journal, bool prefetch)
    {
        (_sim, _site, _siteInc, _source, _journal, _prefetchEnabled) = (sim, site, site.Inc, source, journal, prefetch);
        (Name, IncomingEpoch, Relocation, Image) = (name, incomingEpoch, relocation, image);
        State = new DiskState(sim.O.Blocks * (long)Sim.BlockSize, Sim.BlockSize, owner: false);
        _invalidations = new int[sim.O.Blocks];
        _core = new DiskCore(name, State, new DiskSettings
        {
            BlockSize = Sim.BlockSize,
            MissTimeout = TimeSpan.FromMilliseconds(Sim.MissTimeoutMs),
            PersistInterval = TimeSpan.FromMilliseconds(Sim.PersistIntervalMs),
            Prefetch = prefetch,
            SnapshotEvery = int.MaxValue,
        })
        {
            // Every block state change the core makes must be one of the table README draws.
            Observer = (from, why, to) =>
            {
                if (!BlockTransitions.Allows(from, why, to))
                    throw new ModelViolation("6 block transitions", $"{site.Name} moved a block {from} -> {to} on {why}, which BlockTransitions.Table does not hold");
                sim.Stats.BlockMoves.Add((from, why, to));
            },
        };
    }

    public string Name { get; }
    /// <summary>The epoch of the relocation that created it (SiteDisk.Epoch of the incoming disk).</summary>
    public long IncomingEpoch { get; }
    /// <summary>The relocation it arrives by (SiteDisk.Relocation of the incoming disk; its journal is keyed by SiteDisk.Journal, fresh per arrival).</summary>
    public string Relocation { get; }
    /// <summary>The export's device: the owned-disk layer over this disk's relocating disk.</summary>
    public ModelDevice Front { get; set; } = null!;
    public DiskState State { get; }
    public Image Image { get; }
    /// <summary>The journal says this site owns the disk (true even while recovery has not replayed it yet).</summary>
    public bool OwnedDurably => _journal.OfType<DiskEvents.OwnershipTaken>().Any();
    public bool Recovering { get; private set; } = true;
    public bool Complete => _core.Completed;
    private BlockMap Map => State.Map;
    private bool Alive => !_stopped && !_dead && _site.Up && _site.Inc == _siteInc;
    private DateTime Now => DateTime.UnixEpoch.AddMilliseconds(_sim.Now);

    /// <summary>The epoch at which a guest write would be acknowledged here now (during recovery: what the journal will say).</summary>
    public long? OwnerEpoch
    {
        get
        {
            if (!Alive) return null;
            if (!Recovering) return State.IsOwner ? State.Epoch : null;
            var taken = _journal.OfType<DiskEvents.OwnershipTaken>().LastOrDefault();
            return taken?.Epoch;
        }
    }

    public bool Settled => Complete || !Alive;

    /// <summary>The source served this copy blocks while it did not track writes for it (not outgoing to it at its epoch, nor fenced).</summary>
    public bool CopiedUntracked { get; private set; }

    /// <summary>Blocks reserved by a guest write whose grant nobody holds any more (diagnosis of a run that did not settle).</summary>
    public IReadOnlyCollection<long> Reserved => _core.Reserved;

    // ---------------- mailbox ----------------

    public void Tell(Action handler) => _sim.Local(_site.Name, "disk", () =>
    {
        if (!Alive) return;
        if (Recovering) _stash.Add(handler);
        else handler();
    });

    /// <summary>The site crashed: the actor is gone, nothing more happens (its guests see the connection drop).</summary>
    public void Kill() => _dead = true;

    /// <summary>Context.Stop (the disk was dropped or released): pending asks are never answered; the export is gone.</summary>
    public void Stop() => _stopped = true;

    /// <summary>Akka.Persistence recovery: replay the journal into the fresh DiskState, then Recovered.</summary>
    public void BeginRecovery() => _sim.After(1 + _sim.Rng.Next(30), () =>
    {
        if (!Alive) return;
        foreach (var e in _journal) State.Apply(e);
        Recovering = false;
        if (_sim.Tracing) _sim.Trace($"  {_site.Name} disk actor recovered: {Describe()}");
        if (!State.Completed) StartTick();
        Feed(new DiskInput.Recovered(Now));
        var stashed = _stash.ToList();
        _stash.Clear();
        foreach (var h in stashed) if (Alive) h();
        PumpPrefetch(); // the Prefetcher asks for work only after what was stashed (PausePrefetch)
    });

    private void StartTick()
    {
        int generation = ++_tickGeneration;
        void Fire()
        {
            if (!Alive || Complete || generation != _tickGeneration) return;
            _sim.After(Sim.DiskTickMs, Fire);
            Tell(() =>
            {
                Feed(new DiskInput.Tick(Now));
                PumpPrefetch(); // the prefetcher's Kick timer
            });
        }
        _sim.After(Sim.DiskTickMs, Fire);
    }

    public void PausePrefetch() => _prefetchPaused = true;

    public void ResumePrefetch()
    {
        _prefetchPaused = false;
        PumpPrefetch();
    }

    // ---------------- the core's decisions ----------------

    private void Feed(DiskInput input)
    {
        var decisions = _core.Handle(input);
        if (_sim.Tracing && input is not DiskInput.Tick) _sim.Trace($"  {_site.Name} disk core: {input} -> {string.Join("; ", decisions.Where(d => d is not DiskDecision.Log))} | {Describe()}");
        foreach (var d in decisions) Execute(d);
    }

    private void Execute(DiskDecision decision)
    {
        switch (decision)
        {
            case DiskDecision.Reply { To: var to } r when to == _prefetcher: OnWork(r.Message); break;
            case DiskDecision.Reply r: ((Action<object>)r.To)(r.Message); break;
            case DiskDecision.StartFetch f: StartFetch(f.First, f.Count, prefetch: false); break;
            case DiskDecision.ForwardReadThrough r: ReadThrough((int)(r.Offset / Sim.BlockSize), (Action<object>)r.ReplyTo); break;
            case DiskDecision.ScanSource s: ScanSource(s.Scan, s.Ranges); break;
            case DiskDecision.StartSync s:
                _sim.After(_sim.FlushLatency(), () =>
                {
                    if (!Alive) return;
                    Image.Sync();
                    Tell(() => Feed(new DiskInput.DataSynced(s.Id)));
                });
                break;
            case DiskDecision.Persist p:
                foreach (var e in p.Events.OfType<DiskEvents.BlocksInvalidated>())
                    for (long b = e.First; b < e.First + e.Count; b++) _invalidations[b]++;
                _journal.AddRange(p.Events);
                Tell(() =>
                {
                    Feed(new DiskInput.Persisted(p.Then));
                    PumpPrefetch();
                });
                break;
            case DiskDecision.SaveSnapshot: break;
            case DiskDecision.Publish { Message: P.WriteHeldForHandover }:
                ToSite(site => site.OnWriteHeldForHandover(Name));
                break;
            case DiskDecision.Publish { Message: P.RelocationFinished }:
                ToSite(site => site.OnRelocationFinished(Name));
                break;
            case DiskDecision.StopChildren:
                _sim.Stats.Completions++;
                _sim.CheckCompleteCopy(_site.Name, Image);
                if (_sim.Tracing) _sim.Trace($"  {_site.Name} disk {Name} complete");
                _sim.O.AfterDiskComplete?.Invoke(_sim, _site);
                break;
            case DiskDecision.Log l:
                OnEvent(l.Event);
                break;
        }
    }

    private void OnEvent(DiskCoreEvent e)
    {
        switch (e)
        {
            case DiskCoreEvent.HoleWritten: _sim.Stats.Hit(Paths.HoleWritten); break;
            case DiskCoreEvent.HeldWriteExpired: _sim.Stats.Hit(Paths.HeldWriteExpired); break;
            case DiskCoreEvent.Republished: _sim.Stats.Hit(Paths.Republished); break;
            case DiskCoreEvent.Owned:
                if (_sim.Tracing) _sim.Trace($"  {_site.Name} owns {Name} from epoch {State.Epoch}: {Describe()}");
                _sim.Stats.Handovers++;
                _sim.CheckHandover(_site, this, _source);
                if (_ownershipBefore is { } before)
                    _sim.CheckStale($"disk actor at {_site.Name}", new Reloc.Actors.Coordinator.RelocationProtocol.TakeOwnershipAt(Name, State.Epoch, [], Relocation), State.Epoch - 1, IncomingEpoch, before, Fingerprint());
                _ownershipBefore = null;
                break;
        }
    }

    /// <summary>EventStream.Publish: the site actor of this node hears of it.</summary>
    private void ToSite(Action<SiteModel> deliver)
    {
        var site = _site;
        int inc = _siteInc;
        _sim.Local(site.Name, "site", () => { if (site.Up && site.Inc == inc) deliver(site); });
    }

    // ---------------- from the source site ----------------

    /// <summary>VirtualDiskActor: Command&lt;Invalidate&gt;</summary>
    public void OnInvalidate(long epoch, IReadOnlyList<(long First, long Count)> blocks, Action<object> reply)
    {
        string before = epoch < IncomingEpoch ? Fingerprint() : "";
        Feed(new DiskInput.Invalidate(epoch, blocks, reply));
        if (epoch < IncomingEpoch) _sim.CheckStale($"disk actor at {_site.Name}", new Reloc.Actors.Coordinator.RelocationProtocol.InvalidateAt(Name, epoch, 0, blocks, Relocation), epoch, IncomingEpoch, before, Fingerprint());
    }

    /// <summary>VirtualDiskActor: Command&lt;TakeOwnership&gt;</summary>
    public void OnTakeOwnership(long epoch, IReadOnlyList<(long First, long Count)> finalDirty, Action<object> reply)
    {
        if (epoch - 1 < IncomingEpoch && !Complete && epoch > State.Epoch)
        {
            _ownershipBefore ??= Fingerprint();
            _sim.Note($"{_site.Name} takes ownership at epoch {epoch} from a TakeOwnershipAt of an older relocation (its copy belongs to the relocation from epoch {IncomingEpoch})");
        }
        Feed(new DiskInput.TakeOwnership(epoch, finalDirty, reply));
    }

    // ---------------- the children: BlockFetcher and Prefetcher ----------------

    /// <summary>Prefetcher.ScanAsync: BLOCK_STATUS on the source's peer export, answered with what its image holds
    /// when the request arrives (any moment relative to the guest's writes). The NBD client retries a request its
    /// connection lost: the scan is sent again until answered.</summary>
    private void ScanSource(long id, IReadOnlyList<(long First, long Count)> ranges)
    {
        _scansInFlight.Add(id);
        var self = _site.Name;
        void Send()
        {
            if (!Alive || Complete || !_scansInFlight.Contains(id)) return;
            _sim.Send(self, _source, $"NBD block status {Sim.DiskName}@peer {Sim.Runs(ranges)}", () =>
            {
                var source = _sim.SiteOrNull(_source);
                var zeros = source?.ServePeerZeros(Name, ranges);
                if (zeros is null) return; // no answer: the client retries
                if (!source!.Tracks(Name, self, Relocation)) CopiedUntracked = true;
                _sim.Send(_source, self, $"NBD zero extents {Sim.Runs(zeros)}", () => Tell(() =>
                {
                    if (!_scansInFlight.Remove(id)) return;
                    Feed(new DiskInput.SourceZero(id, zeros));
                    PumpPrefetch();
                }), nbd: true);
            }, nbd: true);
            _sim.After(Sim.MissTimeoutMs, Send);
        }
        Send();
    }

    /// <summary>BlockFetcher.FetchAsync / Prefetcher.CopyAsync: read the source's peer export (its content when
    /// the read is served), write the image (LandAsync), then tell the disk Landed; FetchFailed on error or
    /// after the miss timeout.</summary>
    private void StartFetch(long first, long count, bool prefetch)
    {
        int id = Issue(first, count, prefetch, zero: false);
        var self = _site.Name;
        _sim.Send(self, _source, $"NBD read {Sim.DiskName}@peer blocks {first}+{count}", () =>
        {
            var source = _sim.SiteOrNull(_source);
            var data = source?.ServePeerRead(Name, first, count);
            if (data is not null && !source!.Tracks(Name, self, Relocation))
            {
                CopiedUntracked = true; // the source may change these blocks without ever invalidating them here
                _sim.Note($"{_source} served {self} blocks {first}+{count} while it did not track writes for it by relocation {Relocation}");
            }
            _sim.Send(_source, self, data is null ? "NBD error" : $"NBD data [{string.Join(",", data)}] for {first}+{count}", () => FetchDone(id, data), nbd: true);
        }, nbd: true);
        _sim.After(Sim.MissTimeoutMs, () => FetchDone(id, null));
    }

    /// <summary>Prefetcher.CopyAsync of a zero work item: punch the image (nothing read from the source), then Landed.</summary>
    private void PunchZeros(long first, long count)
    {
        int id = Issue(first, count, prefetch: true, zero: true);
        _sim.After(1 + _sim.Rng.Next(5), () => FetchDone(id, new int[count]));
    }

    private int Issue(long first, long count, bool prefetch, bool zero)
    {
        int id = ++_fetchIds;
        var snapshot = new int[count];
        for (long i = 0; i < count; i++) snapshot[i] = _invalidations[first + i];
        _fetches[id] = new FetchInFlight(first, count, prefetch, snapshot, zero);
        if (prefetch) _prefetchInFlight++;
        return id;
    }

    private void FetchDone(int id, int[]? data)
    {
        if (!Alive || Complete || !_fetches.Remove(id, out var f)) return;
        if (data is not null)
            for (long i = 0; i < f.Count; i++) Image.Volatile[f.First + i] = data[i]; // LandAsync: the data is in the image before Landed
        Tell(() =>
        {
            if (f.Prefetch) _prefetchInFlight--;
            if (data is null) Feed(new DiskInput.FetchFailed(f.First, f.Count, "NBD error"));
            else Landed(f);
            PumpPrefetch();
        });
    }

    /// <summary>Landed, and invariant 3: a block fetched before an invalidation never becomes local by that fetch.</summary>
    private void Landed(FetchInFlight f)
    {
        var before = new BlockState[f.Count];
        for (long i = 0; i < f.Count; i++) before[i] = Map[f.First + i];
        Feed(new DiskInput.Landed(f.First, f.Count, f.Zero ? LandKind.Skipped : LandKind.Fetched, f.Count * Sim.BlockSize));
        for (long i = 0; i < f.Count; i++)
        {
            long b = f.First + i;
            if (before[i] != BlockState.Local && Map[b] == BlockState.Local && _invalidations[b] != f.InvalidationsAtIssue[i])
                throw new ModelViolation("3 stale fetch", $"at {_site.Name}: block {b} fetched before an invalidation becomes local after it ({Describe()})");
        }
    }

    /// <summary>The Prefetcher asking for work (RequestWork) while its window has room; the core answers once the
    /// source's holes are known, and hands known-zero runs out to be punched.</summary>
    private void PumpPrefetch()
    {
        _noWork = false;
        while (_prefetchEnabled && !_prefetchPaused && !Complete && !Recovering && Alive && !_noWork && _prefetchInFlight + _prefetchRequested < PrefetchWindow)
        {
            _prefetchRequested++;
            Feed(new DiskInput.RequestWork(PrefetchChunkBlocks, _prefetcher));
        }
    }

    private void OnWork(object answer)
    {
        _prefetchRequested--;
        if (answer is not P.Work w)
        {
            _noWork = true; // nothing missing now: the Kick timer looks again
            return;
        }
        if (w.Zero) PunchZeros(w.First, w.Count);
        else StartFetch(w.First, w.Count, prefetch: true);
    }

    // ---------------- for the checks ----------------

    public string Fingerprint()
    {
        var sb = new StringBuilder($"owner={State.IsOwner}@{State.Epoch} complete={State.Completed} map=");
        for (long b = 0; b < Map.BlockCount; b++) sb.Append(Map[b] switch { BlockState.Local => 'L', BlockState.Fetching => 'F', _ => 'R' });
        sb.Append($" journal={_journal.Count}");
        return sb.ToString();
    }

    public string Describe()
    {
        var sb = new StringBuilder();
        if (Recovering) sb.Append("recovering ");
        if (_stopped) sb.Append("stopped ");
        sb.Append(State.IsOwner ? $"owner e{State.Epoch} " : "not owner ");
        if (Complete) sb.Append("complete ");
        for (long b = 0; b < Map.BlockCount; b++)
            sb.Append(Map[b] switch { BlockState.Local => "L", BlockState.Fetching => "F", _ => "R" }).Append(Image.Volatile[b]).Append(' ');
        if (_core.HeldWrites > 0) sb.Append($"held {_core.HeldWrites} ");
        if (_core.Reserved.Count > 0) sb.Append($"reserved {{{string.Join(",", _core.Reserved)}}} ");
        return sb.ToString().TrimEnd();
    }
}
