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
/// The site's part in relocations. As a source: track the guest's writes (from before the destination
/// copies anything), stream them as invalidations to the destination, and at handover fence, flush and
/// hand over the final dirty set (including every invalidation not yet acknowledged, so none can be lost
/// in flight), kept durably until release. As a destination: serve the disk at once through a relocating
/// disk actor (reads pass through to the source until this site owns the disk), take ownership at the new
/// epoch, and report completion. Every step is idempotent: a coordinator may send it again.
/// </summary>
public sealed partial class SiteActor
{
    /// <param name="Owned">The export's device: the relocating disk behind the owned-disk layer (tracking,
    /// fence), which takes over as the site's owned disk once the arrival completes.</param>
    private sealed record Incoming(IActorRef Disk, RawImage Image, long Epoch, DiskState State, OwnedDisk Owned);
    private sealed class Outgoing(string disk, string toSite, long epoch, string relocation)
    {
        public string Relocation { get; } = relocation;
        public string Disk { get; } = disk;
        public string ToSite { get; } = toSite;
        public long Epoch { get; } = epoch;
        public long Seq { get; set; }
        public SortedDictionary<long, (IReadOnlyList<(long, long)> Runs, DateTime Sent)> Unacked { get; } = new();
    }
    private sealed record FenceDone(Fence Request, IActorRef ReplyTo, string? Error);
    private sealed record StreamTick(string Disk);
    private sealed record ClientsChanged(string Disk, int Count);
    private sealed record ImportProbed(SiteProtocol.CreateDisk Request, IActorRef ReplyTo, long Size, string ImagePath);

    /// <summary>Most runs in one invalidation or final dirty set: 16 bytes each, so a message stays far below
    /// Akka.Remote's frame size (128 000 bytes by default; a larger message would be dropped).</summary>
    private const int MaxRuns = 4096;
    private const int MaxUnacked = 64;

    /// <summary>Sorted, merged runs; past <see cref="MaxRuns"/> the runs closest together are joined (more
    /// blocks invalidated than written is safe: they are copied again; fewer would not be).</summary>
    internal static List<(long First, long Count)> Coarsen(IEnumerable<(long First, long Count)> runs)
    {
        var merged = new BlockRuns(runs.OrderBy(r => r.First)).Runs.ToList();
        while (merged.Count > MaxRuns)
        {
            // Join neighbours whose gap is below the median gap: at least halves the count per pass.
            var gaps = merged.Zip(merged.Skip(1), (a, b) => b.First - (a.First + a.Count)).Order().ToList();
            long limit = gaps[gaps.Count / 2];
            var joined = new List<(long First, long Count)> { merged[0] };
            foreach (var run in merged.Skip(1))
            {
                var last = joined[^1];
                if (run.First - (last.First + last.Count) <= limit) joined[^1] = (last.First, run.First + run.Count - last.First);
                else joined.Add(run);
            }
            merged = joined;
        }
        return merged;
    }

    /// <summary>Sources track (and report) in <see cref="RelocationProtocol.TrackingBlockSize"/> units; this
    /// site's block map may use another size: every local block a reported range touches.</summary>
    private static IReadOnlyList<(long First, long Count)> ToLocalBlocks(IReadOnlyList<(long First, long Count)> runs, DiskState state)
    {
        const long unit = RelocationProtocol.TrackingBlockSize;
        int shift = state.Map.BlockShift;
        if (1L << shift == unit) return runs;
        return runs.Select(r =>
        {
            long first = r.First * unit >> shift;
            long end = ((r.First + r.Count) * unit + (1L << shift) - 1) >> shift;
            return (first, end - first);
        }).ToList();
    }

    /// <summary>An unacknowledged invalidation is sent again after this (the destination may have restarted).</summary>
    private static readonly TimeSpan Resend = TimeSpan.FromSeconds(1);
    private readonly Dictionary<string, Incoming> _incoming = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Outgoing> _outgoing = new(StringComparer.Ordinal);
    private readonly HashSet<string> _handoverWanted = new(StringComparer.Ordinal);
    private readonly HashSet<string> _fencing = new(StringComparer.Ordinal); // fence admitted, flush under way

