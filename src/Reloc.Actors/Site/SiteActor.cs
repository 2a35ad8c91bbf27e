using System.Diagnostics;
using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Reloc.Actors.Coordinator;
using Reloc.Actors.Site.Core;
using Reloc.Actors.Telemetry;
using Reloc.Nbd.Server;
using Reloc.Storage;
using P = Reloc.Actors.Disk.VirtualDiskProtocol;

namespace Reloc.Actors.Site;

/// <summary>
/// One per site node: the actor shell of <see cref="SiteCore"/>, which decides (the registry of the disks this
/// site hosts, its source and destination sides of relocations). It feeds the core messages and I/O results,
/// persists the core's events before it carries out anything else the same input decided, and does the I/O
/// (<see cref="SiteDevices"/>: images, exports, disk actors).
/// </summary>
/// <remarks>
///   Recovering --(replayed: <see cref="SiteInput.Started"/>, every disk served)--> Serving
/// </remarks>
public sealed class SiteActor : ReceivePersistentActor, IWithTimers
{
    /// <summary>An input the shell made for itself (an I/O result through the mailbox).</summary>
    private sealed record Input(SiteInput Value);
    private sealed record StreamTick(string Disk);
    private sealed record ClientsChanged(string Disk);
    /// <param name="Device">The device fenced: a fence of an earlier incarnation (a restarted actor keeps its
    /// mailbox) must not drain the dirty blocks of the device serving the disk now.</param>
    private sealed record FenceFlushed(string Disk, OwnedDisk Device, string? Error);

    /// <summary>How often an outgoing disk streams the blocks its guest wrote to the destination.</summary>
    private static readonly TimeSpan StreamInterval = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(30);

    private readonly SiteSettings _settings;
    private readonly SiteCore _core;
    private readonly SiteDevices _devices;
    private readonly RelocTelemetry? _telemetry;
    private readonly ILoggingAdapter _log = Context.GetLogger();

    /// <param name="coordinator">The migration coordinator (this node's singleton proxy).</param>
    /// <param name="telemetry">Where the site's journal writes and its arriving disks report; null: nowhere.</param>
    /// <param name="peers">Warm connections to the other sites, for arriving disks' source connections; null: none.</param>
    public SiteActor(SiteSettings settings, ExportCatalog exports, IActorRef coordinator, RelocTelemetry? telemetry = null, PeerConnections? peers = null)
    {
        _telemetry = telemetry;
        _settings = settings;
        Coordinator = coordinator;
        var diskSettings = RelocConfig.DiskSettings(Context.System.Settings.Config);
        _core = new SiteCore(settings.Name, settings.DataDir, settings.NbdBaseUri, diskSettings.BlockSize, () => Guid.NewGuid().ToString("N"));
        var self = Self;
        _devices = new SiteDevices(settings, exports, diskSettings, Context, disk => self.Tell(new ClientsChanged(disk)), telemetry, peers);
        Recover<SiteEvents.DiskAdded>(_core.Recover);
        Recover<SiteEvents.DiskRemoved>(_core.Recover);
        Recover<SiteEvents.IncomingAdded>(_core.Recover);
        Recover<SiteEvents.ArrivalRateSet>(_core.Recover);
        Recover<SiteEvents.DiskFenced>(_core.Recover);
        Recover<SiteEvents.OutgoingBegun>(_core.Recover);
        Recover<SiteEvents.OutgoingEnded>(_core.Recover);
        Recover<SiteEvents.RelocationQueued>(_core.Recover);
        Recover<SiteEvents.QueueLeft>(_core.Recover);
        Recover<SiteEvents.LinkBudgetRemembered>(_core.Recover);
        Recover<RecoveryCompleted>(_ =>
        {
            // Subscribed before the disks start: a disk actor that recovers complete announces it at once.
            Context.System.EventStream.Subscribe(Self, typeof(P.WriteHeldForHandover));
            Context.System.EventStream.Subscribe(Self, typeof(P.RelocationFinished));
            Context.System.EventStream.Subscribe(Self, typeof(P.ArrivalStalled));
            _devices.SweepDiscarded();
            Run(new SiteInput.Started());
            Become(Serving);
        });
    }

    public override string PersistenceId => "site-" + _settings.Name;
    public ITimerScheduler Timers { get; set; } = null!;
    private IActorRef Coordinator { get; }

