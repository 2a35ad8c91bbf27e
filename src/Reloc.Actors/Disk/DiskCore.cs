using Reloc.Storage;
using static Reloc.Actors.Disk.DiskDecision;
using P = Reloc.Actors.Disk.VirtualDiskProtocol;

namespace Reloc.Actors.Disk;

/// <summary>
/// The decisions of a disk relocating to this site, without an actor system: the block map's transitions
/// (remote, fetching, local), guest misses and writes, background work, invalidations and the handover, and
/// group commit. Deterministic: the same inputs in the same order give the same decisions.
/// <see cref="VirtualDiskActor"/> and the protocol model are its shells. It is the block map's only writer;
/// the data path reads the map lock-free.
/// </summary>
/// <remarks>
/// Durability: a block is marked local in memory once its data is in the image; a batch of such blocks is
/// persisted only after an fdatasync of the image (every PersistInterval, or at a FLUSH), so a persisted bit
/// always covers durable data, and a FLUSH is answered only when both are durable.
///
///   Recovering --(Recovered, not complete)--> Relocating --(every block local, persisted)--> Complete
///   Recovering --(Recovered, complete)-------------------------------------------------------> Complete
/// </remarks>
public sealed class DiskCore
{
    private const long ZeroWorkCap = 16384; // blocks punched per zero work item

    private enum Phase { Recovering, Relocating, Complete }

    // Persist tokens: what to do once the events are in the journal.
    private sealed record SyncPersisted(long Sync);
    private sealed record InvalidatePersisted(long Epoch, object ReplyTo);
    private sealed record OwnershipPersisted(long Epoch);
    private sealed record CompletionPersisted;

    private sealed record Batch(List<DiskEvents.BlocksLanded> Landed, List<object> Waiters);

    private readonly string _name;
    private readonly DiskState _state;
    private readonly DiskSettings _settings;
    private readonly Waiters _waiters = new();
    private readonly SourceZeros _zeros; // the source's holes: source knowledge, invalidated like data
    private readonly List<(long MaxBlocks, object ReplyTo)> _workBeforeScan = []; // at most one window of requests
    private long _workedBeforeScan; // blocks handed out before the first scan answered
    private readonly HashSet<long> _reserved = []; // blocks a guest write covers whole, not yet written
    private readonly HashSet<long> _staleFetches = []; // invalidated while a fetch was in flight: that fetch must not land
    private readonly List<(DiskInput.PrepareWrite Request, DateTime Deadline)> _heldWrites = []; // guest writes before this site owns the disk
    private readonly List<object> _ownershipWaiters = []; // TakeOwnership retries while its events are written
    private Batch? _syncing;
    private long _syncId, _ownershipPersisting;
    private List<DiskEvents.BlocksLanded> _pending = [];
    private List<object> _syncWaiters = [];
    private Phase _phase = Phase.Recovering;
    private bool _completing;
    private long _cursor, _onDemandFetches, _eventsSinceSnapshot, _rateBps, _lastLandedBytes;
    private DateTime _now, _lastRateSample, _lastPersist; // _now: the latest clock an input brought
    private int _prefetchWindow;
    private bool _prefetchPaused;
    /// <summary>Why the copy cannot go on (this site's image is full), until a block lands again; null: it goes on.</summary>
    private string? _stalled;
    private List<DiskDecision> _out = [];

    public DiskCore(string name, DiskState state, DiskSettings settings)
    {
        _name = name;
        _state = state;
        _settings = settings;
        _zeros = new SourceZeros(state.Map.BlockCount);
    }

    public DiskState State => _state;
    public bool Completed => _phase == Phase.Complete;
    /// <summary>Blocks a guest write covers whole and has not written yet (for diagnosis).</summary>
    public IReadOnlyCollection<long> Reserved => _reserved;
    public int HeldWrites => _heldWrites.Count;
    private BlockMap Map => _state.Map;

