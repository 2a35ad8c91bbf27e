using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Reloc.Actors.Source;
using Reloc.Storage;
using static Reloc.Actors.Disk.VirtualDiskProtocol;

namespace Reloc.Actors.Disk;

/// <summary>
/// One virtual disk being relocated to this site. It owns the block map (the only writer), the
/// children that fetch (guest misses) and prefetch (background copy), and the disk's durable state.
/// The NBD data path (<see cref="RelocatingDisk"/>) reads local blocks without coming here; it asks
/// only for blocks that are missing, for writes that touch them, and for FLUSH.
/// </summary>
/// <remarks>
/// Durability: a block is marked local in memory once its data is in the image; a batch of such blocks
/// is persisted only after an fdatasync of the image (every PersistInterval, or at a FLUSH), so a
/// persisted bit always covers durable data, and a FLUSH is answered only when both are durable.
///
///   Recovering --(replayed, not complete)--> Relocating --(every block local, persisted)--> Complete
///   Recovering --(replayed, complete)------------------------------------------------------> Complete
/// </remarks>
public sealed class VirtualDiskActor : ReceivePersistentActor, IWithTimers
{
    private const long ZeroWorkCap = 16384; // blocks punched per zero work item
    private readonly DiskId _id;
    private readonly DiskState _state;
    private readonly RawImage _image;
    private readonly DiskSettings _settings;
    private readonly BlockSourceFactory _sources;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Waiters _waiters = new();
    private readonly SourceZeros _zeros; // the source's holes: source knowledge, invalidated like data
    private readonly List<(IActorRef Prefetcher, RequestWork Request)> _workBeforeScan = []; // at most one window of requests
    private readonly HashSet<long> _reserved = []; // blocks a guest write covers whole, not yet written
    private readonly HashSet<long> _staleFetches = []; // invalidated while a fetch was in flight: that fetch must not land
    private readonly List<(IActorRef ReplyTo, PrepareWrite Request, DateTime Deadline)> _heldWrites = []; // guest writes before this site owns the disk
    private List<DiskEvents.BlocksLanded>? _syncingBatch;
    private List<DiskEvents.BlocksLanded> _pending = [];
    private List<IActorRef> _syncWaiters = [];
    private bool _syncing, _completing;
    private IActorRef _fetcher = ActorRefs.Nobody, _prefetcher = ActorRefs.Nobody;
    private long _cursor, _onDemandFetches, _eventsSinceSnapshot;
    private long _rateBps, _lastLandedBytes;
    private DateTime _lastRateSample = DateTime.UtcNow;
    private int _prefetchWindow;
    private bool _prefetchPaused;

    private readonly string _persistenceId;

    public VirtualDiskActor(DiskId id, DiskState state, RawImage image, DiskSettings settings, BlockSourceFactory sources, string? persistenceId = null)
    {
        _persistenceId = persistenceId ?? "disk-" + id.Value;
        _id = id;
        _state = state;
        _image = image;
        _settings = settings;
        _sources = sources;
        _zeros = new SourceZeros(state.Map.BlockCount);
        Recover<SnapshotOffer>(o => _state.Restore((DiskSnapshot)o.Snapshot));
        Recover<DiskEvents.BlocksLanded>(e => _state.Apply(e));
        Recover<DiskEvents.RelocationCompleted>(e => _state.Apply(e));
        Recover<DiskEvents.BlocksInvalidated>(e => _state.Apply(e));
        Recover<DiskEvents.OwnershipTaken>(e => _state.Apply(e));
        Recover<RecoveryCompleted>(_ => OnRecovered());
    }

    public override string PersistenceId => _persistenceId;
    public ITimerScheduler Timers { get; set; } = null!;
    private BlockMap Map => _state.Map;

    /// <param name="persistenceId">Journal key; a disk that comes back to a site it left gets a new one (per epoch).</param>
    public static Props Props(DiskId id, DiskState state, RawImage image, DiskSettings settings, BlockSourceFactory sources, string? persistenceId = null) =>
        Akka.Actor.Props.Create(() => new VirtualDiskActor(id, state, image, settings.Validate(), sources, persistenceId));

