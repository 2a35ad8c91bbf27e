using Akka.Actor;
using Reloc.Actors.Coordinator;
using Akka.Event;
using Akka.Persistence;
using Reloc.Nbd.Server;
using Reloc.Storage;
using static Reloc.Actors.Site.SiteProtocol;

namespace Reloc.Actors.Site;

/// <summary>
/// One per site node: the registry of disks this site hosts (persisted), their images, and their NBD
/// exports. Creating a disk writes its image first and persists it second, so a crash in between leaves
/// at worst an orphan file, never a registered disk without data.
/// </summary>
/// <remarks>
///   Recovering --(replayed: images opened, exports added)--> Serving
/// </remarks>
public sealed partial class SiteActor : ReceivePersistentActor, IWithTimers
{
    private sealed record Prepared(CreateDisk Request, IActorRef ReplyTo, string ImagePath);
    private sealed record PrepareFailed(CreateDisk Request, IActorRef ReplyTo, string Reason);

    private readonly SiteSettings _settings;
    private readonly ExportCatalog _exports;
    private readonly SiteState _state = new();
    private readonly Dictionary<string, OwnedDisk> _images = new(StringComparer.Ordinal);
    private readonly HashSet<string> _creating = new(StringComparer.Ordinal);
    private readonly ILoggingAdapter _log = Context.GetLogger();

    /// <param name="coordinator">The migration coordinator (this node's singleton proxy).</param>
    public SiteActor(SiteSettings settings, ExportCatalog exports, IActorRef coordinator)
    {
        _settings = settings;
        _exports = exports;
        Coordinator = coordinator;
        Recover<SiteEvents.DiskAdded>(e => _state.Apply(e));
        Recover<SiteEvents.DiskRemoved>(e => _state.Apply(e));
        Recover<SiteEvents.IncomingAdded>(e => _state.Apply(e));
        Recover<SiteEvents.DiskFenced>(e => _state.Apply(e));
        Recover<SiteEvents.OutgoingBegun>(e => _state.Apply(e));
        Recover<SiteEvents.OutgoingEnded>(e => _state.Apply(e));
        Recover<RecoveryCompleted>(_ =>
        {
            // Subscribed before the disks start: a disk actor that recovers complete announces it at once.
            Context.System.EventStream.Subscribe(Self, typeof(Disk.VirtualDiskProtocol.WriteHeldForHandover));
            Context.System.EventStream.Subscribe(Self, typeof(Disk.VirtualDiskProtocol.RelocationFinished));
            foreach (var disk in _state.Disks) Export(disk);
            Become(Serving);
        });
    }

    public override string PersistenceId => "site-" + _settings.Name;

    public static Props Props(SiteSettings settings, ExportCatalog exports, IActorRef coordinator) =>
        Akka.Actor.Props.Create(() => new SiteActor(settings, exports, coordinator));

    private void Serving()
    {
        Command<CreateDisk>(OnCreate);
        Command<Prepared>(p =>
        {
            Persist(new SiteEvents.DiskAdded(p.Request.Name, p.Request.Size, p.ImagePath, 1), e =>
            {
                _creating.Remove(e.Name);
                _state.Apply(e);
                var disk = new SiteDisk(e.Name, e.Size, e.ImagePath, e.Epoch);
                Export(disk);
                p.ReplyTo.Tell(Info(disk));
            });
        });
        Command<PrepareFailed>(f =>
        {
            _creating.Remove(f.Request.Name);
            f.ReplyTo.Tell(new Refused(f.Reason));
        });
        Command<DeleteDisk>(m =>
        {
            if (!_state.TryGet(m.Name, out var disk))
            {
                Sender.Tell(new Refused($"no disk named '{m.Name}' on site {_settings.Name}"));
                return;
            }
            if (disk.Phase != SiteDisk.Owned)
            {
                Sender.Tell(new Refused($"disk '{m.Name}' is {disk.Phase} on site {_settings.Name}: cancel or finish its relocation first"));
                return;
            }
            var replyTo = Sender;
            Remove(disk, () => replyTo.Tell(new Deleted(disk.Name)));
        });
        Command<ListDisks>(_ => Sender.Tell(new DiskList(_settings.Name, _state.Disks.OrderBy(d => d.Name).Select(Info).ToList())));
        RelocationCommands();
    }