    public static Props Props(SiteSettings settings, ExportCatalog exports, IActorRef coordinator, RelocTelemetry? telemetry = null,
        PeerConnections? peers = null) =>
        Akka.Actor.Props.Create(() => new SiteActor(settings, exports, coordinator, telemetry, peers));

    /// <summary>The export name other sites fetch a disk through.</summary>
    public static string PeerExport(string disk) => SiteCore.PeerExport(disk);

    private void Serving()
    {
        Command<SiteProtocol.ListDisks>(_ => Sender.Tell(new SiteProtocol.DiskList(_settings.Name,
            _core.State.Disks.OrderBy(d => d.Name, StringComparer.Ordinal).Select(d => _core.Info(d, _devices.FactsOf(d.Name))).ToList(),
            _core.State.Links)));
        Command<SiteProtocol.GetNbdAddress>(_ => Sender.Tell(new SiteProtocol.NbdAddress(_settings.Name, _settings.NbdBaseUri)));
        Command<RelocationProtocol.GetProgress>(OnGetProgress);
        Command<SiteProtocol.CreateDisk>(OnCreate);
        Command<SiteProtocol.DeleteDisk>(Message);
        Command<SiteProtocol.Refused>(Message);
        Command<RelocationProtocol.PrepareIncoming>(Message);
        Command<RelocationProtocol.DropIncoming>(Message);
        Command<RelocationProtocol.InvalidateAt>(Message);
        Command<RelocationProtocol.TakeOwnershipAt>(Message);
        Command<RelocationProtocol.SetRate>(Message);
        Command<RelocationProtocol.StartOutgoing>(Message);
        Command<RelocationProtocol.InvalidatedAt>(Message);
        Command<RelocationProtocol.StopOutgoing>(Message);
        Command<RelocationProtocol.Fence>(Message);
        Command<RelocationProtocol.Release>(Message);
        Command<RelocationProtocol.QueueRelocation>(Message);
        Command<RelocationProtocol.Unqueue>(Message);
        Command<RelocationProtocol.RememberLinkBudget>(Message);
        Command<Input>(m => Run(m.Value));
        Command<P.WriteHeldForHandover>(m => Run(new SiteInput.WriteHeld(m.Disk)));
        Command<P.RelocationFinished>(m => Run(new SiteInput.ArrivalFinished(m.Disk)));
        Command<P.ArrivalStalled>(m => Run(new SiteInput.ArrivalStalled(m.Disk, m.Reason)));
        Command<SiteProtocol.GetAllocation>(OnGetAllocation);
        Command<SiteProtocol.CheckRoom>(OnCheckRoom);
        Command<StreamTick>(t => Run(new SiteInput.StreamTick(t.Disk, _devices.DrainDirty(t.Disk), DateTime.UtcNow)));
        Command<ClientsChanged>(m => Run(new SiteInput.ClientsChanged(m.Disk, _devices.GuestClientsOf(m.Disk))));
        // Drained here, on the actor's thread after the fence: every write admitted before it is tracked by now.
        Command<FenceFlushed>(f =>
        {
            if (!_core.IsFencing(f.Disk) || !ReferenceEquals(_devices.OwnedOf(f.Disk), f.Device)) return;
            Run(new SiteInput.FenceDone(f.Disk, f.Error, f.Error is null ? f.Device.DrainDirty() : []));
        });
    }

    /// <summary>A query of the disk's source: how many bytes its image holds (its holes take no room anywhere).</summary>
    private void OnGetAllocation(SiteProtocol.GetAllocation m)
    {
        if (_devices.OwnedOf(m.Disk) is not { } owned) { Sender.Tell(new SiteProtocol.Refused($"disk '{m.Disk}' is not served as owned on site {_settings.Name}")); return; }
        try { Sender.Tell(new SiteProtocol.Allocation(m.Disk, owned.Image.Size, owned.Image.AllocatedBytes())); }
        catch (IOException ex) { Sender.Tell(new SiteProtocol.Refused($"cannot read the allocation of disk '{m.Disk}' on site {_settings.Name}: {ex.Message}")); }
    }

