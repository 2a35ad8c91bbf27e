using Akka.Actor;
using Akka.Event;
using Reloc.Actors.Coordinator;
using Reloc.Actors.Disk;
using Reloc.Actors.Source;
using Reloc.Nbd.Client;
using Reloc.Nbd.Server;
using Reloc.Storage;
using static Reloc.Actors.Coordinator.RelocationProtocol;

namespace Reloc.Actors.Site;

/// <summary>
/// The site's part in relocations. As a source: track the guest's writes, stream them as invalidations
/// to the destination, and at handover fence, flush and hand over the final dirty set (including every
/// invalidation not yet acknowledged, so none can be lost in flight). As a destination: serve the disk at
/// once through a relocating disk actor, take ownership at the new epoch, and report completion.
/// </summary>
public sealed partial class SiteActor
{
    private sealed record Incoming(IActorRef Disk, RawImage Image, long Epoch);
    private sealed class Outgoing(string disk, ActorSelection destination, long epoch)
    {
        public Action<int>? OnClients { get; set; }
        public string Disk { get; } = disk;
        public ActorSelection Destination { get; } = destination;
        public long Epoch { get; } = epoch;
        public long Seq { get; set; }
        public SortedDictionary<long, IReadOnlyList<(long, long)>> Unacked { get; } = new();
    }
    private sealed record FenceDone(Fence Request, IActorRef ReplyTo, string? Error);
    private sealed record StreamTick(string Disk);
    private sealed record SourceIdle(string Disk);

    private readonly Dictionary<string, Incoming> _incoming = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Outgoing> _outgoing = new(StringComparer.Ordinal);
    private ActorSelection Coordinator => Context.ActorSelection("/user/coordinator");
    public ITimerScheduler Timers { get; set; } = null!;

    private void RelocationCommands()
    {
        Command<PrepareIncoming>(OnPrepareIncoming);
        Command<InvalidateAt>(m =>
        {
            if (!_incoming.TryGetValue(m.Disk, out var d)) { Sender.Tell(new SiteProtocol.Refused($"no incoming disk '{m.Disk}'")); return; }
            var replyTo = Sender;
            d.Disk.Ask<object>(new VirtualDiskProtocol.Invalidate(m.Epoch, m.Blocks), TimeSpan.FromSeconds(30))
                .PipeTo(replyTo, success: r => r is VirtualDiskProtocol.Invalidated ? new InvalidatedAt(m.Disk, m.Epoch, m.Seq) : new SiteProtocol.Refused($"invalidation refused: {r}"));
        });
        Command<TakeOwnershipAt>(m =>
        {
            if (!_incoming.TryGetValue(m.Disk, out var d)) { Sender.Tell(new SiteProtocol.Refused($"no incoming disk '{m.Disk}'")); return; }
            var replyTo = Sender;
            d.Disk.Ask<object>(new VirtualDiskProtocol.TakeOwnership(m.NewEpoch, m.FinalDirty), TimeSpan.FromSeconds(30))
                .PipeTo(replyTo, success: r => r is VirtualDiskProtocol.OwnershipConfirmed ? new OwnershipMoved(m.Disk, m.NewEpoch) : new SiteProtocol.Refused($"ownership refused: {r}"));
            d.Disk.Tell(new VirtualDiskProtocol.ResumePrefetch());
        });
        Command<VirtualDiskProtocol.WriteHeldForHandover>(m =>
        {
            if (_incoming.ContainsKey(m.Disk)) Coordinator.Tell(new HandoverRequested(m.Disk));
        });
        Command<VirtualDiskProtocol.RelocationFinished>(m =>
        {
            if (!_incoming.TryGetValue(m.Disk, out var d) || !_state.TryGet(m.Disk, out var disk)) return;
            // Owned from now on; it keeps being served by its (complete) relocating disk until a restart.
            Persist(new SiteEvents.DiskAdded(disk.Name, disk.Size, disk.ImagePath, disk.Epoch + 1), e =>
            {
                _state.Apply(e);
                Coordinator.Tell(new RelocationDone(e.Name, e.Epoch));
            });
        });

        Command<StartOutgoing>(m =>
        {
            if (!_images.TryGetValue(m.Disk, out var owned) || !_state.TryGet(m.Disk, out var disk) || disk.Phase != SiteDisk.Owned)
            { Sender.Tell(new SiteProtocol.Refused($"disk '{m.Disk}' is not owned by site {_settings.Name}")); return; }
            if (m.Epoch != disk.Epoch) { Sender.Tell(new SiteProtocol.Refused($"disk '{m.Disk}' is at epoch {disk.Epoch}, not {m.Epoch}")); return; }
            owned.StartTracking(m.BlockSize);
            _outgoing[m.Disk] = new Outgoing(m.Disk, Context.ActorSelection(m.DestinationPath), m.Epoch);
            Timers.StartPeriodicTimer("stream-" + m.Disk, new StreamTick(m.Disk), TimeSpan.FromMilliseconds(200));
            var export = _exports.All.FirstOrDefault(e => e.Name == m.Disk);
            if (export is not null)
            {
                // The source's last client leaving (the VM stopped or moved) is a handover trigger too.
                var self = Self;
                var outgoing = _outgoing[m.Disk];
                outgoing.OnClients = n => { if (n == 0) self.Tell(new SourceIdle(m.Disk)); };
                export.Clients.Changed += outgoing.OnClients;
            }
            Sender.Tell(new OutgoingStarted(m.Disk, m.Epoch, export?.Clients.Count ?? 0));
        });
        Command<StreamTick>(t =>
        {
            if (!_outgoing.TryGetValue(t.Disk, out var o) || !_images.TryGetValue(t.Disk, out var owned)) return;
            var runs = owned.DrainDirty();
            if (runs.Count == 0) return;
            o.Seq++;
            o.Unacked[o.Seq] = runs;
            o.Destination.Tell(new InvalidateAt(o.Disk, o.Epoch, o.Seq, runs));
        });
        Command<SourceIdle>(m =>
        {
            if (_outgoing.ContainsKey(m.Disk)) Coordinator.Tell(new HandoverRequested(m.Disk));
        });
        Command<InvalidatedAt>(m =>
        {
            if (_outgoing.TryGetValue(m.Disk, out var o)) o.Unacked.Remove(m.Seq);
        });
        Command<Fence>(m =>
        {
            if (!_images.TryGetValue(m.Disk, out var owned) || !_state.TryGet(m.Disk, out var disk))
            { Sender.Tell(new SiteProtocol.Refused($"no disk '{m.Disk}' here")); return; }
            if (m.NewEpoch <= disk.Epoch && disk.Phase == SiteDisk.Owned)
            { Sender.Tell(new SiteProtocol.Refused($"stale epoch {m.NewEpoch} for '{m.Disk}' (at {disk.Epoch})")); return; }
            var replyTo = Sender;
            FenceAndFlushAsync(owned).PipeTo(Self, success: () => new FenceDone(m, replyTo, null), failure: ex => new FenceDone(m, replyTo, ex.Message));
        });
        Command<FenceDone>(done =>
        {
            var m = done.Request;
            if (done.Error is not null) { done.ReplyTo.Tell(new SiteProtocol.Refused($"fencing {m.Disk} failed: {done.Error}")); return; }
            var owned = _images[m.Disk];
            var final = owned.DrainDirty();
            if (_outgoing.Remove(m.Disk, out var o))
            {
                foreach (var runs in o.Unacked.Values) final.AddRange(runs);
                var export = _exports.All.FirstOrDefault(e => e.Name == m.Disk);
                if (export is not null && o.OnClients is not null) export.Clients.Changed -= o.OnClients;
            }
            Timers.Cancel("stream-" + m.Disk);
            owned.StopTracking();
            Persist(new SiteEvents.DiskFenced(m.Disk, m.NewEpoch), e =>
            {
                _state.Apply(e);
                done.ReplyTo.Tell(new Fenced(m.Disk, m.NewEpoch, final));
            });
        });
        Command<Release>(m =>
        {
            if (!_state.TryGet(m.Disk, out var disk) || disk.Phase != SiteDisk.Fenced || disk.Epoch != m.Epoch)
            { Sender.Tell(new Released(m.Disk, m.Epoch)); return; } // already released (a retry)
            var replyTo = Sender;
            Remove(disk, () => replyTo.Tell(new Released(m.Disk, m.Epoch)));
        });
    }

