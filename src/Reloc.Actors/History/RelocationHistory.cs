using Akka.Actor;
using PubSub = Akka.Cluster.Tools.PublishSubscribe;
using Akka.Event;
using Akka.Persistence;
using static Reloc.Actors.Coordinator.RelocationProtocol;
using static Reloc.Actors.History.HistoryProtocol;

namespace Reloc.Actors.History;

/// <summary>
/// A node's relocation history: subscribed to <see cref="Coordinator.RelocationEvents.Topic"/>, it persists every
/// <see cref="RelocationEvent"/> the coordinator publishes (once: by its id), keeps the last
/// <see cref="HistorySettings.MaxEvents"/>, answers <see cref="GetEvents"/> and <see cref="GetDiskHistory"/>, and
/// pushes new events to its subscribers (<see cref="Subscribe"/>, e.g. a <see cref="RelocationEventFeed"/>). Every node
/// runs one, so any node answers for the whole cluster's history since it ran; its journal is the node's own
/// (persistence id relocation-history-SITE). It keeps the management API's <see cref="AuditRecord"/>s the same way
/// (published on <see cref="AuditTopic.Name"/> by whichever node's API answered), answering <see cref="GetAudit"/>. The journal stays bounded: a snapshot every
/// <see cref="HistorySettings.SnapshotEvery"/> events, then the messages before it are deleted.
/// </summary>
public sealed class RelocationHistory : ReceivePersistentActor
{
    private readonly HistorySettings _settings;
    private readonly HistoryLog _log;
    private readonly AuditLog _audit;
    private readonly HashSet<IActorRef> _subscribers = [];
    private readonly ILoggingAdapter _logger = Context.GetLogger();
    private long _sinceSnapshot;

    public RelocationHistory(string site, HistorySettings settings)
    {
        PersistenceId = PersistenceIdOf(site);
        _settings = settings.Validate();
        _log = new HistoryLog(settings.MaxEvents);
        _audit = new AuditLog(settings.MaxEvents);

        Recover<SnapshotOffer>(o =>
        {
            if (o.Snapshot is not HistorySnapshot s) return;
            foreach (var e in s.Entries) _log.Add(e);
            foreach (var a in s.Audit ?? []) _audit.Add(a);
        });
        Recover<RelocationEvent>(e => { _log.Add(new HistoryEntry(LastSequenceNr, e)); _sinceSnapshot++; });
        Recover<AuditRecord>(a => { _audit.Add(new AuditEntry(LastSequenceNr, a)); _sinceSnapshot++; });

        Command<RelocationEvent>(e =>
        {
            if (_log.Contains(e.Id)) return;
            Persist(e, persisted =>
            {
                var entry = new HistoryEntry(LastSequenceNr, persisted);
                _log.Add(entry);
                foreach (var s in _subscribers) s.Tell(entry);
                if (++_sinceSnapshot >= _settings.SnapshotEvery) SaveSnapshot(new HistorySnapshot(_log.All, _audit.All));
            });
        });
        Command<AuditRecord>(a =>
        {
            if (_audit.Contains(a.Id)) return;
            Persist(a, persisted =>
            {
                _audit.Add(new AuditEntry(LastSequenceNr, persisted));
                if (++_sinceSnapshot >= _settings.SnapshotEvery) SaveSnapshot(new HistorySnapshot(_log.All, _audit.All));
            });
        });
        Command<GetAudit>(q => Sender.Tell(new AuditRecords(_audit.Newest(q.Limit))));
        Command<GetEvents>(q => Sender.Tell(new HistoryEvents(q is { Newest: true, AfterSequence: null } ? _log.Newest(q.Limit) : _log.After(q.AfterSequence, q.Limit))));
        Command<GetDiskHistory>(q => Sender.Tell(new DiskHistory(q.Disk, HistoryLog.Summarize(_log.OfDisk(q.Disk)))));
        Command<Subscribe>(s =>
        {
            if (_subscribers.Add(s.Subscriber)) Context.Watch(s.Subscriber);
            // The backlog and the live events from this one actor: nothing falls between them.
            s.Subscriber.Tell(new HistoryEvents(s.AfterSequence is null ? [] : _log.After(s.AfterSequence, _settings.MaxEvents)));
        });
        Command<Unsubscribe>(u =>
        {
            if (_subscribers.Remove(u.Subscriber)) Context.Unwatch(u.Subscriber);
        });
        Command<Terminated>(t => _subscribers.Remove(t.ActorRef));
        Command<PubSub.SubscribeAck>(_ => { });
        Command<SaveSnapshotSuccess>(ok =>
        {
            _sinceSnapshot = 0;
            // What the snapshot holds need not be replayed: the journal keeps only what came after it.
            DeleteMessages(ok.Metadata.SequenceNr);
            DeleteSnapshots(new SnapshotSelectionCriteria(ok.Metadata.SequenceNr - 1, ok.Metadata.Timestamp.AddTicks(-1)));
        });
        Command<SaveSnapshotFailure>(f => _logger.Warning("relocation history: snapshot failed, the journal keeps growing until one succeeds: {0}", f.Cause.Message));
        Command<DeleteMessagesSuccess>(_ => { });
        Command<DeleteMessagesFailure>(f => _logger.Warning("relocation history: old events not deleted: {0}", f.Cause.Message));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(f => _logger.Warning("relocation history: old snapshots not deleted: {0}", f.Cause.Message));
    }

    public override string PersistenceId { get; }

    public static string PersistenceIdOf(string site) => $"relocation-history-{site}";

    public static Props Props(string site, HistorySettings settings) =>
        Akka.Actor.Props.Create(() => new RelocationHistory(site, settings));

    protected override void PreStart()
    {
        base.PreStart();
        var mediator = PubSub.DistributedPubSub.Get(Context.System).Mediator;
        mediator.Tell(new PubSub.Subscribe(Coordinator.RelocationEvents.Topic, Self));
        mediator.Tell(new PubSub.Subscribe(AuditTopic.Name, Self));
    }
}