    /// <summary>A query of a relocation's destination, answered from its data directory's file system now (statvfs).</summary>
    private void OnCheckRoom(SiteProtocol.CheckRoom m)
    {
        long free;
        try
        {
            Directory.CreateDirectory(_settings.DataDir);
            free = new DriveInfo(Path.GetFullPath(_settings.DataDir)).AvailableFreeSpace;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            Sender.Tell(new SiteProtocol.RoomChecked(m.Disk, 0, 0, $"site {_settings.Name} cannot tell the free space of {_settings.DataDir}: {ex.Message}", null));
            return;
        }
        var room = RoomCheck.Decide(_settings.Name, _settings.DataDir, m.Size, m.Allocated, free);
        Sender.Tell(new SiteProtocol.RoomChecked(m.Disk, free, room.Needed, room.Refusal, room.Warning));
    }

    /// <summary>A file to import is judged by where it really leads (resolved here: I/O), before the core sees it.</summary>
    private void OnCreate(SiteProtocol.CreateDisk m)
    {
        if (m.FromFile is not { } file || m.FromNbd) { Message(m); return; }
        var dir = _settings.ImportDir;
        var decision = ImportPaths.Decide(_settings.Name, dir, dir is null ? null : RealPaths.TryResolve(dir), file, RealPaths.TryResolve(file));
        if (decision.Refusal is { } why)
        {
            _log.Warning("disk create {0} from {1} refused: {2}", m.Name, file, why);
            Sender.Tell(new SiteProtocol.Forbidden(why));
            return;
        }
        Message(m with { FromFile = decision.Path });
    }

    private void Message(object body)
    {
        var disk = DiskOf(body);
        // The count now, before the step: a guest that connected a moment ago must count for an idle handover.
        if (disk is not null && _devices.GuestClientsOf(disk) is var n && n != _core.ClientsOf(disk)) Run(new SiteInput.ClientsChanged(disk, n));
        Run(new SiteInput.Message(body, Sender, DateTime.UtcNow, disk is null ? null : _devices.FactsOf(disk)));
    }

    private static string? DiskOf(object body) => body switch
    {
        RelocationProtocol.StartOutgoing m => m.Disk,
        RelocationProtocol.DropIncoming m => m.Disk,
        SiteProtocol.DeleteDisk m => m.Name, // refused while guests are connected: the count must be now's
        _ => null,
    };

    private void Run(SiteInput input)
    {
        var decisions = _core.Handle(input);
        var events = decisions.OfType<SiteDecision.Persist>().Select(p => p.Event).ToList();
        if (events.Count == 0)
        {
            foreach (var d in decisions) Execute(d);
            return;
        }
        // Nothing the input decided happens before its events are durable (Persist stashes other commands meanwhile).
        int left = events.Count;
        long started = Stopwatch.GetTimestamp();
        PersistAll(events, _ =>
        {
            if (--left > 0) return;
            _telemetry?.Relocation.JournalWritten("site", Stopwatch.GetElapsedTime(started));
            foreach (var d in decisions) if (d is not SiteDecision.Persist) Execute(d);
        });
    }

