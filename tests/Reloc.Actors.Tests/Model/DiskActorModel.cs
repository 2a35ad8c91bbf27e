using System.Text;
using Reloc.Actors.Disk;
using Reloc.Storage;

namespace Reloc.Actors.Tests.Model;

/// <summary>
/// Mirrors <see cref="VirtualDiskActor"/> at a destination site, with its children (<c>BlockFetcher</c> for
/// misses and read-through, <c>Prefetcher</c> for background copy) and its NBD face
/// (<see cref="RelocatingDisk"/>, the guest's entry points at the bottom). It uses the real
/// <see cref="DiskState"/>, <see cref="BlockMap"/> and <see cref="DiskEvents"/>: the journal holds real
/// events and recovery replays them through <see cref="DiskState.Apply"/>. Messages are closures run in
/// the actor's mailbox order; while the actor recovers they are stashed (as Akka.Persistence does).
/// </summary>
internal sealed partial class DiskActorModel
{
    public sealed record Invalidated(long Epoch);
    public sealed record OwnershipConfirmed(long Epoch);
    public sealed record StaleEpoch(long Current, long Received);
    public sealed record Failed(string Reason);
    public sealed record Ready;
    public sealed record WriteGranted(IReadOnlyList<(long First, long Count)> Reserved);
    public sealed record ThroughData(int Version);

    /// <summary>Waiters: a guest request waiting for blocks; answered with its reply when they are local, Failed at the deadline.</summary>
    private sealed class Waiter(HashSet<long> missing, Action<object> reply, object success, long deadline)
    {
        public HashSet<long> Missing { get; } = missing;
        public Action<object> Reply { get; } = reply;
        public object Success { get; } = success;
        public long Deadline { get; } = deadline;
        public bool Done { get; set; }
    }

    private sealed record FetchInFlight(long First, long Count, bool Prefetch, int[] InvalidationsAtIssue, bool Zero = false);

    private const int PrefetchWindow = 2, PrefetchChunkBlocks = 2;
    private const long ZeroWorkCap = 16384;

    private readonly Sim _sim;
    private readonly SiteModel _site;
    private readonly int _siteInc;
    private readonly string _source;
    private readonly List<object> _journal;
    private readonly bool _prefetchEnabled;
    private readonly List<Action> _stash = [];
    private readonly HashSet<long> _reserved = [];
    private readonly HashSet<long> _staleFetches = [];
    private readonly List<(Action<object> Reply, int Block, bool Whole, long Deadline)> _heldWrites = [];
    private readonly List<Waiter> _waiters = [];
    private readonly Dictionary<int, FetchInFlight> _fetches = [];
    private readonly int[] _invalidations; // per block: how many invalidations the disk applied (invariant 3)
    private readonly SourceZeros _zeros; // the production core: what this copy knows of the source's holes
    private readonly HashSet<long> _scansInFlight = [];
    private List<DiskEvents.BlocksLanded>? _syncingBatch;
    private List<DiskEvents.BlocksLanded> _pending = [];
    private List<Action> _syncWaiters = [];
    private bool _syncing, _completing, _prefetchPaused, _stopped, _dead;
    private long _cursor, _lastPersist;
    private int _fetchIds, _prefetchInFlight, _tickGeneration;

    public DiskActorModel(Sim sim, SiteModel site, string name, long incomingEpoch, string relocation, string source, Image image, List<object> journal, bool prefetch)
    {
        Relocation = relocation;
        _sim = sim;
        _site = site;
        _siteInc = site.Inc;
        Name = name;
        IncomingEpoch = incomingEpoch;
        _source = source;
        Image = image;
        _journal = journal;
        _prefetchEnabled = prefetch;
        State = new DiskState(sim.O.Blocks * (long)Sim.BlockSize, Sim.BlockSize, owner: false);
        _invalidations = new int[sim.O.Blocks];
        _zeros = new SourceZeros(sim.O.Blocks);
        _lastPersist = sim.Now;
    }

