using System.Diagnostics;
using Akka.Actor;
using Akka.Event;
using Akka.Pattern;
using Akka.Persistence;
using Reloc.Actors.Source;
using Reloc.Actors.Telemetry;
using Reloc.Storage;
using static Reloc.Actors.Disk.VirtualDiskProtocol;

namespace Reloc.Actors.Disk;

/// <summary>
/// One virtual disk being relocated to this site: the shell of <see cref="DiskCore"/>, which decides. It
/// turns messages into the core's inputs and carries out its decisions: the children that fetch (guest
/// misses) and prefetch (background copy and the source's hole scans), fdatasync off the actor, the journal
/// and snapshots. The NBD data path (<see cref="RelocatingDisk"/>) reads local blocks without coming here;
/// it asks only for blocks that are missing, for writes that touch them, and for FLUSH.
/// </summary>
public sealed class VirtualDiskActor : ReceivePersistentActor, IWithTimers
{
    private readonly DiskId _id;
    private readonly DiskState _state;
    private readonly IBlockDevice _image;
    private readonly DiskSettings _settings;
    private readonly BlockSourceFactory _sources;
    private readonly DiskCore _core;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly string _persistenceId;
    private IActorRef _fetcher = ActorRefs.Nobody, _prefetcher = ActorRefs.Nobody;
    private long _lastMissTold;
    private readonly DiskMetrics? _metrics;
    private long _rateFetched; // FetchedBytes at _rateSince: the landing rate is taken per tick
    private DateTime _rateSince;

    public VirtualDiskActor(DiskId id, DiskState state, IBlockDevice image, DiskSettings settings, BlockSourceFactory sources, string? persistenceId = null,
        DiskMetrics? metrics = null)
    {
        _metrics = metrics;
        _persistenceId = persistenceId ?? "disk-" + id.Value;
        _id = id;
        // Created again (by its site's backoff supervisor) over the state an earlier incarnation recovered: start
        // from what the journal starts from, or bits it never persisted would survive the replay.
        if (state.Recovered) state.Reset();
        _state = state;
        _image = image;
        _settings = settings;
        _sources = sources;
        _core = new DiskCore(id.Value, state, settings);
        Recover<SnapshotOffer>(o => _state.Restore((DiskSnapshot)o.Snapshot));
        Recover<DiskEvents.BlocksLanded>(e => _state.Apply(e));
        Recover<DiskEvents.RelocationCompleted>(e => _state.Apply(e));
        Recover<DiskEvents.BlocksInvalidated>(e => _state.Apply(e));
        Recover<DiskEvents.OwnershipTaken>(e => _state.Apply(e));
        Recover<RecoveryCompleted>(_ => OnRecovered());
    }

    public override string PersistenceId => _persistenceId;
    public ITimerScheduler Timers { get; set; } = null!;

    /// <param name="persistenceId">Journal key; a disk that comes back to a site it left gets a new one (per epoch).</param>
    /// <param name="metrics">Where the disk's progress, link bytes and journal writes are reported; null: nowhere.</param>
    public static Props Props(DiskId id, DiskState state, IBlockDevice image, DiskSettings settings, BlockSourceFactory sources, string? persistenceId = null,
        DiskMetrics? metrics = null) =>
        Akka.Actor.Props.Create(() => new VirtualDiskActor(id, state, image, settings.Validate(), sources, persistenceId, metrics));

    protected override void PreStart()
    {
        _metrics?.Attach();
        base.PreStart();
    }

    protected override void PostStop()
    {
        _metrics?.Detach();
        base.PostStop();
    }

    /// <summary>The disk actor under a backoff supervisor: one that stops (Akka.Persistence stops it when its journal
    /// fails) or fails is created again after a backoff, and recovers from its journal. Its deliberate end
    /// (<see cref="DeleteJournal"/> then stop: the arrival was dropped) ends the supervisor too. Address the supervisor:
    /// it forwards every message to the disk actor.</summary>
    public static Props Supervised(Props disk, DiskSettings settings) =>
        BackoffSupervisor.Props(Backoff.OnStop(disk, "disk", settings.RestartBackoffMin, settings.RestartBackoffMax, randomFactor: 0.2, maxNrOfRetries: -1)
            .WithDefaultStoppingStrategy()
            .WithFinalStopMessage(m => m is DeleteJournal { ThenStop: true }));