    public IReadOnlyList<DiskDecision> Handle(DiskInput input)
    {
        _out = [];
        if (input switch { DiskInput.Tick t => t.Now, DiskInput.EnsureLocal e => e.Now, DiskInput.PrepareWrite w => w.Now,
                DiskInput.ReadThrough r => r.Now, DiskInput.Recovered r => r.Now, DiskInput.Sync s => s.Now, _ => (DateTime?)null } is { } now && now > _now)
            _now = now;
        switch (input)
        {
            case DiskInput.Recovered m: OnRecovered(m.Now); break;
            case DiskInput.Sync m:
                _syncWaiters.Add(m.ReplyTo);
                if (_syncing is null) BeginSync();
                break;
            case DiskInput.DataSynced m: OnDataSynced(m.Id); break;
            case DiskInput.SyncFailed m: OnSyncFailed(m); break;
            case DiskInput.Persisted m: OnPersisted(m.Token); break;
            case DiskInput.GetStatus m: Emit(new Reply(m.ReplyTo, Status())); break;
            default:
                if (_phase == Phase.Relocating) Relocating(input);
                else if (_phase == Phase.Complete) Complete(input);
                else throw new InvalidOperationException($"disk {_name}: {input.GetType().Name} before recovery");
                break;
        }
        return _out;
    }

    private void Emit(DiskDecision d) => _out.Add(d);

    private void OnRecovered(DateTime now)
    {
        _state.MarkRecovered();
        _lastRateSample = _lastPersist = now;
        if (_state.Completed)
        {
            _phase = Phase.Complete;
            // Its site may have crashed before it registered the completion: tell it again (it is idempotent).
            Emit(new Publish(new P.RelocationFinished(_name)));
            Emit(new Log(CoreLogLevel.Debug, $"disk {_name}: recovered complete", DiskCoreEvent.Republished));
            return;
        }
        _phase = Phase.Relocating;
        if (_settings.Prefetch) ScanSource([(0, Map.BlockCount)]);
        CheckComplete();
    }

    private void Complete(DiskInput input)
    {
        switch (input)
        {
            case DiskInput.EnsureLocal { ReplyTo: { } to }: Emit(new Reply(to, P.Ready.Instance)); break;
            case DiskInput.ReadThrough m: Emit(new Reply(m.ReplyTo, P.Ready.Instance)); break;
            case DiskInput.PrepareWrite m: Emit(new Reply(m.ReplyTo, new P.WriteGranted(0, 0, []))); break;
            // Invalidate and TakeOwnership are not for a complete disk: no answer (the ask times out).
        }
    }

    private void Relocating(DiskInput input)
    {
        switch (input)
        {
            case DiskInput.EnsureLocal m: Ensure(m.Offset, m.Length, m.ReplyTo, P.Ready.Instance, m.Now); break;
            case DiskInput.ReadThrough m:
                if (_state.IsOwner) Ensure(m.Offset, m.Length, m.ReplyTo, P.Ready.Instance, m.Now);
                else Emit(new ForwardReadThrough(m.Offset, m.Length, m.ReplyTo));
                break;
            case DiskInput.PrepareWrite m: OnPrepareWrite(m); break;
            case DiskInput.WriteDone m:
                foreach (var (first, count) in m.Reserved)
                {
                    for (long b = first; b < first + count; b++) _reserved.Remove(b);
                    Land(first, count, LandKind.Written, Math.Min(count << Map.BlockShift, Map.DiskSize - (first << Map.BlockShift)));
                }
                break;
            case DiskInput.WriteAborted m:
                foreach (var (first, count) in m.Reserved)
                {
                    for (long b = first; b < first + count; b++) _reserved.Remove(b);
                    Set(first, count, BlockState.Remote, BlockEvent.WriteAborted); // waiters are refetched on the next tick
                }
                break;
            case DiskInput.Landed m: OnLanded(m); break;
            case DiskInput.FetchFailed m:
                if (m.NoSpace) OnNoSpace(m);
                else Emit(new Log(CoreLogLevel.Warning, $"fetch of blocks {m.First}+{m.Count} from the source failed: {m.Reason}"));
                foreach (var (first, count) in Map.Runs(m.First, m.Count, BlockState.Fetching).ToList())
                    if (!Overlaps(first, count))
                    {
                        Set(first, count, BlockState.Remote, BlockEvent.FetchFailed);
                        for (long b = first; b < first + count; b++) _staleFetches.Remove(b);
                    }
                break;
            case DiskInput.RequestWork m: OnRequestWork(m.MaxBlocks, m.ReplyTo); break;
            case DiskInput.SourceZero m:
                _zeros.ScanCompleted(m.Scan, m.Runs);
                var deferred = _workBeforeScan.ToList();
                _workBeforeScan.Clear();
                foreach (var (maxBlocks, replyTo) in deferred) OnRequestWork(maxBlocks, replyTo);
                RescanIfWorthIt();
                break;
            case DiskInput.PrefetchStats m: (_prefetchWindow, _prefetchPaused) = (m.Window, m.Paused); break;
            case DiskInput.Invalidate m: OnInvalidate(m); break;
            case DiskInput.TakeOwnership m: OnTakeOwnership(m); break;
            case DiskInput.Tick m:
                OnTick(m.Now);
                CheckComplete();
                break;
        }
    }