    private void Execute(SiteDecision decision)
    {
        switch (decision)
        {
            case SiteDecision.Reply r:
                ((IActorRef)r.To).Tell(r.Message, Self);
                break;
            case SiteDecision.SendToSite s:
                Context.ActorSelection(SiteNode.SitePath(Context.System, s.Site)).Tell(s.Message, Self);
                break;
            case SiteDecision.TellCoordinator t:
                Coordinator.Tell(t.Message, Self);
                break;
            case SiteDecision.CreateImage c:
                // Image work (a sparse create, or a copy of gigabytes) runs off the actor's thread.
                Task.Run(() => SiteDevices.CreateImage(c.Path, c.Size, c.FromFile)).PipeTo(Self,
                    success: size => new Input(new SiteInput.ImageCreated(c.Disk, size)),
                    failure: ex => new Input(new SiteInput.ImageFailed(c.Disk, ex.Message)));
                break;
            case SiteDecision.ProbeImport p:
                SiteDevices.ProbeAsync(p.Uri).PipeTo(Self,
                    success: size => new Input(new SiteInput.ImportProbed(p.Disk, size)),
                    failure: ex => new Input(new SiteInput.ImageFailed(p.Disk, ex.Message)));
                break;
            case SiteDecision.ServeOwned s:
                if (_devices.ServeOwned(s.Disk, s.Fenced) is { } ownedError) Run(new SiteInput.ServeFailed(s.Disk.Name, ownedError));
                break;
            case SiteDecision.ServeArrival s:
                if (_devices.ServeArrival(s.Disk, s.PersistenceId, s.Options) is { } arrivalError) Run(new SiteInput.ServeFailed(s.Disk.Name, arrivalError));
                break;
            case SiteDecision.ArrivalJoinsOwned j:
                _devices.ArrivalJoinsOwned(j.Disk);
                break;
            case SiteDecision.StopServing s:
                _devices.StopServing(s.Disk, s.ImagePath, deleteJournal: s.ArrivalJournal is not null);
                break;
            case SiteDecision.DeleteArrivalJournal d:
                _devices.ArrivalOf(d.Disk)?.Tell(new P.DeleteJournal(ThenStop: false));
                break;
            case SiteDecision.Track t:
                _devices.OwnedOf(t.Disk)?.StartTracking(t.BlockSize, t.Everything);
                break;
            case SiteDecision.Untrack u:
                _devices.OwnedOf(u.Disk)?.StopTracking();
                break;
            case SiteDecision.Fence f:
                if (_devices.OwnedOf(f.Disk) is not { } fenced) { Run(new SiteInput.FenceDone(f.Disk, "the disk is not served", [])); break; }
                FenceAndFlushAsync(fenced).PipeTo(Self, success: () => new FenceFlushed(f.Disk, fenced, null), failure: ex => new FenceFlushed(f.Disk, fenced, ex.Message));
                break;
            case SiteDecision.Unfence u:
                _devices.OwnedOf(u.Disk)?.Unfence();
                break;
            case SiteDecision.StartStream s:
                Timers.StartPeriodicTimer("stream-" + s.Disk, new StreamTick(s.Disk), StreamInterval);
                break;
            case SiteDecision.StopStream s:
                Timers.Cancel("stream-" + s.Disk);
                break;
            case SiteDecision.AskArrival a:
                if (_devices.ArrivalOf(a.Disk) is not { } arrival) { ((IActorRef)a.ReplyTo).Tell(new SiteProtocol.Refused($"disk '{a.Disk}' is not arriving at site {_settings.Name}")); break; }
                arrival.Ask<object>(a.Request, AskTimeout).PipeTo((IActorRef)a.ReplyTo,
                    success: r => r is P.Invalidated or P.OwnershipConfirmed ? a.Answer : new SiteProtocol.Refused($"{a.Request.GetType().Name} refused: {r}"));
                break;
            case SiteDecision.TellArrival t:
                _devices.ArrivalOf(t.Disk)?.Tell(t.Message);
                break;
            case SiteDecision.Log l:
                _log.Write(l.Level, l.Text);
                break;
            default:
                throw new InvalidOperationException($"unknown site decision {decision}");
        }
    }

    private static async Task FenceAndFlushAsync(OwnedDisk owned)
    {
        await owned.FenceAsync();
        await owned.FlushAsync(CancellationToken.None);
    }

    /// <summary>A query: the arriving disk's actor knows its progress; other disks are whole or not here.</summary>
    private void OnGetProgress(RelocationProtocol.GetProgress m)
    {
        if (_devices.ArrivalOf(m.Disk) is { } arrival)
        {
            arrival.Ask<P.Status>(new P.GetStatus(), TimeSpan.FromSeconds(10)).PipeTo(Sender,
                success: s => new RelocationProtocol.DiskProgress(s.Disk, s.State, s.LocalBytes, s.TotalBytes, s.FetchedBytes, s.SkippedBytes, s.WrittenBytes,
                    s.OnDemandFetches, s.RateBps, s.PrefetchWindow, s.PrefetchPaused));
            return;
        }
        if (_core.State.TryGet(m.Disk, out var disk)) // not arrived (yet), or arrived whole
            Sender.Tell(new RelocationProtocol.DiskProgress(disk.Name, disk.Phase.Name(), disk.Phase == DiskPhase.Incoming ? 0 : disk.Size, disk.Size, 0, 0, 0, 0, 0, 0, false));
        else Sender.Tell(new SiteProtocol.Refused($"no disk '{m.Disk}' on site {_settings.Name}"));
    }

    protected override void PostStop() => _devices.Dispose();
}