    private void OnRecovered()
    {
        _state.MarkRecovered();
        if (_state.Completed)
        {
            Become(Complete);
            // Its site may have crashed before it registered the completion: tell it again (it is idempotent).
            Context.System.EventStream.Publish(new RelocationFinished(_id.Value));
            return;
        }
        _fetcher = Context.ActorOf(BlockFetcher.Props(_image, Map, _sources, _settings), "fetcher");
        if (_settings.Prefetch)
        {
            _prefetcher = Context.ActorOf(Prefetcher.Props(_image, Map, _sources, _settings), "prefetcher");
            ScanSource([(0, Map.BlockCount)]);
        }
        Timers.StartPeriodicTimer("tick", Tick.Instance, TimeSpan.FromMilliseconds(250));
        Become(Relocating);
        CheckComplete();
    }

    // ---------------- Relocating ----------------

    private void Relocating()
    {
        Command<EnsureLocal>(m => Ensure(m.Offset, m.Length, Sender, Ready.Instance));
        Command<ReadThrough>(m =>
        {
            if (_state.IsOwner) Ensure(m.Offset, m.Length, Sender, Ready.Instance);
            else _fetcher.Forward(m);
        });
        Command<Warm>(m => Ensure(m.Offset, m.Length, ActorRefs.Nobody, Ready.Instance));
        Command<PrepareWrite>(OnPrepareWrite);
        Command<WriteDone>(m =>
        {
            foreach (var (first, count) in m.Reserved)
            {
                for (long b = first; b < first + count; b++) _reserved.Remove(b);
                Land(first, count, LandKind.Written, Math.Min(count << Map.BlockShift, Map.DiskSize - (first << Map.BlockShift)));
            }
        });
        Command<WriteAborted>(m =>
        {
            foreach (var (first, count) in m.Reserved)
            {
                for (long b = first; b < first + count; b++) _reserved.Remove(b);
                Map.Set(first, count, BlockState.Remote); // waiters are refetched on the next tick
            }
        });
        Command<Landed>(m =>
        {
            // Only blocks still claimed by a fetch may land: never a block a writer reserved.
            // A fetch issued before an invalidation carries the old data: those blocks go back to Remote.
            foreach (var (first, count) in Map.Runs(m.First, m.Count, BlockState.Fetching).ToList())
                for (long b = first; b < first + count; b++)
                    if (_staleFetches.Remove(b) && !_reserved.Contains(b)) Map.Set(b, 1, BlockState.Remote);
            foreach (var (first, count) in Map.Runs(m.First, m.Count, BlockState.Fetching).ToList())
                if (!Overlaps(first, count)) Land(first, count, m.Kind, m.Kind == LandKind.Fetched ? m.Bytes * count / m.Count : Math.Min(count << Map.BlockShift, m.Bytes));
        });
        Command<FetchFailed>(m =>
        {
            _log.Warning("fetch of blocks {0}+{1} from the source failed: {2}", m.First, m.Count, m.Reason);
            foreach (var (first, count) in Map.Runs(m.First, m.Count, BlockState.Fetching).ToList())
                if (!Overlaps(first, count))
                {
                    Map.Set(first, count, BlockState.Remote);
                    for (long b = first; b < first + count; b++) _staleFetches.Remove(b);
                }
        });
        Command<RequestWork>(m => OnRequestWork(m, Sender));
        Command<Invalidate>(OnInvalidate);
        Command<TakeOwnership>(OnTakeOwnership);
        Command<SourceZero>(m =>
        {
            _zeros.ScanCompleted(m.Scan, m.Runs);
            foreach (var (prefetcher, request) in _workBeforeScan) OnRequestWork(request, prefetcher);
            _workBeforeScan.Clear();
            RescanIfWorthIt();
        });
        Command<PrefetchStats>(m => (_prefetchWindow, _prefetchPaused) = (m.Window, m.Paused));
        Command<SetRate>(m => _prefetcher.Forward(m));
        Command<PausePrefetch>(m => _prefetcher.Forward(m));
        Command<ResumePrefetch>(m => _prefetcher.Forward(m));
        Command<Tick>(_ =>
        {
            OnTick();
            CheckComplete();
        });
        CommonCommands();
    }

    private bool Overlaps(long first, long count)
    {
        if (_reserved.Count == 0) return false;
        for (long b = first; b < first + count; b++) if (_reserved.Contains(b)) return true;
        return false;
    }