    /// <summary>The image could not take fetched blocks (ENOSPC): they stay missing (the failed fetch puts them back),
    /// the source stays needed, and the site hears once why the copy stalls (it stops a relocation before its handover).</summary>
    private void OnNoSpace(DiskInput.FetchFailed m)
    {
        if (_stalled is not null) return; // said already; every retry fails the same way until room frees
        _stalled = $"no space left for disk {_name}'s image at this site ({m.Reason}): {Map.LocalBytes} of {Map.DiskSize} bytes are here, the rest stays at the source";
        Emit(new Log(CoreLogLevel.Warning, $"relocation of {_name} stalled: {_stalled}", DiskCoreEvent.NoSpace));
        Emit(new Publish(new P.ArrivalStalled(_name, _stalled)));
    }

    private void OnLanded(DiskInput.Landed m)
    {
        if (_stalled is not null && m.Kind == LandKind.Fetched)
        {
            _stalled = null;
            Emit(new Log(CoreLogLevel.Info, $"relocation of {_name}: blocks land again (room freed), the copy goes on"));
        }
        // Only blocks still claimed by a fetch may land: never a block a writer reserved.
        // A fetch issued before an invalidation carries the old data: those blocks go back to Remote.
        foreach (var (first, count) in Map.Runs(m.First, m.Count, BlockState.Fetching).ToList())
            for (long b = first; b < first + count; b++)
                if (_staleFetches.Remove(b) && !_reserved.Contains(b)) Set(b, 1, BlockState.Remote, BlockEvent.StaleLanding);
        foreach (var (first, count) in Map.Runs(m.First, m.Count, BlockState.Fetching).ToList())
            if (!Overlaps(first, count)) Land(first, count, m.Kind, m.Kind == LandKind.Fetched ? m.Bytes * count / m.Count : Math.Min(count << Map.BlockShift, m.Bytes));
    }

    private bool Overlaps(long first, long count)
    {
        if (_reserved.Count == 0) return false;
        for (long b = first; b < first + count; b++) if (_reserved.Contains(b)) return true;
        return false;
    }

    private void Ensure(long offset, long length, object? replyTo, object reply, DateTime now)
    {
        if (length <= 0 || offset < 0 || offset >= Map.DiskSize)
        {
            if (replyTo is not null) Emit(new Reply(replyTo, reply));
            return;
        }
        var (first, last) = Map.BlocksOf(offset, Math.Min(length, Map.DiskSize - offset));
        var missing = new List<long>();
        for (long b = first; b <= last; b++) if (Map[b] != BlockState.Local) missing.Add(b);
        if (missing.Count == 0)
        {
            if (replyTo is not null) Emit(new Reply(replyTo, reply));
            return;
        }
        // Range first: a read of part of one block nobody fetches or writes gets its own bytes from the source, ahead
        // of the whole block (sent first on the misses' connection, so it is not behind the block's serialisation and
        // landing). Only then: the source holds the truth of a Remote block (a write here makes it Local or reserves
        // it), while a range that touched a Local block could hold bytes newer than the source's.
        if (replyTo is not null && first == last && Map[first] == BlockState.Remote && !_reserved.Contains(first)
            && length < Map.BlockSize)
        {
            Emit(new ForwardReadThrough(offset, (int)length, replyTo));
            FetchRemote(first, 1);
            return;
        }
        FetchRemote(first, last - first + 1);
        if (replyTo is not null) _waiters.Add(replyTo, reply, missing, now + _settings.MissTimeout);
    }