    private static async Task FenceAndFlushAsync(OwnedDisk owned)
    {
        await owned.FenceAsync();
        await owned.FlushAsync(CancellationToken.None);
    }

    private void OnPrepareIncoming(PrepareIncoming m)
    {
        var invalid = SiteState.ValidateName(m.Disk);
        if (invalid is not null) { Sender.Tell(new SiteProtocol.Refused(invalid)); return; }
        if (_state.TryGet(m.Disk, out var existing))
        {
            if (existing.Phase == SiteDisk.Incoming) Sender.Tell(new IncomingPrepared(m.Disk, m.Epoch)); // a retry
            else Sender.Tell(new SiteProtocol.Refused($"disk '{m.Disk}' already exists on site {_settings.Name}"));
            return;
        }
        var path = Path.Combine(_settings.DataDir, m.Disk + ".img");
        if (File.Exists(path)) File.Delete(path);
        Directory.CreateDirectory(_settings.DataDir);
        RawImage.Create(path, m.Size).Dispose();
        var replyTo = Sender;
        Persist(new SiteEvents.IncomingAdded(m.Disk, m.Size, path, m.SourceUri, m.Epoch), e =>
        {
            _state.Apply(e);
            _state.TryGet(e.Name, out var disk);
            StartIncoming(disk, m.Hybrid, m.RateBytesPerSecond);
            replyTo.Tell(new IncomingPrepared(e.Name, e.Epoch));
        });
    }

    private void StartIncoming(SiteDisk disk, bool hybrid, long rate)
    {
        var image = RawImage.Open(disk.ImagePath, readOnly: false);
        var settings = RelocConfig.DiskSettings(Context.System.Settings.Config) with { RateBytesPerSecond = rate };
        var state = new DiskState(disk.Size, settings.BlockSize, owner: false);
        var source = NbdBlockSource.Factory(NbdClientOptions.FromUri(disk.SourceUri!), disk.Size);
        var actor = Context.ActorOf(VirtualDiskActor.Props(new DiskId(disk.Name), state, image, settings, source,
            $"disk-{disk.Name}-{_settings.Name}-e{disk.Epoch}"), "disk-" + disk.Name);
        // Post-copy: no background copy before the handover (the source still changes); hybrid pre-copies.
        if (!hybrid) actor.Tell(new VirtualDiskProtocol.PausePrefetch());
        _incoming[disk.Name] = new Incoming(actor, image, disk.Epoch);
        _exports.Add(new NbdExport(disk.Name, new RelocatingDisk(image, state, actor, settings), $"disk {disk.Name} arriving at site {_settings.Name}"));
    }
}