    private void OnCreate(CreateDisk m)
    {
        var invalid = SiteState.ValidateName(m.Name);
        if (invalid is not null) { Sender.Tell(new Refused(invalid)); return; }
        if (_state.TryGet(m.Name, out _) || _creating.Contains(m.Name))
        {
            Sender.Tell(new Refused($"disk '{m.Name}' already exists on site {_settings.Name}"));
            return;
        }
        if (m.FromFile is null && m.Size <= 0) { Sender.Tell(new Refused($"disk size must be positive, not {m.Size}")); return; }
        _creating.Add(m.Name);
        var path = ImagePathOf(m.Name);
        var replyTo = Sender;
        if (m.FromNbd)
        {
            OnImport(m, replyTo, path);
            return;
        }
        // Image work (sparse create, or a copy of gigabytes) runs off the actor's thread.
        Task.Run(() =>
        {
            Directory.CreateDirectory(_settings.DataDir);
            if (File.Exists(path)) File.Delete(path); // an orphan from a create that crashed before it was persisted
            if (m.FromFile is null) RawImage.Create(path, m.Size).Dispose();
            else RawImage.ImportSparse(m.FromFile, path).Dispose();
            return path;
        }).PipeTo(Self,
            success: p => new Prepared(m.FromFile is null ? m : m with { Size = new FileInfo(p).Length }, replyTo, p),
            failure: ex => new PrepareFailed(m, replyTo, $"cannot create disk '{m.Name}': {ex.Message}"));
    }

    private void Export(SiteDisk disk)
    {
        try
        {
            if (disk.Phase == SiteDisk.Incoming)
            {
                StartIncoming(disk, hybrid: true, rate: 0, prefetch: true); // resumes from the disk actor's own journal
                return;
            }
            var owned = new OwnedDisk(RawImage.Open(disk.ImagePath, readOnly: false));
            if (disk.Phase == SiteDisk.Fenced) _ = owned.FenceAsync(); // nothing in flight yet: completes at once
            _images[disk.Name] = owned;
            var export = new NbdExport(disk.Name, owned, $"disk {disk.Name} on site {_settings.Name}");
            Watch(export, disk.Name);
            _exports.Add(export);
            if (disk.Phase == SiteDisk.Outgoing) BeginOutgoing(disk.Name, disk.Peer, disk.Epoch, DefaultBlockSize, disk.Relocation, everything: true);
            // Other sites fetch through a second name, so their connections never count as the disk's
            // guests (an idle-source handover must not wait for the destination's own fetchers).
            _exports.Add(new NbdExport(PeerExport(disk.Name), owned, $"disk {disk.Name} on site {_settings.Name}, for other sites"));
        }
        catch (Exception ex) when (ex is IOException or ArgumentException or UnauthorizedAccessException)
        {
            _log.Error(ex, "disk {0} is registered but its image {1} cannot be served", disk.Name, disk.ImagePath);
        }
    }

    private const int DefaultBlockSize = RelocationProtocol.TrackingBlockSize;

    private string ImagePathOf(string disk) => Path.Combine(_settings.DataDir, disk + ".img");

    private DiskInfo Info(SiteDisk d)
    {
        _incoming.TryGetValue(d.Name, out var incoming);
        long local = d.Phase == SiteDisk.Incoming ? incoming?.State.Map.LocalBytes ?? 0 : d.Size;
        bool writable = d.IsOwnedHere || (d.Phase == SiteDisk.Incoming && incoming is not null && incoming.State.IsOwner);
        return new DiskInfo(d.Name, d.Size, _settings.Name, d.Epoch, d.Phase, _settings.UriOf(d.Name), d.Peer, local,
            GuestClientsOf(d.Name), writable, _handoverWanted.Contains(d.Name), d.Relocation);
    }

    /// <summary>The export name other sites fetch a disk through (not a valid disk name, so it never clashes).</summary>
    public static string PeerExport(string disk) => disk + "@peer";

    /// <summary>Forgets a disk durably, then stops serving it and deletes its image.</summary>
    private void Remove(SiteDisk disk, Action then) =>
        Persist(new SiteEvents.DiskRemoved(disk.Name), e =>
        {
            _state.Apply(e);
            RemoveExports(e.Name);
            if (_images.Remove(e.Name, out var owned)) owned.Image.Dispose();
            if (_incoming.Remove(e.Name, out var incoming))
            {
                Context.Stop(incoming.Disk);
                incoming.Image.Dispose(); // a fetch still landing fails on the closed handle, nothing else
            }
            _handoverWanted.Remove(e.Name);
            File.Delete(disk.ImagePath);
            then();
        });

    private void RemoveExports(string disk)
    {
        _exports.Remove(disk);
        _exports.Remove(PeerExport(disk));
    }

    protected override void PostStop()
    {
        foreach (var (name, owned) in _images)
        {
            RemoveExports(name);
            owned.Image.Dispose();
        }
        foreach (var (name, incoming) in _incoming)
        {
            _exports.Remove(name);
            incoming.Image.Dispose(); // the disk actor (a child) is stopped with us
        }
    }
}