    private void Ensure(long offset, long length, IActorRef replyTo, object reply)
    {
        if (length <= 0 || offset < 0 || offset >= Map.DiskSize)
        {
            replyTo.Tell(reply);
            return;
        }
        var (first, last) = Map.BlocksOf(offset, Math.Min(length, Map.DiskSize - offset));
        var missing = new List<long>();
        for (long b = first; b <= last; b++) if (Map[b] != BlockState.Local) missing.Add(b);
        if (missing.Count == 0)
        {
            replyTo.Tell(reply);
            return;
        }
        FetchRemote(first, last - first + 1);
        if (!replyTo.IsNobody()) _waiters.Add(replyTo, reply, missing, DateTime.UtcNow + _settings.MissTimeout);
    }

    /// <summary>Starts on-demand fetches for the Remote blocks of a range (Fetching ones are already coming).</summary>
    private void FetchRemote(long first, long count)
    {
        foreach (var (f, c) in Map.Runs(first, count, BlockState.Remote).ToList())
        {
            Map.Set(f, c, BlockState.Fetching);
            _fetcher.Tell(new Fetch(f, c));
            _onDemandFetches++;
            _cursor = f + c; // background copy continues right after a miss: guests read on
        }
    }

    private void OnPrepareWrite(PrepareWrite m)
    {
        if (!_state.IsOwner)
        {
            // Two sites never both accept writes: hold it until the handover makes this site the owner.
            if (_heldWrites.Count == 0) Context.System.EventStream.Publish(new WriteHeldForHandover(_id.Value));
            _heldWrites.Add((Sender, m, DateTime.UtcNow + _settings.MissTimeout));
            return;
        }
        var (first, last) = Map.BlocksOf(m.Offset, m.Length);
        var reserved = new List<(long, long)>();
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
                Map.Set(b, 1, BlockState.Fetching);
                _reserved.Add(b);
                if (reserved.Count > 0 && reserved[^1].Item1 + reserved[^1].Item2 == b) reserved[^1] = (reserved[^1].Item1, reserved[^1].Item2 + 1);
                else reserved.Add((b, 1));
            }
            else
            {
                // Partly written (read-modify-write), or a fetch is already landing there: wait until local.
                wait.Add(b);
                if (state == BlockState.Remote) FetchRemote(b, 1);
            }
        }
        var granted = new WriteGranted(first, last - first + 1, reserved);
        if (wait.Count == 0) Sender.Tell(granted);
        else _waiters.Add(Sender, granted, wait, DateTime.UtcNow + _settings.MissTimeout);
    }

    private void OnInvalidate(Invalidate m)
    {
        if (m.Epoch < _state.Epoch || _state.IsOwner)
        {
            Sender.Tell(new StaleEpoch(_state.Epoch, m.Epoch)); // after the handover the source writes nothing
            return;
        }
        var events = InvalidateBlocks(m.Blocks);
        var replyTo = Sender;
        if (events.Count == 0) { replyTo.Tell(new Invalidated(m.Epoch)); return; }
        PersistAll(events, _ => { });
        DeferAsync(m, _ => replyTo.Tell(new Invalidated(m.Epoch)));
    }

    private void OnTakeOwnership(TakeOwnership m)
    {
        if (_state.IsOwner && m.Epoch == _state.Epoch) { Sender.Tell(new OwnershipConfirmed(m.Epoch)); return; } // a retry
        if (m.Epoch <= _state.Epoch) { Sender.Tell(new StaleEpoch(_state.Epoch, m.Epoch)); return; }
        var events = InvalidateBlocks(m.FinalDirty).Cast<object>().Append(new DiskEvents.OwnershipTaken(m.Epoch)).ToList();
        var replyTo = Sender;
        PersistAll(events, e =>
        {
            if (e is not DiskEvents.OwnershipTaken taken) return;
            _state.Apply(taken);
            _log.Info("disk {0}: this site owns it from epoch {1}", _id, taken.Epoch);
            replyTo.Tell(new OwnershipConfirmed(taken.Epoch));
            foreach (var (heldBy, request, _) in _heldWrites) Self.Tell(request, heldBy);
            _heldWrites.Clear();
            Self.Tell(Tick.Instance); // every block may already be local (hybrid pre-copy)
        });
    }

    /// <summary>Marks blocks stale: local copies become Remote (refetched on demand), fetches in flight
    /// are discarded when they land, and landings not yet persisted are dropped from their batch so a
    /// replay can never resurrect them after the invalidation.</summary>
    private List<DiskEvents.BlocksInvalidated> InvalidateBlocks(IReadOnlyList<(long First, long Count)> runs)
    {
        var events = new List<DiskEvents.BlocksInvalidated>();
        foreach (var (first, count) in runs)
        {
            long f = Math.Max(0, first), end = Math.Min(Map.BlockCount, first + count);
            if (end <= f) continue;
            for (long b = f; b < end; b++)
                if (Map[b] == BlockState.Fetching && !_reserved.Contains(b)) _staleFetches.Add(b);
            foreach (var (lf, lc) in Map.Runs(f, end - f, BlockState.Local).ToList()) Map.Set(lf, lc, BlockState.Remote);
            _zeros.Written(f, end - f); // a block the source wrote is no longer known to be a hole there
            Strip(_pending, f, end - f);
            if (_syncingBatch is not null) Strip(_syncingBatch, f, end - f);
            events.Add(new DiskEvents.BlocksInvalidated(f, end - f));
        }
        RescanIfWorthIt();
        return events;
    }

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

    /// <summary>Asks the prefetcher for the source's zero extents in <paramref name="ranges"/>; the answer
    /// (<see cref="SourceZero"/>) leaves out whatever the source reports written meanwhile.</summary>
    private void ScanSource(IReadOnlyList<(long First, long Count)> ranges) =>
        _prefetcher.Tell(new ScanZeros(_zeros.BeginScan(ranges), ranges));

    private void RescanIfWorthIt()
    {
        if (_prefetcher.IsNobody() || _zeros.Rescan() is not { } ranges) return;
        _log.Info("disk {0}: the source wrote {1} blocks it had reported as holes; asking for its holes there again", _id, _zeros.LostBlocks);
        ScanSource(ranges);
    }

    private void OnRequestWork(RequestWork m, IActorRef replyTo)
    {
        // Until the source's holes are known, work would read them over the WAN: wait for the first scan.
        if (!_zeros.FirstScanDone)
        {
            _workBeforeScan.Add((replyTo, m));
            return;
        }
        var run = Map.NextRun(_cursor, BlockState.Remote, ZeroWorkCap);
        if (run is null)
        {
            replyTo.Tell(NoWork.Instance);
            return;
        }
        var (first, count, zero) = _zeros.Classify(run.Value.First, run.Value.Count);
        if (!zero) count = Math.Min(count, m.MaxBlocks);
        Map.Set(first, count, BlockState.Fetching);
        _cursor = first + count;
        replyTo.Tell(new Work(first, count, zero));
    }

    private void Land(long first, long count, LandKind kind, long bytes)
    {
        Map.Set(first, count, BlockState.Local);
        _state.Count(kind, bytes);
        var last = _pending.Count > 0 ? _pending[^1] : null;
        if (last is not null && last.Kind == kind && last.First + last.Count == first)
            _pending[^1] = last with { Count = last.Count + count, Bytes = last.Bytes + bytes };
        else
            _pending.Add(new DiskEvents.BlocksLanded(first, count, kind, bytes));
        _waiters.Landed(first, count);
        CheckComplete();
    }

    private void OnTick()
    {
        var now = DateTime.UtcNow;
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
        int held = _heldWrites.RemoveAll(h =>
        {
            if (h.Deadline > now) return false;
            h.ReplyTo.Tell(new Failed($"disk {_id} is not owned by this site yet: no handover within {_settings.MissTimeout.TotalSeconds:0.#} s"));
            return true;
        });
        if (held > 0) _log.Warning("{0} guest writes on disk {1} failed: no handover in time", held, _id);
        int expired = _waiters.Expire(now, () => new Failed($"blocks of disk {_id} not available from the source within {_settings.MissTimeout.TotalSeconds:0.#} s"));
        if (expired > 0) _log.Warning("{0} guest requests on disk {1} failed: source unreachable", expired, _id);
        if (!_syncing && _pending.Count > 0 && now - _lastPersist >= _settings.PersistInterval) BeginSync();
    }

    private DateTime _lastPersist = DateTime.UtcNow;

    private void CheckComplete()
    {
        // Before the handover the source still changes the disk: it is never complete here.
        if (!Map.IsComplete || _state.Completed || _completing || !_state.IsOwner) return;
        if (_syncing || _pending.Count > 0)
        {
            if (!_syncing) BeginSync(); // the completion follows the last landed batch
            return;
        }
        _completing = true;
        Persist(new DiskEvents.RelocationCompleted(), e =>
        {
            _state.Apply(e);
            Context.Stop(_fetcher);
            if (!_prefetcher.IsNobody()) Context.Stop(_prefetcher);
            Timers.Cancel("tick");
            SaveSnapshot(_state.ToSnapshot());
            Context.System.EventStream.Publish(new RelocationFinished(_id.Value));
            _log.Info("disk {0}: every block is local; source released", _id);
            Become(Complete);
        });
    }

    // ---------------- Complete ----------------

    private void Complete()
    {
        Command<EnsureLocal>(_ => Sender.Tell(Ready.Instance));
        Command<ReadThrough>(_ => Sender.Tell(Ready.Instance));
        Command<Warm>(_ => { });
        Command<PrepareWrite>(m => Sender.Tell(new WriteGranted(0, 0, [])));
        Command<WriteDone>(_ => { });
        Command<WriteAborted>(_ => { });
        Command<Landed>(_ => { });
        Command<FetchFailed>(_ => { });
        Command<PrefetchStats>(_ => { });
        Command<SourceZero>(_ => { });
        Command<Tick>(_ => { });
        Command<SetRate>(_ => { });
        Command<PausePrefetch>(_ => { });
        Command<ResumePrefetch>(_ => { });
        CommonCommands();
    }

    // ---------------- both ----------------

    private void CommonCommands()
    {
        Command<Sync>(_ =>
        {
            _syncWaiters.Add(Sender);
            if (!_syncing) BeginSync();
        });
        Command<DataSynced>(OnDataSynced);
        Command<SyncFailed>(m =>
        {
            _log.Error("fdatasync of disk {0} failed: {1}", _id, m.Reason);
            _pending.InsertRange(0, m.Batch);
            foreach (var w in m.Waiters) w.Tell(new Failed($"flush failed: {m.Reason}"));
            _syncing = false;
        });
        Command<GetStatus>(_ => Sender.Tell(new VirtualDiskProtocol.Status(_id.Value, _state.Completed ? "complete" : "relocating",
            Map.LocalBytes, Map.DiskSize, _state.FetchedBytes, _state.SkippedBytes, _state.WrittenBytes,
            _onDemandFetches, _state.Completed ? 0 : _rateBps, _prefetchWindow, _prefetchPaused, _zeros.KnownBlocks << Map.BlockShift)));
        Command<SaveSnapshotSuccess>(s => DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1)));
        Command<SaveSnapshotFailure>(f => _log.Warning("snapshot of disk {0} failed: {1}", _id, f.Cause.Message));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(_ => { });
    }

    /// <summary>Group commit: everything landed so far and every FLUSH waiting so far share one
    /// fdatasync and one journal write; requests arriving meanwhile form the next group.</summary>
    private void BeginSync()
    {
        _syncing = true;
        _lastPersist = DateTime.UtcNow;
        var batch = _pending;
        var waiters = _syncWaiters;
        _pending = [];
        _syncWaiters = [];
        _syncingBatch = batch;
        var image = _image;
        Task.Run(() => image.FlushAsync(CancellationToken.None).AsTask()).PipeTo(Self,
            success: () => new DataSynced(batch, waiters),
            failure: ex => new SyncFailed(batch, waiters, ex.Message));
    }

    private void OnDataSynced(DataSynced m)
    {
        if (m.Batch.Count == 0)
        {
            AfterSync(m.Waiters);
            return;
        }
        // PersistAllAsync does not stash commands: guest misses keep flowing during the journal write.
        PersistAllAsync(m.Batch, _ => _eventsSinceSnapshot++);
        DeferAsync(m, _ => AfterSync(m.Waiters));
    }

    private void AfterSync(List<IActorRef> waiters)
    {
        _syncingBatch = null;
        foreach (var w in waiters) w.Tell(Ready.Instance);
        _syncing = false;
        if (_eventsSinceSnapshot >= _settings.SnapshotEvery)
        {
            _eventsSinceSnapshot = 0;
            // Blocks landed since this sync began are not durable yet: the snapshot leaves them out.
            SaveSnapshot(_state.ToSnapshot(_pending));
        }
        if (_syncWaiters.Count > 0) BeginSync();
        // Not CheckComplete() here: a Persist from inside a Defer callback leaves Akka.Persistence
        // stashing commands for good (seen: FLUSHes never answered); go through the mailbox instead.
        else Self.Tell(Tick.Instance);
    }

    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        _log.Error(cause, "disk {0}: journal write failed; stopping so that nothing unpersisted is acknowledged", _id);
        base.OnPersistFailure(cause, @event, sequenceNr);
    }
}