    public string Name { get; }
    /// <summary>The epoch of the relocation that created it (SiteDisk.Epoch of the incoming disk).</summary>
    public long IncomingEpoch { get; }
    /// <summary>The relocation it arrives by (SiteDisk.Relocation of the incoming disk; its journal is keyed by SiteDisk.Journal, fresh per arrival).</summary>
    public string Relocation { get; }
    /// <summary>SiteActor.Incoming.Owned: the export's device, an OwnedDisk over this disk's RelocatingDisk.</summary>
    public OwnedModel Front { get; set; } = null!;
    public DiskState State { get; }
    public Image Image { get; }
    /// <summary>The journal says this site owns the disk (true even while recovery has not replayed it yet).</summary>
    public bool OwnedDurably => _journal.OfType<DiskEvents.OwnershipTaken>().Any();
    public bool Recovering { get; private set; } = true;
    public bool Complete { get; private set; }
    private BlockMap Map => State.Map;
    private bool Alive => !_stopped && !_dead && _site.Up && _site.Inc == _siteInc;

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
    public IReadOnlyCollection<long> Reserved => _reserved;

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

    /// <summary>Akka.Persistence recovery: replay the journal into a fresh DiskState, then OnRecovered.</summary>
    public void BeginRecovery() => _sim.After(1 + _sim.Rng.Next(30), () =>
    {
        if (!Alive) return;
        foreach (var e in _journal) State.Apply(e);
        Recovering = false;
        if (_sim.Tracing) _sim.Trace($"  {_site.Name} disk actor recovered: {Describe()}");
        OnRecovered();
        var stashed = _stash.ToList();
        _stash.Clear();
        foreach (var h in stashed) if (Alive) h();
        PumpPrefetch(); // the Prefetcher asks for work only after its scan: after what was stashed (PausePrefetch)
    });

    /// <summary>VirtualDiskActor.OnRecovered</summary>
    private void OnRecovered()
    {
        State.MarkRecovered();
        if (State.Completed)
        {
            Complete = true;
            // Its site may have crashed before it registered the completion: tell it again (it is idempotent).
            _sim.Stats.Hit(Paths.Republished);
            PublishRelocationFinished();
            return;
        }
        StartTick();
        if (_prefetchEnabled) ScanSource([(0, Map.BlockCount)]);
        CheckComplete();
    }