    /// <summary>Starts on-demand fetches for the Remote blocks of a range (Fetching ones are already coming).</summary>
    private void FetchRemote(long first, long count)
    {
        foreach (var (f, c) in Map.Runs(first, count, BlockState.Remote).ToList())
        {
            Set(f, c, BlockState.Fetching, BlockEvent.Miss);
            Emit(new StartFetch(f, c));
            _onDemandFetches++;
            _cursor = f + c; // background copy continues right after a miss: guests read on
        }
    }

    private void OnPrepareWrite(DiskInput.PrepareWrite m)
    {
        if (!_state.IsOwner)
        {
            // Two sites never both accept writes: hold it until the handover makes this site the owner.
            if (_heldWrites.Count == 0) Emit(new Publish(new P.WriteHeldForHandover(_name)));
            _heldWrites.Add((m, m.Now + _settings.MissTimeout));
            return;
        }
        var (first, last) = Map.BlocksOf(m.Offset, m.Length);
        var reserved = new BlockRuns();
        var wait = new List<long>();
        long end = m.Offset + m.Length;
        for (long b = first; b <= last; b++)
        {
            var state = Map[b];
            if (state == BlockState.Local) continue;
            long blockStart = b << Map.BlockShift, blockEnd = Math.Min(blockStart + Map.BlockSize, Map.DiskSize);
            bool whole = blockStart >= m.Offset && blockEnd <= end;
            if (whole && state == BlockState.Remote)
            {
                // The write replaces the whole block: no need to fetch what it overwrites.
                Set(b, 1, BlockState.Fetching, BlockEvent.WholeWrite);
                _reserved.Add(b);
                reserved.Add(b, 1);
            }
            else
            {
                // Partly written (read-modify-write), or a fetch is already landing there: wait until local.
                wait.Add(b);
                if (state == BlockState.Remote) FetchRemote(b, 1);
            }
        }
        var granted = new P.WriteGranted(first, last - first + 1, reserved.Runs.ToList());
        if (wait.Count == 0) Emit(new Reply(m.ReplyTo, granted));
        else _waiters.Add(m.ReplyTo, granted, wait, m.Now + _settings.MissTimeout);
    }

    private void OnInvalidate(DiskInput.Invalidate m)
    {
        // After the handover (or while its events are written) the source writes nothing.
        if (m.Epoch < _state.Epoch || _state.IsOwner || _ownershipPersisting > _state.Epoch)
        {
            Emit(new Reply(m.ReplyTo, new P.StaleEpoch(_state.Epoch, m.Epoch)));
            return;
        }
        var events = InvalidateBlocks(m.Blocks);
        if (events.Count == 0) Emit(new Reply(m.ReplyTo, new P.Invalidated(m.Epoch)));
        else Emit(new Persist(events, new InvalidatePersisted(m.Epoch, m.ReplyTo), HoldCommands: true));
    }

    private void OnTakeOwnership(DiskInput.TakeOwnership m)
    {
        if (_state.IsOwner && m.Epoch == _state.Epoch) { Emit(new Reply(m.ReplyTo, new P.OwnershipConfirmed(m.Epoch))); return; } // a retry
        if (m.Epoch == _ownershipPersisting) { _ownershipWaiters.Add(m.ReplyTo); return; } // a retry while its events are written
        if (m.Epoch <= _state.Epoch || m.Epoch < _ownershipPersisting) { Emit(new Reply(m.ReplyTo, new P.StaleEpoch(_state.Epoch, m.Epoch))); return; }
        var events = InvalidateBlocks(m.FinalDirty).Cast<object>().Append(new DiskEvents.OwnershipTaken(m.Epoch)).ToList();
        _ownershipPersisting = m.Epoch;
        _ownershipWaiters.Add(m.ReplyTo);
        Emit(new Persist(events, new OwnershipPersisted(m.Epoch), HoldCommands: true));
    }