    /// <summary>The disk arrives here by exactly this relocation (a step of another attempt is refused).</summary>
    private bool IsArriving(string disk, string relocation, out Incoming incoming)
    {
        incoming = null!;
        return _state.TryGet(disk, out var d) && d.Phase == SiteDisk.Incoming && d.Relocation == relocation
               && relocation.Length > 0 && _incoming.TryGetValue(disk, out incoming!);
    }
    private IActorRef Coordinator { get; }
    public ITimerScheduler Timers { get; set; } = null!;

    private void RelocationCommands()
    {
        // ---- destination ----
        Command<PrepareIncoming>(OnPrepareIncoming);
        Command<ImportProbed>(OnImportProbed);
        Command<DropIncoming>(OnDropIncoming);
        Command<InvalidateAt>(m =>
        {
            if (!IsArriving(m.Disk, m.Relocation, out var d)) { Sender.Tell(new SiteProtocol.Refused($"no disk '{m.Disk}' arriving at site {_settings.Name} by relocation {m.Relocation}")); return; }
            var replyTo = Sender;
            d.Disk.Ask<object>(new VirtualDiskProtocol.Invalidate(m.Epoch, ToLocalBlocks(m.Blocks, d.State)), TimeSpan.FromSeconds(30))
                .PipeTo(replyTo, success: r => r is VirtualDiskProtocol.Invalidated ? new InvalidatedAt(m.Disk, m.Epoch, m.Seq, m.Relocation) : new SiteProtocol.Refused($"invalidation refused: {r}"));
        });
        Command<TakeOwnershipAt>(m =>
        {
            if (!IsArriving(m.Disk, m.Relocation, out var d)) { Sender.Tell(new SiteProtocol.Refused($"no disk '{m.Disk}' arriving at site {_settings.Name} by relocation {m.Relocation}")); return; }
            if (m.NewEpoch != d.Epoch + 1) { Sender.Tell(new SiteProtocol.Refused($"disk '{m.Disk}' arrives at epoch {d.Epoch}: ownership at {m.NewEpoch} refused")); return; }
            var replyTo = Sender;
            d.Disk.Ask<object>(new VirtualDiskProtocol.TakeOwnership(m.NewEpoch, ToLocalBlocks(m.FinalDirty, d.State)), TimeSpan.FromSeconds(30))
                .PipeTo(replyTo, success: r => r is VirtualDiskProtocol.OwnershipConfirmed ? new OwnershipMoved(m.Disk, m.NewEpoch, m.Relocation) : new SiteProtocol.Refused($"ownership refused: {r}"));
            d.Disk.Tell(new VirtualDiskProtocol.ResumePrefetch());
            _handoverWanted.Remove(m.Disk);
        });
        Command<VirtualDiskProtocol.WriteHeldForHandover>(m =>
        {
            if (!_incoming.ContainsKey(m.Disk) || !_state.TryGet(m.Disk, out var disk) || disk.Phase != SiteDisk.Incoming) return;
            _handoverWanted.Add(m.Disk);
            Coordinator.Tell(new HandoverRequested(m.Disk, disk.Relocation));
        });
        Command<VirtualDiskProtocol.RelocationFinished>(m =>
        {
            if (!_incoming.ContainsKey(m.Disk) || !_state.TryGet(m.Disk, out var disk) || disk.Phase != SiteDisk.Incoming) return;
            bool import = disk.Peer.Length == 0;
            // Owned from now on; it keeps being served by its (complete) relocating disk until a restart.
            Persist(new SiteEvents.DiskAdded(disk.Name, disk.Size, disk.ImagePath, import ? disk.Epoch : disk.Epoch + 1), e =>
            {
                _state.Apply(e);
                // Owned here now, and movable on: the same device (guests stay connected) joins the owned
                // disks, and other sites can fetch it through its peer export.
                var owned = _incoming[e.Name].Owned;
                _images[e.Name] = owned;
                _exports.Add(new NbdExport(PeerExport(e.Name), owned, $"disk {e.Name} on site {_settings.Name}, for other sites"));
                if (!import) Coordinator.Tell(new RelocationDone(e.Name, e.Epoch, disk.Relocation));
                else _log.Info("disk {0} imported from {1}", e.Name, disk.SourceUri);
            });
        });
        Command<GetProgress>(m =>
        {
            if (_incoming.TryGetValue(m.Disk, out var d))
            {
                d.Disk.Ask<VirtualDiskProtocol.Status>(new VirtualDiskProtocol.GetStatus(), TimeSpan.FromSeconds(10)).PipeTo(Sender,
                    success: s => new DiskProgress(s.Disk, s.State, s.LocalBytes, s.TotalBytes, s.FetchedBytes, s.SkippedBytes, s.WrittenBytes,
                        s.OnDemandFetches, s.RateBps, s.PrefetchWindow, s.PrefetchPaused));
                return;
            }
            if (_state.TryGet(m.Disk, out var disk)) // not arrived (yet), or arrived whole
                Sender.Tell(new DiskProgress(disk.Name, disk.Phase, disk.Phase == SiteDisk.Incoming ? 0 : disk.Size, disk.Size, 0, 0, 0, 0, 0, 0, false));
            else Sender.Tell(new SiteProtocol.Refused($"no disk '{m.Disk}' on site {_settings.Name}"));
        });
        Command<SetRate>(m =>
        {
            if (_incoming.TryGetValue(m.Disk, out var d)) d.Disk.Tell(new VirtualDiskProtocol.SetRate(m.RateBytesPerSecond));
        });

        // ---- source ----
        Command<StartOutgoing>(OnStartOutgoing);
        Command<StreamTick>(t =>
        {
            if (!_outgoing.TryGetValue(t.Disk, out var o) || !_images.TryGetValue(t.Disk, out var owned)) return;
            var destination = Context.ActorSelection(SiteNode.SitePath(Context.System, o.ToSite));
            var now = DateTime.UtcNow;
            foreach (var (seq, (runs, sent)) in o.Unacked.Where(u => now - u.Value.Sent >= Resend).ToList())
            {
                o.Unacked[seq] = (runs, now);
                destination.Tell(new InvalidateAt(o.Disk, o.Epoch, seq, runs, o.Relocation));
            }
            var fresh = owned.DrainDirty();
            if (fresh.Count == 0) return;
            if (o.Unacked.Count >= MaxUnacked)
            {
                // The destination is not answering: fold everything pending into one message (bounded memory, and
                // one resend a second instead of thousands).
                fresh = Coarsen(o.Unacked.Values.SelectMany(u => u.Runs).Concat(fresh));
                o.Unacked.Clear();
            }
            else fresh = Coarsen(fresh);
            o.Seq++;
            o.Unacked[o.Seq] = (fresh, now);
            destination.Tell(new InvalidateAt(o.Disk, o.Epoch, o.Seq, fresh, o.Relocation));
        });
        Command<InvalidatedAt>(m =>
        {
            if (_outgoing.TryGetValue(m.Disk, out var o) && o.Relocation == m.Relocation) o.Unacked.Remove(m.Seq);
        });
        Command<ClientsChanged>(m =>
        {
            if (_outgoing.ContainsKey(m.Disk) || _incoming.ContainsKey(m.Disk))
                // The count now, read here: events from the data path may arrive out of order.
                Coordinator.Tell(new GuestClients(m.Disk, _settings.Name, GuestClientsOf(m.Disk)));
        });
        Command<StopOutgoing>(m =>
        {
            if (!_state.TryGet(m.Disk, out var disk)) { Sender.Tell(new OutgoingStopped(m.Disk, m.Epoch, m.Relocation)); return; } // nothing here to stop
            // Not outgoing for this relocation (stopped already, never started, or another one): nothing to stop.
            if (disk.Phase == SiteDisk.Owned || (disk.Phase == SiteDisk.Outgoing && disk.Relocation != m.Relocation))
            { Sender.Tell(new OutgoingStopped(m.Disk, m.Epoch, m.Relocation)); return; }
            if (disk.Phase != SiteDisk.Outgoing || _fencing.Contains(m.Disk))
            { Sender.Tell(new SiteProtocol.Refused($"disk '{m.Disk}' is {(_fencing.Contains(m.Disk) ? "being fenced" : disk.Phase)} on site {_settings.Name}: past the handover a relocation cannot be cancelled")); return; }
            var replyTo = Sender;
            Persist(new SiteEvents.OutgoingEnded(m.Disk), e =>
            {
                _state.Apply(e);
                EndOutgoing(m.Disk);
                replyTo.Tell(new OutgoingStopped(m.Disk, m.Epoch, m.Relocation));
            });
        });
        Command<Fence>(m =>
        {
            if (!_images.TryGetValue(m.Disk, out var owned) || !_state.TryGet(m.Disk, out var disk))
            { Sender.Tell(new SiteProtocol.Refused($"no disk '{m.Disk}' on site {_settings.Name}")); return; }
            if (disk.Phase == SiteDisk.Fenced && disk.Epoch == m.NewEpoch && disk.Relocation == m.Relocation)
            { Sender.Tell(new Fenced(m.Disk, m.NewEpoch, disk.FinalDirty ?? [], m.Relocation)); return; } // a retry: the same answer
            if (disk.Phase != SiteDisk.Outgoing || disk.Epoch + 1 != m.NewEpoch || disk.Relocation != m.Relocation)
            { Sender.Tell(new SiteProtocol.Refused($"cannot fence '{m.Disk}' at epoch {m.NewEpoch} for relocation {m.Relocation}: it is {disk.Phase} at epoch {disk.Epoch} on site {_settings.Name}")); return; }
            if (!_fencing.Add(m.Disk)) return; // a fence is already under way: its answer will come
            var replyTo = Sender;
            FenceAndFlushAsync(owned).PipeTo(Self, success: () => new FenceDone(m, replyTo, null), failure: ex => new FenceDone(m, replyTo, ex.Message));
        });
        Command<FenceDone>(done =>
        {
            var m = done.Request;
            // Only the fence this incarnation started, on the device it fenced (after a restart the disk has a
            // new, unfenced device: recording it as fenced would leave two writers).
            if (!_fencing.Remove(m.Disk)) return;
            if (!_images.TryGetValue(m.Disk, out var owned) || !owned.IsFenced || !_state.TryGet(m.Disk, out var disk) || disk.Phase != SiteDisk.Outgoing) return;
            if (done.Error is not null)
            {
                owned.Unfence(); // still the owner: the guest may go on writing here
                done.ReplyTo.Tell(new SiteProtocol.Refused($"fencing {m.Disk} failed: {done.Error}"));
                return;
            }
            var drained = owned.DrainDirty();
            if (_outgoing.TryGetValue(m.Disk, out var o)) foreach (var (runs, _) in o.Unacked.Values) drained.AddRange(runs);
            var final = Coarsen(drained);
            Persist(new SiteEvents.DiskFenced(m.Disk, m.NewEpoch, disk.Peer, final, m.Relocation), e =>
            {
                _state.Apply(e);
                EndOutgoing(m.Disk);
                done.ReplyTo.Tell(new Fenced(m.Disk, m.NewEpoch, final, m.Relocation));
            });
        });
        Command<Release>(m =>
        {
            if (!_state.TryGet(m.Disk, out var disk) || disk.Phase != SiteDisk.Fenced || disk.Epoch != m.Epoch || disk.Relocation != m.Relocation)
            { Sender.Tell(new Released(m.Disk, m.Epoch, m.Relocation)); return; } // already released (a retry)
            var replyTo = Sender;
            Remove(disk, () => replyTo.Tell(new Released(m.Disk, m.Epoch, m.Relocation)));
        });
    }