    private void OnRecovered()
    {
        if (!_state.Completed)
        {
            _fetcher = Context.ActorOf(BlockFetcher.Props(_image, _state.Map, _sources, _settings), "fetcher");
            if (_settings.Prefetch) _prefetcher = Context.ActorOf(Prefetcher.Props(_image, _state.Map, _sources, _settings), "prefetcher");
            Timers.StartPeriodicTimer("tick", Tick.Instance, TimeSpan.FromMilliseconds(250));
        }
        Become(Running);
        Feed(new DiskInput.Recovered(DateTime.UtcNow));
    }

    private void Running()
    {
        Command<EnsureLocal>(m => Feed(new DiskInput.EnsureLocal(m.Offset, m.Length, Sender, DateTime.UtcNow)));
        Command<ReadThrough>(m => Feed(new DiskInput.ReadThrough(m.Offset, m.Length, Sender, DateTime.UtcNow)));
        Command<Warm>(m => Feed(new DiskInput.EnsureLocal(m.Offset, m.Length, null, DateTime.UtcNow)));
        Command<PrepareWrite>(m => Feed(new DiskInput.PrepareWrite(m.Offset, m.Length, Sender, DateTime.UtcNow)));
        Command<WriteDone>(m => Feed(new DiskInput.WriteDone(m.Reserved)));
        Command<WriteAborted>(m => Feed(new DiskInput.WriteAborted(m.Reserved)));
        Command<Landed>(m =>
        {
            if (m.Kind == LandKind.Fetched) _metrics?.Transferred(m.Bytes); // it crossed the link, whatever the core keeps of it
            Feed(new DiskInput.Landed(m.First, m.Count, m.Kind, m.Bytes));
        });
        Command<FetchFailed>(m => Feed(new DiskInput.FetchFailed(m.First, m.Count, m.Reason, m.NoSpace)));
        Command<RequestWork>(m => Feed(new DiskInput.RequestWork(m.MaxBlocks, Sender)));
        Command<SourceZero>(m => Feed(new DiskInput.SourceZero(m.Scan, m.Runs)));
        Command<PrefetchStats>(m =>
        {
            _metrics?.Prefetch(m.Window);
            Feed(new DiskInput.PrefetchStats(m.Window, m.Paused));
        });
        Command<Invalidate>(m => Feed(new DiskInput.Invalidate(m.Epoch, m.Blocks, Sender)));
        Command<TakeOwnership>(m => Feed(new DiskInput.TakeOwnership(m.Epoch, m.FinalDirty, Sender)));
        Command<Sync>(_ => Feed(new DiskInput.Sync(Sender, DateTime.UtcNow)));
        Command<Tick>(_ =>
        {
            var now = DateTime.UtcNow;
            if (_metrics is not null) MeasureRate(now);
            Feed(new DiskInput.Tick(now));
        });
        Command<GetStatus>(_ => Feed(new DiskInput.GetStatus(Sender)));
        // The shell's own feedback: through the mailbox, as DiskDecision.Persist and StartSync say.
        Command<DiskInput.DataSynced>(Feed);
        Command<DiskInput.SyncFailed>(Feed);
        Command<DiskInput.Persisted>(Feed);
        Command<SetRate>(ToPrefetcher);
        Command<PausePrefetch>(ToPrefetcher);
        Command<ResumePrefetch>(ToPrefetcher);
        Command<SaveSnapshotSuccess>(s => DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1)));
        Command<SaveSnapshotFailure>(f => _log.Warning("snapshot of disk {0} failed: {1}", _id, f.Cause.Message));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(_ => { });
        Command<DeleteJournal>(m =>
        {
            _stopAfterDelete = m.ThenStop;
            DeleteMessages(LastSequenceNr);
            DeleteSnapshots(SnapshotSelectionCriteria.Latest);
        });
        Command<DeleteMessagesSuccess>(_ => { if (_stopAfterDelete) Context.Stop(Self); });
        Command<DeleteMessagesFailure>(f =>
        {
            // Left behind, the journal is only garbage: every arrival has a fresh persistence id.
            _log.Warning("disk {0}: its journal {1} could not be deleted: {2}", _id, _persistenceId, f.Cause.Message);
            if (_stopAfterDelete) Context.Stop(Self);
        });
    }

    private bool _stopAfterDelete;

    /// <summary>A guest waits on the source: the prefetcher keeps a shorter queue meanwhile. At most one message per
    /// 10 ms (its hold is a second), so a burst of misses costs it no mailbox traffic.</summary>
    private void MissSeen()
    {
        long now = Stopwatch.GetTimestamp();
        if (_lastMissTold != 0 && Stopwatch.GetElapsedTime(_lastMissTold, now) < TimeSpan.FromMilliseconds(10)) return;
        _lastMissTold = now;
        _prefetcher.Tell(GuestMiss.Instance);
    }

    private void ToPrefetcher(object m)
    {
        if (!_core.Completed) _prefetcher.Forward(m);
    }

    private void Feed(DiskInput input)
    {
        foreach (var d in _core.Handle(input)) Execute(d);
        _metrics?.Progress(_state.Map.LocalBytes, _state.Map.DiskSize, _state.FetchedBytes, _state.SkippedBytes);
    }

    private void MeasureRate(DateTime now)
    {
        double seconds = (now - _rateSince).TotalSeconds;
        long fetched = _state.FetchedBytes;
        if (_rateSince != default && seconds > 0) _metrics!.Rate((long)((fetched - _rateFetched) / seconds));
        _rateSince = now;
        _rateFetched = fetched;
    }

    private void Execute(DiskDecision decision)
    {
        switch (decision)
        {
            case DiskDecision.Reply r:
                ((IActorRef)r.To).Tell(r.Message, Self);
                break;
            case DiskDecision.StartFetch f:
                _fetcher.Tell(new Fetch(f.First, f.Count));
                MissSeen();
                break;
            case DiskDecision.ForwardReadThrough r:
                _fetcher.Tell(new ReadThrough(r.Offset, r.Length), (IActorRef)r.ReplyTo);
                MissSeen();
                break;
            case DiskDecision.ScanSource s:
                _prefetcher.Tell(new ScanZeros(s.Scan, s.Ranges));
                break;
            case DiskDecision.StartSync s:
                var image = _image;
                Task.Run(() => image.FlushAsync(CancellationToken.None).AsTask()).PipeTo(Self,
                    success: () => new DiskInput.DataSynced(s.Id),
                    failure: ex => new DiskInput.SyncFailed(s.Id, ex.Message));
                break;
            case DiskDecision.Persist p:
                // PersistAllAsync does not stash commands: guest misses keep flowing during the journal write.
                if (p.HoldCommands) PersistAll(p.Events, _ => { });
                else PersistAllAsync(p.Events, _ => { });
                long persistStarted = Stopwatch.GetTimestamp();
                // Persisted goes through the mailbox: a Persist from inside a Defer callback (the completion after
                // a sync) leaves Akka.Persistence stashing commands for good (seen: FLUSHes never answered).
                DeferAsync(p.Then, then =>
                {
                    _metrics?.JournalWritten(Stopwatch.GetElapsedTime(persistStarted));
                    Self.Tell(new DiskInput.Persisted(then));
                });
                break;
            case DiskDecision.SaveSnapshot s:
                SaveSnapshot(s.Snapshot);
                break;
            case DiskDecision.Publish p:
                Context.System.EventStream.Publish(p.Message);
                break;
            case DiskDecision.StopChildren:
                Context.Stop(_fetcher);
                if (!_prefetcher.IsNobody()) Context.Stop(_prefetcher);
                Timers.Cancel("tick");
                break;
            case DiskDecision.Log l:
                _log.Write(l.Level, l.Text);
                break;
        }
    }

    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        _log.Error(cause, "disk {0}: journal write failed; stopping so that nothing unpersisted is acknowledged", _id);
        base.OnPersistFailure(cause, @event, sequenceNr);
    }
}