    private void OnOwned(long epoch)
    {
        _state.Apply(new DiskEvents.OwnershipTaken(epoch));
        Emit(new Log(CoreLogLevel.Info, $"disk {_name}: this site owns it from epoch {epoch}", DiskCoreEvent.Owned));
        if (_ownershipPersisting == epoch)
        {
            foreach (var to in _ownershipWaiters) Emit(new Reply(to, new P.OwnershipConfirmed(epoch)));
            _ownershipWaiters.Clear();
        }
        var held = _heldWrites.Select(h => h.Request).ToList();
        _heldWrites.Clear();
        foreach (var request in held) OnPrepareWrite(request);
        CheckComplete(); // every block may already be local (hybrid pre-copy)
    }

    /// <summary>Marks blocks stale: local copies become Remote (refetched on demand), fetches in flight
    /// are discarded when they land, and landings not yet persisted are dropped from their batch so a
    /// replay can never resurrect them after the invalidation.</summary>
    private List<object> InvalidateBlocks(IReadOnlyList<(long First, long Count)> runs)
    {
        var events = new List<object>();
        foreach (var (first, count) in runs)
        {
            long f = Math.Max(0, first), end = Math.Min(Map.BlockCount, first + count);
            if (end <= f) continue;
            for (long b = f; b < end; b++)
                if (Map[b] == BlockState.Fetching && !_reserved.Contains(b)) _staleFetches.Add(b);
            foreach (var (lf, lc) in Map.Runs(f, end - f, BlockState.Local).ToList()) Set(lf, lc, BlockState.Remote, BlockEvent.Invalidated);
            long known = _zeros.KnownBlocks;
            _zeros.Written(f, end - f); // a block the source wrote is no longer known to be a hole there
            if (_zeros.KnownBlocks < known)
                Emit(new Log(CoreLogLevel.Debug, $"disk {_name}: the source wrote known holes in {f}+{end - f}", DiskCoreEvent.HoleWritten));
            Strip(_pending, f, end - f);
            if (_syncing is not null) Strip(_syncing.Landed, f, end - f);
            events.Add(new DiskEvents.BlocksInvalidated(f, end - f));
        }
        RescanIfWorthIt();
        return events;
    }

    /// <summary>Takes blocks [first, first+count) out of a batch of landings, keeping the rest of each.</summary>
    internal static void Strip(List<DiskEvents.BlocksLanded> batch, long first, long count)
    {
        for (int i = batch.Count - 1; i >= 0; i--)
        {
            var e = batch[i];
            if (e.First + e.Count <= first || e.First >= first + count) continue;
            batch.RemoveAt(i);
            long perBlock = e.Count == 0 ? 0 : e.Bytes / e.Count;
            var kept = new BlockRuns([(first, count)]).Except(e.First, e.Count).ToList(); // the parts of e outside the invalidated run
            batch.InsertRange(i, kept.Select(r => e with { First = r.First, Count = r.Count, Bytes = perBlock * r.Count }));
        }
    }

    /// <summary>Asks for the source's zero extents in <paramref name="ranges"/>; the answer leaves out
    /// whatever the source reports written meanwhile.</summary>
    private void ScanSource(IReadOnlyList<(long First, long Count)> ranges) =>
        Emit(new ScanSource(_zeros.BeginScan(ranges), ranges));

    private void RescanIfWorthIt()
    {
        if (!_settings.Prefetch || _zeros.Rescan() is not { } ranges) return;
        Emit(new Log(CoreLogLevel.Info, $"disk {_name}: the source wrote {_zeros.LostBlocks} blocks it had reported as holes; asking for its holes there again"));
        ScanSource(ranges);
    }

    /// <summary>The first window of background reads, in blocks.</summary>
    private long WorkBeforeScanBlocks => Math.Max(1, ((long)_settings.PrefetchInitialWindow * _settings.PrefetchChunkBytes) >> Map.BlockShift);