    private static async Task FenceAndFlushAsync(OwnedDisk owned)
    {
        await owned.FenceAsync();
        await owned.FlushAsync(CancellationToken.None);
    }

    private void OnStartOutgoing(StartOutgoing m)
    {
        if (!_state.TryGet(m.Disk, out var disk) || !_images.ContainsKey(m.Disk))
        { Sender.Tell(new SiteProtocol.Refused($"no disk '{m.Disk}' on site {_settings.Name}")); return; }
        if (disk.Phase == SiteDisk.Outgoing && disk.Relocation == m.Relocation)
        { Sender.Tell(new OutgoingStarted(m.Disk, m.Epoch, GuestClientsOf(m.Disk), m.Relocation)); return; } // a retry
        if (disk.Phase != SiteDisk.Owned) { Sender.Tell(new SiteProtocol.Refused($"disk '{m.Disk}' is {disk.Phase} on site {_settings.Name}, not owned")); return; }
        if (m.Epoch != disk.Epoch) { Sender.Tell(new SiteProtocol.Refused($"disk '{m.Disk}' is at epoch {disk.Epoch}, not {m.Epoch}")); return; }
        if (m.ToSite == _settings.Name) { Sender.Tell(new SiteProtocol.Refused($"disk '{m.Disk}' is already at {m.ToSite}")); return; }
        var replyTo = Sender;
        Persist(new SiteEvents.OutgoingBegun(m.Disk, m.Epoch, m.ToSite, m.Relocation), e =>
        {
            _state.Apply(e);
            BeginOutgoing(e.Name, e.ToSite, e.Epoch, m.BlockSize, e.Relocation, everything: false);
            replyTo.Tell(new OutgoingStarted(m.Disk, m.Epoch, GuestClientsOf(m.Disk), m.Relocation));
        });
    }