    /// <summary>VirtualDiskActor.ScanSource → Prefetcher.ScanAsync: BLOCK_STATUS on the source's peer export,
    /// answered with what its image holds when the request arrives (any moment relative to the guest's writes).
    /// The NBD client retries a request its connection lost: the scan is sent again until answered.</summary>
    private void ScanSource(IReadOnlyList<(long First, long Count)> ranges)
    {
        long id = _zeros.BeginScan(ranges);
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
                _sim.Send(_source, self, $"NBD zero extents {Sim.Runs(zeros)}", () => Tell(() => OnSourceZero(id, zeros)), nbd: true);
            }, nbd: true);
            _sim.After(Sim.MissTimeoutMs, Send);
        }
        Send();
    }

    /// <summary>VirtualDiskActor: Command&lt;SourceZero&gt;</summary>
    private void OnSourceZero(long id, IReadOnlyList<(long First, long Count)> zeros)
    {
        if (Complete || !_scansInFlight.Remove(id)) return;
        _zeros.ScanCompleted(id, zeros);
        RescanIfWorthIt();
        PumpPrefetch(); // work deferred until the first scan answered
    }

    /// <summary>VirtualDiskActor.RescanIfWorthIt</summary>
    private void RescanIfWorthIt()
    {
        if (_prefetchEnabled && _zeros.Rescan() is { } ranges) ScanSource(ranges);
    }

    private void StartTick()
    {
        int generation = ++_tickGeneration;
        void Fire()
        {
            if (!Alive || Complete || generation != _tickGeneration) return;
            _sim.After(Sim.DiskTickMs, Fire);
            Tell(OnTickMessage);
        }
        _sim.After(Sim.DiskTickMs, Fire);
    }

    private void OnTickMessage()
    {
        if (Complete) return; // Complete: Command<Tick>(_ => { })
        OnTick();
        CheckComplete();
        PumpPrefetch(); // the prefetcher's Kick timer
    }

    public void PausePrefetch() => _prefetchPaused = true;

    public void ResumePrefetch()
    {
        _prefetchPaused = false;
        PumpPrefetch();
    }

    // ---------------- Relocating ----------------

    /// <summary>VirtualDiskActor.Ensure (for one block)</summary>
    private void Ensure(int block, Action<object> reply, object success)
    {
        if (Map[block] == BlockState.Local)
        {
            reply(success);
            return;
        }
        FetchRemote(block, 1);
        _waiters.Add(new Waiter([block], reply, success, _sim.Now + Sim.MissTimeoutMs));
    }

    /// <summary>VirtualDiskActor.FetchRemote</summary>
    private void FetchRemote(long first, long count)
    {
        foreach (var (f, c) in Map.Runs(first, count, BlockState.Remote).ToList())
        {
            Map.Set(f, c, BlockState.Fetching);
            StartFetch(f, c, prefetch: false);
            _cursor = f + c;
        }
    }

    /// <summary>BlockFetcher.FetchAsync / Prefetcher.CopyAsync: read the source's peer export (its content when
    /// the read is served), write the image (LandAsync), then tell the disk Landed; FetchFailed on error or
    /// after the miss timeout.</summary>
    private void StartFetch(long first, long count, bool prefetch)
    {
        int id = ++_fetchIds;
        var snapshot = new int[count];
        for (long i = 0; i < count; i++) snapshot[i] = _invalidations[first + i];
        _fetches[id] = new FetchInFlight(first, count, prefetch, snapshot);
        if (prefetch) _prefetchInFlight++;
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

    private void FetchDone(int id, int[]? data)
    {
        if (!Alive || Complete || !_fetches.Remove(id, out var f)) return;
        if (data is not null)
            for (long i = 0; i < f.Count; i++) Image.Volatile[f.First + i] = data[i]; // LandAsync: the data is in the image before Landed
        Tell(() =>
        {
            if (f.Prefetch) _prefetchInFlight--;
            if (Complete) return;
            if (data is null) OnFetchFailed(f);
            else OnLanded(f);
            PumpPrefetch();
        });
    }

    /// <summary>VirtualDiskActor: Command&lt;Landed&gt;</summary>
    private void OnLanded(FetchInFlight m)
    {
        // A fetch issued before an invalidation carries the old data: those blocks go back to Remote.
        foreach (var (first, count) in Map.Runs(m.First, m.Count, BlockState.Fetching).ToList())
            for (long b = first; b < first + count; b++)
                if (_staleFetches.Remove(b) && !_reserved.Contains(b)) Map.Set(b, 1, BlockState.Remote);
        foreach (var (first, count) in Map.Runs(m.First, m.Count, BlockState.Fetching).ToList())
            if (!Overlaps(first, count))
            {
                for (long b = first; b < first + count; b++)
                    if (_invalidations[b] != m.InvalidationsAtIssue[b - m.First])
                        throw new ModelViolation("3 stale fetch", $"at {_site.Name}: block {b} fetched before an invalidation becomes local after it ({Describe()})");
                Land(first, count, m.Zero ? LandKind.Skipped : LandKind.Fetched);
            }
    }

    /// <summary>VirtualDiskActor: Command&lt;FetchFailed&gt;</summary>
    private void OnFetchFailed(FetchInFlight m)
    {
        foreach (var (first, count) in Map.Runs(m.First, m.Count, BlockState.Fetching).ToList())
            if (!Overlaps(first, count))
            {
                Map.Set(first, count, BlockState.Remote);
                for (long b = first; b < first + count; b++) _staleFetches.Remove(b);
            }
    }

    private bool Overlaps(long first, long count)
    {
        for (long b = first; b < first + count; b++) if (_reserved.Contains(b)) return true;
        return false;
    }

    /// <summary>The Prefetcher asking for work (RequestWork → VirtualDiskActor.OnRequestWork) while its window has
    /// room; the disk answers only once the source's holes are known, and hands known-zero runs out to be punched.</summary>
    private void PumpPrefetch()
    {
        while (_prefetchEnabled && !_prefetchPaused && !Complete && !Recovering && Alive && _prefetchInFlight < PrefetchWindow && _zeros.FirstScanDone)
        {
            var run = Map.NextRun(_cursor, BlockState.Remote, ZeroWorkCap);
            if (run is null) return;
            var (first, count, zero) = _zeros.Classify(run.Value.First, run.Value.Count);
            if (!zero) count = Math.Min(count, PrefetchChunkBlocks);
            Map.Set(first, count, BlockState.Fetching);
            _cursor = first + count;
            if (zero) PunchZeros(first, count);
            else StartFetch(first, count, prefetch: true);
        }
    }

    /// <summary>Prefetcher.CopyAsync of a zero work item: punch the image (nothing read from the source), then Landed.</summary>
    private void PunchZeros(long first, long count)
    {
        int id = ++_fetchIds;
        var snapshot = new int[count];
        for (long i = 0; i < count; i++) snapshot[i] = _invalidations[first + i];
        _fetches[id] = new FetchInFlight(first, count, true, snapshot, Zero: true);
        _prefetchInFlight++;
        _sim.After(1 + _sim.Rng.Next(5), () => FetchDone(id, new int[count]));
    }

    /// <summary>VirtualDiskActor.OnInvalidate</summary>
    public void OnInvalidate(long epoch, IReadOnlyList<(long First, long Count)> blocks, Action<object> reply)
    {
        if (Complete) return; // Complete does not handle Invalidate: the ask times out
        string before = epoch < IncomingEpoch ? Fingerprint() : "";
        if (epoch < State.Epoch || State.IsOwner)
        {
            reply(new StaleEpoch(State.Epoch, epoch));
            return;
        }
        var events = InvalidateBlocks(blocks);
        if (events.Count > 0) _journal.AddRange(events); // PersistAll, then (DeferAsync) the answer
        if (epoch < IncomingEpoch) _sim.CheckStale($"disk actor at {_site.Name}", new Reloc.Actors.Coordinator.RelocationProtocol.InvalidateAt(Name, epoch, 0, blocks, Relocation), epoch, IncomingEpoch, before, Fingerprint());
        reply(new Invalidated(epoch));
    }

    /// <summary>VirtualDiskActor.OnTakeOwnership</summary>
    public void OnTakeOwnership(long epoch, IReadOnlyList<(long First, long Count)> finalDirty, Action<object> reply)
    {
        if (Complete) return; // Complete does not handle TakeOwnership: the ask times out
        if (State.IsOwner && epoch == State.Epoch) { reply(new OwnershipConfirmed(epoch)); return; }
        if (epoch <= State.Epoch) { reply(new StaleEpoch(State.Epoch, epoch)); return; }
        string before = epoch - 1 < IncomingEpoch ? Fingerprint() : "";
        if (epoch - 1 < IncomingEpoch)
            _sim.Note($"{_site.Name} takes ownership at epoch {epoch} from a TakeOwnershipAt of an older relocation (its copy belongs to the relocation from epoch {IncomingEpoch})");
        var events = InvalidateBlocks(finalDirty).Cast<object>().Append(new DiskEvents.OwnershipTaken(epoch)).ToList();
        _journal.AddRange(events); // PersistAll; the callback of the last event:
        var taken = (DiskEvents.OwnershipTaken)events[^1];
        State.Apply(taken);
        if (_sim.Tracing) _sim.Trace($"  {_site.Name} owns {Name} from epoch {taken.Epoch}: {Describe()}");
        _sim.Stats.Handovers++;
        _sim.CheckHandover(_site, this, _source);
        if (epoch - 1 < IncomingEpoch)
            _sim.CheckStale($"disk actor at {_site.Name}", new Reloc.Actors.Coordinator.RelocationProtocol.TakeOwnershipAt(Name, epoch, finalDirty, Relocation), epoch - 1, IncomingEpoch, before, Fingerprint());
        reply(new OwnershipConfirmed(taken.Epoch));
        var held = _heldWrites.ToList();
        _heldWrites.Clear();
        foreach (var (r, block, whole, _) in held) Tell(() => OnPrepareWrite(block, whole, r));
        Tell(OnTickMessage);
    }

    /// <summary>VirtualDiskActor.InvalidateBlocks</summary>
    private List<DiskEvents.BlocksInvalidated> InvalidateBlocks(IReadOnlyList<(long First, long Count)> runs)
    {
        var events = new List<DiskEvents.BlocksInvalidated>();
        foreach (var (first, count) in runs)
        {
            long f = Math.Max(0, first), end = Math.Min(Map.BlockCount, first + count);
            if (end <= f) continue;
            for (long b = f; b < end; b++)
            {
                _invalidations[b]++;
                if (Map[b] == BlockState.Fetching && !_reserved.Contains(b)) _staleFetches.Add(b);
            }
            foreach (var (lf, lc) in Map.Runs(f, end - f, BlockState.Local).ToList()) Map.Set(lf, lc, BlockState.Remote);
            long known = _zeros.KnownBlocks;
            _zeros.Written(f, end - f);
            if (_zeros.KnownBlocks < known) _sim.Stats.Hit(Paths.HoleWritten);
            Strip(_pending, f, end - f);
            if (_syncingBatch is not null) Strip(_syncingBatch, f, end - f);
            events.Add(new DiskEvents.BlocksInvalidated(f, end - f));
        }
        RescanIfWorthIt();
        return events;
    }

    /// <summary>VirtualDiskActor.Strip</summary>
    private static void Strip(List<DiskEvents.BlocksLanded> batch, long first, long count)
    {
        long end = first + count;
        for (int i = batch.Count - 1; i >= 0; i--)
        {
            var e = batch[i];
            long eEnd = e.First + e.Count;
            if (eEnd <= first || e.First >= end) continue;
            batch.RemoveAt(i);
            long perBlock = e.Count == 0 ? 0 : e.Bytes / e.Count;
            if (e.First < first) batch.Insert(i, e with { Count = first - e.First, Bytes = perBlock * (first - e.First) });
            if (eEnd > end) batch.Insert(i + (e.First < first ? 1 : 0), e with { First = end, Count = eEnd - end, Bytes = perBlock * (eEnd - end) });
        }
    }

    /// <summary>VirtualDiskActor.OnPrepareWrite (one block; whole: the write covers it entirely)</summary>
    private void OnPrepareWrite(int block, bool whole, Action<object> reply)
    {
        if (Complete) { reply(new WriteGranted([])); return; }
        if (!State.IsOwner)
        {
            // Two sites never both accept writes: hold it until the handover makes this site the owner.
            if (_heldWrites.Count == 0)
            {
                var site = _site;
                int inc = _siteInc;
                _sim.Local(site.Name, "site", () => { if (site.Up && site.Inc == inc) site.OnWriteHeldForHandover(Name); });
            }
            _heldWrites.Add((reply, block, whole, _sim.Now + Sim.MissTimeoutMs));
            return;
        }
        var reserved = new List<(long First, long Count)>();
        var wait = new HashSet<long>();
        var state = Map[block];
        if (state != BlockState.Local)
        {
            if (whole && state == BlockState.Remote)
            {
                Map.Set(block, 1, BlockState.Fetching);
                _reserved.Add(block);
                reserved.Add((block, 1));
            }
            else
            {
                wait.Add(block);
                if (state == BlockState.Remote) FetchRemote(block, 1);
            }
        }
        var granted = new WriteGranted(reserved);
        if (wait.Count == 0) reply(granted);
        else _waiters.Add(new Waiter(wait, reply, granted, _sim.Now + Sim.MissTimeoutMs));
    }

    /// <summary>VirtualDiskActor: Command&lt;WriteDone&gt;</summary>
    private void OnWriteDone(IReadOnlyList<(long First, long Count)> reserved)
    {
        if (Complete) return;
        foreach (var (first, count) in reserved)
        {
            for (long b = first; b < first + count; b++) _reserved.Remove(b);
            Land(first, count, LandKind.Written);
        }
    }

    /// <summary>VirtualDiskActor.Land</summary>
    private void Land(long first, long count, LandKind kind)
    {
        Map.Set(first, count, BlockState.Local);
        State.Count(kind, count * Sim.BlockSize);
        var last = _pending.Count > 0 ? _pending[^1] : null;
        if (last is not null && last.Kind == kind && last.First + last.Count == first)
            _pending[^1] = last with { Count = last.Count + count, Bytes = last.Bytes + count * Sim.BlockSize };
        else
            _pending.Add(new DiskEvents.BlocksLanded(first, count, kind, count * Sim.BlockSize));
        foreach (var w in _waiters.Where(w => !w.Done).ToList())
        {
            for (long b = first; b < first + count; b++) w.Missing.Remove(b);
            if (w.Missing.Count > 0) continue;
            w.Done = true;
            w.Reply(w.Success);
        }
        _waiters.RemoveAll(w => w.Done);
        CheckComplete();
    }

    /// <summary>VirtualDiskActor.OnTick</summary>
    private void OnTick()
    {
        foreach (var b in _waiters.Where(w => !w.Done).SelectMany(w => w.Missing).Distinct().Where(b => Map[b] == BlockState.Remote).ToList()) FetchRemote(b, 1);
        // A write held for a handover that does not come fails like a miss the source never answers.
        var expired = _heldWrites.Where(h => h.Deadline <= _sim.Now).ToList();
        _heldWrites.RemoveAll(h => h.Deadline <= _sim.Now);
        foreach (var h in expired) _sim.Stats.Hit(Paths.HeldWriteExpired);
        foreach (var h in expired) h.Reply(new Failed("not owned by this site yet: no handover within the miss timeout"));
        foreach (var w in _waiters.Where(w => !w.Done && w.Deadline <= _sim.Now).ToList())
        {
            w.Done = true;
            w.Reply(new Failed("blocks not available from the source within the miss timeout"));
        }
        _waiters.RemoveAll(w => w.Done);
        if (!_syncing && _pending.Count > 0 && _sim.Now - _lastPersist >= Sim.PersistIntervalMs) BeginSync();
    }

    /// <summary>VirtualDiskActor.CheckComplete</summary>
    private void CheckComplete()
    {
        if (!Map.IsComplete || State.Completed || _completing || !State.IsOwner) return;
        if (_syncing || _pending.Count > 0)
        {
            if (!_syncing) BeginSync();
            return;
        }
        _completing = true;
        var e = new DiskEvents.RelocationCompleted();
        _journal.Add(e);
        State.Apply(e);
        Complete = true; // fetcher and prefetcher stopped, tick cancelled, Become(Complete)
        _sim.Stats.Completions++;
        _sim.CheckCompleteCopy(_site.Name, Image);
        if (_sim.Tracing) _sim.Trace($"  {_site.Name} disk {Name} complete");
        _sim.O.AfterDiskComplete?.Invoke(_sim, _site);
        PublishRelocationFinished();
    }

    /// <summary>EventStream.Publish(RelocationFinished): the site actor of this node hears of it.</summary>
    private void PublishRelocationFinished()
    {
        var site = _site;
        int inc = _siteInc;
        _sim.Local(site.Name, "site", () => { if (site.Up && site.Inc == inc) site.OnRelocationFinished(Name); });
    }

    // ---------------- both (CommonCommands) ----------------

    private void OnSync(Action reply)
    {
        _syncWaiters.Add(reply);
        if (!_syncing) BeginSync();
    }

    /// <summary>VirtualDiskActor.BeginSync: fdatasync off the actor, then DataSynced.</summary>
    private void BeginSync()
    {
        _syncing = true;
        _lastPersist = _sim.Now;
        var batch = _pending;
        var waiters = _syncWaiters;
        _pending = [];
        _syncWaiters = [];
        _syncingBatch = batch;
        _sim.After(_sim.FlushLatency(), () =>
        {
            if (!Alive) return;
            Image.Sync();
            Tell(() => OnDataSynced(batch, waiters));
        });
    }

    /// <summary>VirtualDiskActor.OnDataSynced (PersistAllAsync of the batch, DeferAsync → AfterSync)</summary>
    private void OnDataSynced(List<DiskEvents.BlocksLanded> batch, List<Action> waiters)
    {
        _journal.AddRange(batch);
        _syncingBatch = null;
        foreach (var w in waiters) w();
        _syncing = false;
        if (_syncWaiters.Count > 0) BeginSync();
        else Tell(OnTickMessage);
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
        if (_heldWrites.Count > 0) sb.Append($"held {_heldWrites.Count} ");
        if (_reserved.Count > 0) sb.Append($"reserved {{{string.Join(",", _reserved)}}} ");
        return sb.ToString().TrimEnd();
    }
}