    private void OnRequestWork(long maxBlocks, object replyTo)
    {
        // Until the source's holes are known, work would read them over the WAN. Only the first window goes out before
        // the first scan answers, so the copy starts with the scan rather than a round trip after it; at worst that
        // window reads holes, which land as zeros. Later requests wait for the scan.
        bool blind = !_zeros.FirstScanDone;
        if (blind && (!_settings.PrefetchBeforeScan || _workedBeforeScan >= WorkBeforeScanBlocks))
        {
            _workBeforeScan.Add((maxBlocks, replyTo));
            return;
        }
        var run = Map.NextRun(_cursor, BlockState.Remote, ZeroWorkCap);
        if (run is null)
        {
            Emit(new Reply(replyTo, P.NoWork.Instance));
            return;
        }
        var (first, count, zero) = _zeros.Classify(run.Value.First, run.Value.Count);
        if (!zero) count = Math.Min(count, maxBlocks);
        if (blind) _workedBeforeScan += count;
        Set(first, count, BlockState.Fetching, BlockEvent.Work);
        _cursor = first + count;
        Emit(new Reply(replyTo, new P.Work(first, count, zero)));
    }

    /// <summary>Told every block state change with its reason (the protocol model checks them against
    /// <see cref="BlockTransitions.Table"/>); null in production.</summary>
    public Action<BlockState, BlockEvent, BlockState>? Observer { get; init; }

    private void Set(long first, long count, BlockState to, BlockEvent why)
    {
        if (Observer is { } observe)
            for (long b = first; b < first + count; b++) observe(Map[b], why, to);
        Map.Set(first, count, to);
    }

    private void Land(long first, long count, LandKind kind, long bytes)
    {
        Set(first, count, BlockState.Local, kind == LandKind.Written ? BlockEvent.WriteDone : BlockEvent.Landed);
        _state.Count(kind, bytes);
        var last = _pending.Count > 0 ? _pending[^1] : null;
        if (last is not null && last.Kind == kind && last.First + last.Count == first)
            _pending[^1] = last with { Count = last.Count + count, Bytes = last.Bytes + bytes };
        else
            _pending.Add(new DiskEvents.BlocksLanded(first, count, kind, bytes));
        foreach (var (to, reply) in _waiters.Landed(first, count)) Emit(new Reply(to, reply));
        CheckComplete();
    }

    private void OnTick(DateTime now)
    {
        long landed = _state.FetchedBytes;
        double seconds = (now - _lastRateSample).TotalSeconds;
        if (seconds >= 1)
        {
            _rateBps = (long)((landed - _lastLandedBytes) / seconds);
            _lastLandedBytes = landed;
            _lastRateSample = now;
        }
        // Misses whose fetch failed are fetched again (the source connection reconnects by itself).
        foreach (var b in _waiters.Blocks.Where(b => Map[b] == BlockState.Remote).ToList()) FetchRemote(b, 1);
        // A write held for a handover that does not come fails like a miss the source never answers: the
        // guest's request has given up by then, so granting it later would reserve blocks nobody writes.
        var timeout = $"{_settings.MissTimeout.TotalSeconds:0.#} s";
        var expiredHeld = _heldWrites.Where(h => h.Deadline <= now).ToList();
        _heldWrites.RemoveAll(h => h.Deadline <= now);
        foreach (var (request, _) in expiredHeld)
            Emit(new Reply(request.ReplyTo, new P.Failed($"disk {_name} is not owned by this site yet: no handover within {timeout}")));
        if (expiredHeld.Count > 0)
            Emit(new Log(CoreLogLevel.Warning, $"{expiredHeld.Count} guest writes on disk {_name} failed: no handover in time", DiskCoreEvent.HeldWriteExpired));
        var expired = _waiters.Expire(now);
        foreach (var to in expired) Emit(new Reply(to, new P.Failed($"blocks of disk {_name} not available from the source within {timeout}")));
        if (expired.Count > 0) Emit(new Log(CoreLogLevel.Warning, $"{expired.Count} guest requests on disk {_name} failed: source unreachable"));
        if (_syncing is null && _pending.Count > 0 && now - _lastPersist >= _settings.PersistInterval) BeginSync();
    }

    private void CheckComplete()
    {
        // Before the handover the source still changes the disk: it is never complete here.
        if (!Map.IsComplete || _state.Completed || _completing || !_state.IsOwner) return;
        if (_syncing is not null || _pending.Count > 0)
        {
            if (_syncing is null) BeginSync(); // the completion follows the last landed batch
            return;
        }
        _completing = true;
        Emit(new Persist([new DiskEvents.RelocationCompleted()], new CompletionPersisted(), HoldCommands: true));
    }