    /// <param name="everything">After a restart: which blocks were written but not yet reported is lost
    /// with the process, so every block counts as written (the destination copies them again).</param>
    private void BeginOutgoing(string name, string toSite, long epoch, int blockSize, string relocation, bool everything)
    {
        var owned = _images[name];
        owned.StartTracking(blockSize);
        if (everything) owned.MarkAllDirty();
        _outgoing[name] = new Outgoing(name, toSite, epoch, relocation);
        Timers.StartPeriodicTimer("stream-" + name, new StreamTick(name), TimeSpan.FromMilliseconds(200));
    }

    private void EndOutgoing(string name)
    {
        _outgoing.Remove(name);
        Timers.Cancel("stream-" + name);
        if (_images.TryGetValue(name, out var owned)) owned.StopTracking();
    }

    private int GuestClientsOf(string disk) => _exports.All.FirstOrDefault(e => e.Name == disk)?.Clients.Count ?? 0;

    private void OnPrepareIncoming(PrepareIncoming m)
    {
        var invalid = SiteState.ValidateName(m.Disk);
        if (invalid is not null) { Sender.Tell(new SiteProtocol.Refused(invalid)); return; }
        if (_state.TryGet(m.Disk, out var existing))
        {
            if (existing.Phase == SiteDisk.Incoming && existing.Relocation == m.Relocation)
            {
                Sender.Tell(new IncomingPrepared(m.Disk, m.Epoch, m.Relocation)); // a retry
                if (_handoverWanted.Contains(m.Disk)) Coordinator.Tell(new HandoverRequested(m.Disk, m.Relocation));
            }
            else Sender.Tell(new SiteProtocol.Refused($"disk '{m.Disk}' already exists on site {_settings.Name}"));
            return;
        }
        if (m.Relocation.Length == 0) { Sender.Tell(new SiteProtocol.Refused("a relocation needs an id")); return; }
        if (_creating.Contains(m.Disk)) { Sender.Tell(new SiteProtocol.Refused($"disk '{m.Disk}' is being created on site {_settings.Name}")); return; }
        var path = ImagePathOf(m.Disk);
        try
        {
            if (File.Exists(path)) File.Delete(path);
            Directory.CreateDirectory(_settings.DataDir);
            RawImage.Create(path, m.Size).Dispose();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // A full or read-only disk refuses this relocation; it must not restart the site (and its other disks).
            _log.Error(ex, "cannot create the image of arriving disk {0} at {1}", m.Disk, path);
            Sender.Tell(new SiteProtocol.Refused($"site {_settings.Name} cannot create disk '{m.Disk}': {ex.Message}"));
            return;
        }
        var replyTo = Sender;
        Persist(new SiteEvents.IncomingAdded(m.Disk, m.Size, path, m.SourceUri, m.Epoch, m.FromSite, Guid.NewGuid().ToString("N"), m.Relocation), e =>
        {
            _state.Apply(e);
            _state.TryGet(e.Name, out var disk);
            StartIncoming(disk, m.Hybrid, m.RateBytesPerSecond, m.Prefetch);
            replyTo.Tell(new IncomingPrepared(e.Name, e.Epoch, e.Relocation));
        });
    }

    /// <summary>Import from a foreign NBD server: the disk is this site's (writable) at once, and the
    /// relocation engine copies it in while it is served.</summary>
    private void OnImport(SiteProtocol.CreateDisk m, IActorRef replyTo, string path)
    {
        NbdClientOptions options;
        try { options = NbdClientOptions.FromUri(m.FromFile!); }
        catch (Exception ex) when (ex is FormatException or ArgumentException)
        {
            _creating.Remove(m.Name);
            replyTo.Tell(new SiteProtocol.Refused($"cannot import disk '{m.Name}': {ex.Message}"));
            return;
        }
        ProbeAsync(options).PipeTo(Self,
            success: size => new ImportProbed(m, replyTo, size, path),
            failure: ex => new PrepareFailed(m, replyTo, $"cannot import disk '{m.Name}' from {m.FromFile}: {ex.Message}"));

        static async Task<long> ProbeAsync(NbdClientOptions options)
        {
            await using var client = await NbdClient.ConnectAsync(options);
            return client.Size;
        }
    }

    private void OnImportProbed(ImportProbed p)
    {
        _creating.Remove(p.Request.Name);
        try
        {
            Directory.CreateDirectory(_settings.DataDir);
            if (File.Exists(p.ImagePath)) File.Delete(p.ImagePath);
            RawImage.Create(p.ImagePath, p.Size).Dispose();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            p.ReplyTo.Tell(new SiteProtocol.Refused($"cannot create disk '{p.Request.Name}': {ex.Message}"));
            return;
        }
        var id = Guid.NewGuid().ToString("N");
        Persist(new SiteEvents.IncomingAdded(p.Request.Name, p.Size, p.ImagePath, p.Request.FromFile!, 1, "", id, id), e =>
        {
            _state.Apply(e);
            _state.TryGet(e.Name, out var disk);
            StartIncoming(disk, hybrid: true, rate: 0, prefetch: true);
            p.ReplyTo.Tell(Info(disk));
        });
    }