    private void OnCompleted()
    {
        _state.Apply(new DiskEvents.RelocationCompleted());
        _phase = Phase.Complete;
        Emit(new StopChildren());
        Emit(new SaveSnapshot(_state.ToSnapshot()));
        Emit(new Publish(new P.RelocationFinished(_name)));
        Emit(new Log(CoreLogLevel.Info, $"disk {_name}: every block is local; source released"));
    }

    /// <summary>Group commit: everything landed so far and every FLUSH waiting so far share one
    /// fdatasync and one journal write; requests arriving meanwhile form the next group.</summary>
    private void BeginSync()
    {
        _lastPersist = _now;
        _syncing = new Batch(_pending, _syncWaiters);
        _pending = [];
        _syncWaiters = [];
        Emit(new StartSync(++_syncId));
    }

    private void OnDataSynced(long id)
    {
        if (id != _syncId || _syncing is null) return;
        if (_syncing.Landed.Count == 0)
        {
            AfterSync();
            return;
        }
        // Not held: guest misses keep flowing during the journal write. A copy, since later invalidations strip the batch.
        _eventsSinceSnapshot += _syncing.Landed.Count;
        Emit(new Persist(_syncing.Landed.Cast<object>().ToList(), new SyncPersisted(id), HoldCommands: false));
    }

    private void OnSyncFailed(DiskInput.SyncFailed m)
    {
        if (m.Id != _syncId || _syncing is not { } batch) return;
        Emit(new Log(CoreLogLevel.Error, $"fdatasync of disk {_name} failed: {m.Reason}"));
        _pending.InsertRange(0, batch.Landed);
        foreach (var w in batch.Waiters) Emit(new Reply(w, new P.Failed($"flush failed: {m.Reason}")));
        _syncing = null;
    }

    /// <summary>Journal events between snapshots: snapshot-every, or more on a large disk, whose map (2 bits a block: 4 MiB
    /// for 1 TiB of 64 KiB blocks) would otherwise be written whole every few hundred events; at most about
    /// <see cref="SnapshotBytesPerEvent"/> bytes of snapshot per event, while a restart replays at most this many events.</summary>
    internal long SnapshotAfter => Math.Max(_settings.SnapshotEvery, (Map.BlockCount / 4) / SnapshotBytesPerEvent);

    /// <summary>About the size of a landed-blocks event in the journal: a snapshot costs no more than the events it saves replaying.</summary>
    private const long SnapshotBytesPerEvent = 128;

    private void AfterSync()
    {
        var batch = _syncing!;
        _syncing = null;
        foreach (var w in batch.Waiters) Emit(new Reply(w, P.Ready.Instance));
        if (_eventsSinceSnapshot >= SnapshotAfter)
        {
            _eventsSinceSnapshot = 0;
            // Blocks landed since this sync began are not durable yet: the snapshot leaves them out.
            Emit(new SaveSnapshot(_state.ToSnapshot(_pending)));
        }
        if (_syncWaiters.Count > 0) BeginSync();
        else if (_phase == Phase.Relocating) CheckComplete();
    }

    private void OnPersisted(object token)
    {
        switch (token)
        {
            case SyncPersisted s when s.Sync == _syncId && _syncing is not null: AfterSync(); break;
            case InvalidatePersisted i: Emit(new Reply(i.ReplyTo, new P.Invalidated(i.Epoch))); break;
            case OwnershipPersisted o: OnOwned(o.Epoch); break;
            case CompletionPersisted: OnCompleted(); break;
        }
    }

    private P.Status Status() => new(_name, _state.Completed ? "complete" : _stalled is not null ? "stalled" : "relocating",
        Map.LocalBytes, Map.DiskSize, _state.FetchedBytes, _state.SkippedBytes, _state.WrittenBytes,
        _onDemandFetches, _state.Completed ? 0 : _rateBps, _prefetchWindow, _prefetchPaused, _zeros.KnownBlocks << Map.BlockShift, _state.Completed ? null : _stalled);
}