    private void OnDropIncoming(DropIncoming m)
    {
        // Not (or no longer) arriving by this relocation: nothing of it to drop.
        if (!_state.TryGet(m.Disk, out var disk) || disk.Phase != SiteDisk.Incoming || disk.Relocation != m.Relocation)
        { Sender.Tell(new IncomingDropped(m.Disk, m.Epoch, m.Relocation)); return; }
        // Ownership lives in the disk's own journal: until it is replayed, "not owned" is not known.
        if (!_incoming.TryGetValue(m.Disk, out var d) || !d.State.Recovered || d.State.IsOwner)
        { Sender.Tell(new SiteProtocol.Refused($"disk '{m.Disk}' on site {_settings.Name} {(d?.State.IsOwner == true ? "is owned here" : "is still recovering")}: not dropped")); return; }
        var replyTo = Sender;
        Remove(disk, () => replyTo.Tell(new IncomingDropped(m.Disk, m.Epoch, m.Relocation)));
    }

    private void StartIncoming(SiteDisk disk, bool hybrid, long rate, bool prefetch)
    {
        var image = RawImage.Open(disk.ImagePath, readOnly: false);
        var settings = RelocConfig.DiskSettings(Context.System.Settings.Config) with { RateBytesPerSecond = rate, Prefetch = prefetch };
        bool import = disk.Peer.Length == 0; // from a foreign server: nobody else owns it
        var state = new DiskState(disk.Size, settings.BlockSize, owner: import);
        var source = NbdBlockSource.Factory(NbdClientOptions.FromUri(disk.SourceUri!), disk.Size);
        var journal = disk.Journal.Length > 0 ? $"disk-{disk.Name}-{_settings.Name}-{disk.Journal}" : $"disk-{disk.Name}-{_settings.Name}-e{disk.Epoch}";
        var actor = Context.ActorOf(VirtualDiskActor.Props(new DiskId(disk.Name), state, image, settings, source, journal),
            "disk-" + disk.Name + "-" + (disk.Journal.Length > 0 ? disk.Journal : "e" + disk.Epoch));
        // Post-copy: no background copy before the handover (the source still changes); hybrid pre-copies.
        if (!hybrid) actor.Tell(new VirtualDiskProtocol.PausePrefetch());
        var owned = new OwnedDisk(image, new RelocatingDisk(image, state, actor, settings));
        _incoming[disk.Name] = new Incoming(actor, image, disk.Epoch, state, owned);
        var export = new NbdExport(disk.Name, owned,
            import ? $"disk {disk.Name} imported to site {_settings.Name}" : $"disk {disk.Name} arriving at site {_settings.Name}");
        Watch(export, disk.Name);
        _exports.Add(export);
    }

    /// <summary>Guest connections come and go on the data path; the site hears of it through its mailbox.</summary>
    private void Watch(NbdExport export, string disk)
    {
        var self = Self;
        export.Clients.Changed += n => self.Tell(new ClientsChanged(disk, n));
    }
}
