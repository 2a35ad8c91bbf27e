using System.Text;
using Reloc.Actors.Site;
using static Reloc.Actors.Coordinator.RelocationProtocol;

namespace Reloc.Actors.Tests.Model;

/// <summary>Mirrors <see cref="OwnedDisk"/>: write tracking and the fence of a disk this site serves from its
/// own image. Guest writes are atomic here (a write admitted before the fence completes before
/// FenceAsync does, which is what OwnedDisk's in-flight counter guarantees).</summary>
internal sealed class OwnedModel(Image image, int blocks)
{
    public Image Image { get; } = image;
    public bool Fenced { get; set; }
    private HashSet<long>? _dirty;
    private bool _allDirty;
    public bool Tracking => _dirty is not null;

    /// <summary>OwnedDisk.StartTracking</summary>
    public void StartTracking() => _dirty ??= [];

    /// <summary>OwnedDisk.MarkAllDirty</summary>
    public void MarkAllDirty() => _allDirty = _dirty is not null;

    /// <summary>OwnedDisk.StopTracking</summary>
    public void StopTracking()
    {
        _dirty = null;
        _allDirty = false;
    }

    /// <summary>OwnedDisk.DrainDirty: sorted runs; everything once after a restart.</summary>
    public List<(long First, long Count)> DrainDirty()
    {
        if (_allDirty)
        {
            _allDirty = false;
            _dirty?.Clear();
            return [(0, blocks)];
        }
        if (_dirty is null || _dirty.Count == 0) return [];
        var sorted = _dirty.Order().ToList();
        _dirty.Clear();
        var runs = new List<(long First, long Count)>();
        foreach (var b in sorted)
        {
            if (runs.Count > 0 && runs[^1].First + runs[^1].Count == b) runs[^1] = (runs[^1].First, runs[^1].Count + 1);
            else runs.Add((b, 1));
        }
        return runs;
    }

    /// <summary>OwnedDisk.WriteAsync (Enter/Exit): refused once fenced, else written and tracked.</summary>
    public bool Write(int block, int version)
    {
        if (Fenced) return false;
        Image.Volatile[block] = version;
        _dirty?.Add(block);
        return true;
    }

    public string Describe() => $"{(Fenced ? "fenced " : "")}{(Tracking ? $"tracking{(_allDirty ? " all" : "")} {{{string.Join(",", _dirty!.Order())}}} " : "")}";
}

/// <summary>SiteActor.Outgoing: the invalidation stream of a source.</summary>
internal sealed class OutgoingModel(string disk, string toSite, long epoch)
{
    public string Disk { get; } = disk;
    public string ToSite { get; } = toSite;
    public long Epoch { get; } = epoch;
    public long Seq { get; set; }
    public SortedDictionary<long, (List<(long First, long Count)> Runs, long Sent)> Unacked { get; } = new();
}

/// <summary>
/// One site node: <see cref="SiteActor"/> (registry, source and destination steps) with the persisted
/// <see cref="SiteState"/> rebuilt from the real <see cref="SiteEvents"/> through <see cref="SiteState.Apply"/>.
/// What survives a crash: the site journal, every disk actor's journal, and the images' durable content.
/// Everything else (OwnedDisk tracking, unacknowledged invalidations, disk actors, wanted handovers) is lost.
/// </summary>
internal sealed class SiteModel(Sim sim, string name)
{
    public string Name { get; } = name;
    public bool Up { get; private set; }
    public int Inc { get; private set; }
    public Addr Self => new(Name, Inc);

    // ---- durable ----
    private readonly List<object> _journal = [];
    public Dictionary<string, Image> Images { get; } = new(StringComparer.Ordinal);
    public Dictionary<string, List<object>> DiskJournals { get; } = new(StringComparer.Ordinal);

    // ---- volatile ----
    public SiteState State { get; private set; } = new();
    public Dictionary<string, OwnedModel> Owned { get; } = new(StringComparer.Ordinal);          // SiteActor._images
    public Dictionary<string, OutgoingModel> Outgoing { get; } = new(StringComparer.Ordinal);    // SiteActor._outgoing
    public Dictionary<string, DiskActorModel> Incoming { get; } = new(StringComparer.Ordinal);   // SiteActor._incoming
    public HashSet<string> HandoverWanted { get; } = new(StringComparer.Ordinal);               // SiteActor._handoverWanted
    private readonly Dictionary<string, int> _timers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _clientsSeen = new(StringComparer.Ordinal);

    public static string ImagePathOf(string site, string disk) => $"{site}/{disk}.img";
    public static string UriOf(string site, string disk) => $"nbd://{site}:10809/{disk}";
    public static string SiteOfUri(string uri) => uri["nbd://".Length..uri.IndexOf(':', "nbd://".Length)];

    public void Boot()
    {
        Up = true;
        Inc = 1;
    }

    /// <summary>SiteActor.OnCreate + Prepared: the image first (here: every block at version 1, durable), then the event.</summary>
    public void CreateInitialDisk(string disk, int blocks)
    {
        var path = ImagePathOf(Name, disk);
        Images[path] = new Image(blocks, initial: 1);
        Persist(new SiteEvents.DiskAdded(disk, blocks * (long)Sim.BlockSize, path, 1), e => Export(new SiteDisk(e.Name, e.Size, e.ImagePath, e.Epoch)));
    }

    // ---------------- crash and recovery ----------------

    public void Crash()
    {
        sim.Stats.Crashes++;
        sim.Trace($"site {Name} CRASHES (volatile state lost)");
        Up = false;
        Inc++;
        foreach (var a in Incoming.Values) a.Kill();
        Owned.Clear();
        Outgoing.Clear();
        Incoming.Clear();
        HandoverWanted.Clear();
        _timers.Clear();
        _clientsSeen.Clear();
        State = new SiteState();
        foreach (var image in Images.Values) image.Crash();
        sim.Guest.OnSiteCrash(Name);
    }

    /// <summary>SiteActor's Recover handlers and RecoveryCompleted: replay, then export every disk.</summary>
    public void Restart()
    {
        Up = true;
        sim.Trace($"site {Name} restarts");
        foreach (var e in _journal) State.Apply(e);
        foreach (var disk in State.Disks.ToList()) Export(disk);
    }

    /// <summary>Persist(evt, then): journal first, then the state, then the handler (no command in between).</summary>
    private void Persist<T>(T evt, Action<T> then) where T : notnull
    {
        _journal.Add(evt);
        State.Apply(evt);
        if (sim.Tracing) sim.Trace($"  {Name} persists {Sim.Fmt(evt)}");
        then(evt);
    }

    /// <summary>SiteActor.Export</summary>
    private void Export(SiteDisk disk)
    {
        if (disk.Phase == SiteDisk.Incoming)
        {
            StartIncoming(disk, hybrid: true, prefetch: true);
            return;
        }
        var owned = new OwnedModel(Images[disk.ImagePath], sim.O.Blocks);
        if (disk.Phase == SiteDisk.Fenced) owned.Fenced = true;
        Owned[disk.Name] = owned;
        if (disk.Phase == SiteDisk.Outgoing) BeginOutgoing(disk.Name, disk.Peer, disk.Epoch, everything: true);
    }

    // ---------------- messages ----------------

    /// <summary>A message from another node (or this one) to the site actor.</summary>
    public void Receive(object m, Addr sender)
    {
        if (!Up) return;
        long? messageBase = EpochBase(m);
        long? receiverBase = messageBase is null ? null : BaseEpoch(Sim.DiskName);
        bool stale = messageBase < receiverBase;
        string before = stale ? Fingerprint() : "";
        Dispatch(m, sender);
        if (stale) sim.CheckStale($"site {Name}", m, messageBase!.Value, receiverBase!.Value, before, Fingerprint());
    }

    /// <summary>The epoch a relocation step belongs to (the source's epoch before the handover).</summary>
    public static long? EpochBase(object m) => m switch
    {
        StartOutgoing x => x.Epoch, PrepareIncoming x => x.Epoch, StopOutgoing x => x.Epoch, DropIncoming x => x.Epoch,
        InvalidateAt x => x.Epoch, InvalidatedAt x => x.Epoch,
        Fence x => x.NewEpoch - 1, TakeOwnershipAt x => x.NewEpoch - 1, Release x => x.Epoch - 1,
        OutgoingStarted x => x.Epoch, IncomingPrepared x => x.Epoch, OutgoingStopped x => x.Epoch, IncomingDropped x => x.Epoch,
        Fenced x => x.NewEpoch - 1, OwnershipMoved x => x.NewEpoch - 1, RelocationDone x => x.Epoch - 1, Released x => x.Epoch - 1,
        _ => null,
    };

    public static string DiskOf(object m) => m switch
    {
        StartOutgoing x => x.Disk, PrepareIncoming x => x.Disk, StopOutgoing x => x.Disk, DropIncoming x => x.Disk,
        InvalidateAt x => x.Disk, InvalidatedAt x => x.Disk, Fence x => x.Disk, TakeOwnershipAt x => x.Disk, Release x => x.Disk,
        OutgoingStarted x => x.Disk, IncomingPrepared x => x.Disk, OutgoingStopped x => x.Disk, IncomingDropped x => x.Disk,
        Fenced x => x.Disk, OwnershipMoved x => x.Disk, RelocationDone x => x.Disk, Released x => x.Disk,
        _ => "",
    };

    /// <summary>This site's epoch for the disk, as the start epoch of the relocation it is in (or would start).</summary>
    private long? BaseEpoch(string disk) =>
        !State.TryGet(disk, out var d) ? null : d.Phase == SiteDisk.Fenced ? d.Epoch - 1 : d.Epoch;

    /// <summary>SiteActor.Serving / RelocationCommands: the Command&lt;...&gt; handlers, one case each.</summary>
    private void Dispatch(object m, Addr sender)
    {
        switch (m)
        {
            case SiteProtocol.ListDisks:
                Reply(sender, new SiteProtocol.DiskList(Name, State.Disks.OrderBy(d => d.Name).Select(Info).ToList()));
                break;
            // ---- destination ----
            case PrepareIncoming x: OnPrepareIncoming(x, sender); break;
            case DropIncoming x: OnDropIncoming(x, sender); break;
            case InvalidateAt x: OnInvalidateAt(x, sender); break;
            case TakeOwnershipAt x: OnTakeOwnershipAt(x, sender); break;
            // ---- source ----
            case StartOutgoing x: OnStartOutgoing(x, sender); break;
            case InvalidatedAt x: OnInvalidatedAt(x); break;
            case StopOutgoing x: OnStopOutgoing(x, sender); break;
            case Fence x: OnFence(x, sender); break;
            case Release x: OnRelease(x, sender); break;
            case SiteProtocol.Refused:
                break; // unhandled by SiteActor (an invalidation refused by the destination stays unacknowledged)
            default:
                throw new InvalidOperationException($"site got {m}");
        }
    }

    private void Reply(Addr to, object body) => sim.Reply(Self, to, body);
    private void TellCoordinator(object body) => sim.ToCoordinator(this, body);
    private void Refuse(Addr to, string reason) => Reply(to, new SiteProtocol.Refused(reason));

    /// <summary>SiteActor.Info</summary>
    private SiteProtocol.DiskInfo Info(SiteDisk d)
    {
        Incoming.TryGetValue(d.Name, out var incoming);
        long local = d.Phase == SiteDisk.Incoming ? incoming?.State.Map.LocalBytes ?? 0 : d.Size;
        bool writable = d.IsOwnedHere || (d.Phase == SiteDisk.Incoming && incoming is not null && incoming.State.IsOwner);
        return new SiteProtocol.DiskInfo(d.Name, d.Size, Name, d.Epoch, d.Phase, UriOf(Name, d.Name), d.Peer, local,
            GuestClientsOf(d.Name), writable, HandoverWanted.Contains(d.Name));
    }

    /// <summary>What ListDisks would answer now (for the model's checks only).</summary>
    public SiteProtocol.DiskList? ListNow() => Up ? new SiteProtocol.DiskList(Name, State.Disks.OrderBy(d => d.Name).Select(Info).ToList()) : null;

    private bool HasExport(string disk) => Owned.ContainsKey(disk) || Incoming.ContainsKey(disk);

    /// <summary>SiteActor.GuestClientsOf: guest connections to the disk's export (not the peer export).</summary>
    public int GuestClientsOf(string disk) => Up && HasExport(disk) && sim.Guest.Connected.Contains(Name) ? 1 : 0;

    /// <summary>NbdExport.Clients.Changed → ClientsChanged (SiteActor.Watch), polled after every event.</summary>
    public void PollClients()
    {
        if (!Up) return;
        foreach (var disk in Owned.Keys.Concat(Incoming.Keys).ToList())
        {
            int n = GuestClientsOf(disk);
            if (_clientsSeen.GetValueOrDefault(disk) == n) continue;
            _clientsSeen[disk] = n;
            int inc = Inc;
            sim.Local(Name, "site", () =>
            {
                if (!Up || Inc != inc) return;
                // SiteActor: Command<ClientsChanged>
                if (Outgoing.ContainsKey(disk) || Incoming.ContainsKey(disk)) TellCoordinator(new GuestClients(disk, Name, n));
            });
        }
    }

    // ---------------- source ----------------

    /// <summary>SiteActor.OnStartOutgoing</summary>
    private void OnStartOutgoing(StartOutgoing m, Addr sender)
    {
        if (!State.TryGet(m.Disk, out var disk) || !Owned.ContainsKey(m.Disk))
        {
            if (disk is { Phase: SiteDisk.Owned } && Incoming.ContainsKey(m.Disk)) sim.Stats.RefusedArrived++; // served by its (complete) relocating disk: no OwnedDisk
            Refuse(sender, $"no disk '{m.Disk}' on site {Name}");
            return;
        }
        if (disk.Phase == SiteDisk.Outgoing && disk.Epoch == m.Epoch && disk.Peer == m.ToSite) { Reply(sender, new OutgoingStarted(m.Disk, m.Epoch, GuestClientsOf(m.Disk))); return; }
        if (disk.Phase != SiteDisk.Owned) { Refuse(sender, $"disk '{m.Disk}' is {disk.Phase}, not owned"); return; }
        if (m.Epoch != disk.Epoch) { Refuse(sender, $"disk '{m.Disk}' is at epoch {disk.Epoch}, not {m.Epoch}"); return; }
        if (m.ToSite == Name) { Refuse(sender, $"disk '{m.Disk}' is already at {m.ToSite}"); return; }
        Persist(new SiteEvents.OutgoingBegun(m.Disk, m.Epoch, m.ToSite), e =>
        {
            BeginOutgoing(e.Name, e.ToSite, e.Epoch, everything: false);
            Reply(sender, new OutgoingStarted(m.Disk, m.Epoch, GuestClientsOf(m.Disk)));
        });
    }

    /// <summary>SiteActor.BeginOutgoing</summary>
    private void BeginOutgoing(string disk, string toSite, long epoch, bool everything)
    {
        var owned = Owned[disk];
        owned.StartTracking();
        if (everything) owned.MarkAllDirty();
        Outgoing[disk] = new OutgoingModel(disk, toSite, epoch);
        StartPeriodicTimer("stream-" + disk, Sim.StreamTickMs, () => OnStreamTick(disk));
    }

    /// <summary>SiteActor.EndOutgoing</summary>
    private void EndOutgoing(string disk)
    {
        Outgoing.Remove(disk);
        _timers.Remove("stream-" + disk);
        if (Owned.TryGetValue(disk, out var owned)) owned.StopTracking();
    }

    /// <summary>Timers.StartPeriodicTimer: replaces a timer of the same key; gone with the incarnation.</summary>
    private void StartPeriodicTimer(string key, long intervalMs, Action tick)
    {
        int generation = _timers.GetValueOrDefault(key) + 1;
        _timers[key] = generation;
        int inc = Inc;
        void Fire()
        {
            if (!Up || Inc != inc || _timers.GetValueOrDefault(key) != generation) return;
            sim.After(intervalMs, Fire);
            tick();
        }
        sim.After(intervalMs, Fire);
    }

    /// <summary>SiteActor: Command&lt;StreamTick&gt;</summary>
    private void OnStreamTick(string disk)
    {
        if (!Outgoing.TryGetValue(disk, out var o) || !Owned.TryGetValue(disk, out var owned)) return;
        var now = sim.Now;
        foreach (var (seq, (runs, sent)) in o.Unacked.Where(u => now - u.Value.Sent >= Sim.ResendMs).ToList())
        {
            o.Unacked[seq] = (runs, now);
            sim.ToSite(Name, o.ToSite, new InvalidateAt(o.Disk, o.Epoch, seq, runs), Self);
        }
        var fresh = owned.DrainDirty();
        if (fresh.Count == 0) return;
        o.Seq++;
        o.Unacked[o.Seq] = (fresh, now);
        sim.ToSite(Name, o.ToSite, new InvalidateAt(o.Disk, o.Epoch, o.Seq, fresh), Self);
    }

    /// <summary>SiteActor: Command&lt;InvalidatedAt&gt;</summary>
    private void OnInvalidatedAt(InvalidatedAt m)
    {
        if (Outgoing.TryGetValue(m.Disk, out var o) && o.Epoch == m.Epoch) o.Unacked.Remove(m.Seq);
    }

    /// <summary>SiteActor: Command&lt;StopOutgoing&gt;</summary>
    private void OnStopOutgoing(StopOutgoing m, Addr sender)
    {
        if (!State.TryGet(m.Disk, out var disk)) { Refuse(sender, $"no disk '{m.Disk}' on site {Name}"); return; }
        if (disk.Phase == SiteDisk.Owned && disk.Epoch == m.Epoch) { Reply(sender, new OutgoingStopped(m.Disk, m.Epoch)); return; }
        if (disk.Phase != SiteDisk.Outgoing || disk.Epoch != m.Epoch) { Refuse(sender, $"disk '{m.Disk}' is {disk.Phase} at epoch {disk.Epoch}: cannot cancel at {m.Epoch}"); return; }
        Persist(new SiteEvents.OutgoingEnded(m.Disk), _ =>
        {
            EndOutgoing(m.Disk);
            Reply(sender, new OutgoingStopped(m.Disk, m.Epoch));
        });
    }

    /// <summary>SiteActor: Command&lt;Fence&gt; (and FenceAndFlushAsync, piped back as FenceDone)</summary>
    private void OnFence(Fence m, Addr sender)
    {
        if (!Owned.TryGetValue(m.Disk, out var owned) || !State.TryGet(m.Disk, out var disk)) { Refuse(sender, $"no disk '{m.Disk}' on site {Name}"); return; }
        if (disk.Phase == SiteDisk.Fenced && disk.Epoch == m.NewEpoch) { Reply(sender, new Fenced(m.Disk, m.NewEpoch, disk.FinalDirty ?? [])); return; }
        if (disk.Phase != SiteDisk.Outgoing || disk.Epoch + 1 != m.NewEpoch) { Refuse(sender, $"cannot fence '{m.Disk}' at epoch {m.NewEpoch}: it is {disk.Phase} at epoch {disk.Epoch}"); return; }
        owned.Fenced = true; // FenceAsync: writes refused from now on; none in flight (writes are atomic here)
        int inc = Inc;
        sim.After(sim.FlushLatency(), () => // the flush (fdatasync) runs off the actor
        {
            if (!Up || Inc != inc) return;
            owned.Image.Sync();
            sim.Local(Name, "site", () => { if (Up && Inc == inc) OnFenceDone(m, sender); });
        });
    }

    /// <summary>SiteActor: Command&lt;FenceDone&gt;</summary>
    private void OnFenceDone(Fence m, Addr replyTo)
    {
        if (!Owned.TryGetValue(m.Disk, out _) || !State.TryGet(m.Disk, out var disk) || disk.Phase != SiteDisk.Outgoing) return;
        var final = Owned[m.Disk].DrainDirty();
        if (Outgoing.TryGetValue(m.Disk, out var o)) foreach (var (runs, _) in o.Unacked.Values) final.AddRange(runs);
        Persist(new SiteEvents.DiskFenced(m.Disk, m.NewEpoch, disk.Peer, final), _ =>
        {
            EndOutgoing(m.Disk);
            Reply(replyTo, new Fenced(m.Disk, m.NewEpoch, final));
        });
    }

    /// <summary>SiteActor: Command&lt;Release&gt;</summary>
    private void OnRelease(Release m, Addr sender)
    {
        if (!State.TryGet(m.Disk, out var disk) || disk.Phase != SiteDisk.Fenced || disk.Epoch != m.Epoch) { Reply(sender, new Released(m.Disk, m.Epoch)); return; }
        Remove(disk, () => Reply(sender, new Released(m.Disk, m.Epoch)));
    }

    /// <summary>SiteActor.Remove: forget durably, stop serving, delete the image.</summary>
    private void Remove(SiteDisk disk, Action then) =>
        Persist(new SiteEvents.DiskRemoved(disk.Name), e =>
        {
            Owned.Remove(e.Name);
            if (Incoming.Remove(e.Name, out var incoming)) incoming.Stop();
            HandoverWanted.Remove(e.Name);
            Images.Remove(disk.ImagePath);
            sim.Guest.OnExportGone(Name);
            then();
        });

    /// <summary>A read of the peer export (another site's fetcher): served by OwnedDisk whatever its phase;
    /// null when this site does not serve the disk that way (no such export: the NBD request fails).</summary>
    public int[]? ServePeerRead(string disk, long first, long count)
    {
        if (!Up || !Owned.TryGetValue(disk, out var owned)) return null;
        var data = new int[count];
        for (long i = 0; i < count; i++) data[i] = owned.Image.Volatile[first + i];
        return data;
    }

    /// <summary>Whether every write the guest makes here from now on reaches <paramref name="destination"/> (as an
    /// invalidation or in the final dirty set): outgoing to it at that epoch, or fenced (no more writes).</summary>
    public bool Tracks(string disk, string destination, long epoch) =>
        State.TryGet(disk, out var d) && ((d.Phase == SiteDisk.Outgoing && d.Peer == destination && d.Epoch == epoch && Owned.TryGetValue(disk, out var o) && o.Tracking)
                                          || d.Phase == SiteDisk.Fenced);

    // ---------------- destination ----------------

    /// <summary>SiteActor.OnPrepareIncoming</summary>
    private void OnPrepareIncoming(PrepareIncoming m, Addr sender)
    {
        if (State.TryGet(m.Disk, out var existing))
        {
            if (existing.Phase == SiteDisk.Incoming && existing.Epoch == m.Epoch)
            {
                Reply(sender, new IncomingPrepared(m.Disk, m.Epoch)); // a retry
                if (HandoverWanted.Contains(m.Disk)) TellCoordinator(new HandoverRequested(m.Disk));
            }
            else Refuse(sender, $"disk '{m.Disk}' already exists on site {Name}");
            return;
        }
        if (sim.SiteOrNull(m.FromSite) is { } from && !(from.State.TryGet(m.Disk, out var fd) && fd.Phase == SiteDisk.Outgoing && fd.Peer == Name && fd.Epoch == m.Epoch))
            sim.Note($"{Name} prepares an incoming copy from {m.FromSite} at epoch {m.Epoch} while {m.FromSite} is not relocating it there");
        var path = ImagePathOf(Name, m.Disk);
        Images[path] = new Image(sim.O.Blocks, initial: 0); // File.Delete + RawImage.Create: empty, sparse
        Persist(new SiteEvents.IncomingAdded(m.Disk, m.Size, path, m.SourceUri, m.Epoch, m.FromSite, sim.NewJournal()), e =>
        {
            State.TryGet(e.Name, out var disk);
            StartIncoming(disk!, m.Hybrid, m.Prefetch);
            Reply(sender, new IncomingPrepared(e.Name, e.Epoch));
        });
    }

    /// <summary>SiteActor.StartIncoming: a fresh DiskState (not the owner), the disk actor recovers from its journal.</summary>
    private void StartIncoming(SiteDisk disk, bool hybrid, bool prefetch)
    {
        var key = $"disk-{disk.Name}-{Name}-{disk.Journal}";
        if (!DiskJournals.TryGetValue(key, out var journal)) DiskJournals[key] = journal = [];
        var actor = new DiskActorModel(sim, this, disk.Name, disk.Epoch, SiteOfUri(disk.SourceUri!), Images[disk.ImagePath], journal, prefetch);
        Incoming[disk.Name] = actor;
        actor.BeginRecovery();
        if (!hybrid) actor.Tell(actor.PausePrefetch);
    }

    /// <summary>SiteActor.OnDropIncoming</summary>
    private void OnDropIncoming(DropIncoming m, Addr sender)
    {
        if (!State.TryGet(m.Disk, out var disk)) { Reply(sender, new IncomingDropped(m.Disk, m.Epoch)); return; }
        if (disk.Phase != SiteDisk.Incoming || disk.Epoch != m.Epoch || (Incoming.TryGetValue(m.Disk, out var d) && d.State.IsOwner))
        { Refuse(sender, $"disk '{m.Disk}' on site {Name} is {disk.Phase} at epoch {disk.Epoch}: not dropped"); return; }
        if (Incoming.TryGetValue(m.Disk, out var owner) && owner.OwnedDurably)
            sim.Note($"{Name} drops a copy it owns (its journal says so, but its disk actor {(owner.Recovering ? "still recovers" : "says otherwise")})");
        if (sim.SiteOrNull(disk.Peer) is { } source && source.State.TryGet(m.Disk, out var sd) && sd.Peer == Name
            && (sd.Phase == SiteDisk.Fenced || (sd.Phase == SiteDisk.Outgoing && sd.Epoch == disk.Epoch)))
            sim.Note($"{Name} drops the incoming copy of a live relocation ({source.Name} is {sd.Phase} for it at epoch {sd.Epoch})");
        Remove(disk, () => Reply(sender, new IncomingDropped(m.Disk, m.Epoch)));
    }

    /// <summary>SiteActor: Command&lt;InvalidateAt&gt; (an Ask to the disk actor piped back to the source)</summary>
    private void OnInvalidateAt(InvalidateAt m, Addr sender)
    {
        if (!Incoming.TryGetValue(m.Disk, out var d)) { Refuse(sender, $"no incoming disk '{m.Disk}' on site {Name}"); return; }
        int inc = Inc;
        d.Tell(() => d.OnInvalidate(m.Epoch, m.Blocks, r =>
        {
            if (!Up || Inc != inc) return;
            Reply(sender, r is DiskActorModel.Invalidated ? new InvalidatedAt(m.Disk, m.Epoch, m.Seq) : new SiteProtocol.Refused($"invalidation refused: {r}"));
        }));
    }

    /// <summary>SiteActor: Command&lt;TakeOwnershipAt&gt;</summary>
    private void OnTakeOwnershipAt(TakeOwnershipAt m, Addr sender)
    {
        if (!Incoming.TryGetValue(m.Disk, out var d)) { Refuse(sender, $"no incoming disk '{m.Disk}' on site {Name}"); return; }
        int inc = Inc;
        d.Tell(() => d.OnTakeOwnership(m.NewEpoch, m.FinalDirty, r =>
        {
            if (!Up || Inc != inc) return;
            Reply(sender, r is DiskActorModel.OwnershipConfirmed ? new OwnershipMoved(m.Disk, m.NewEpoch) : new SiteProtocol.Refused($"ownership refused: {r}"));
        }));
        d.Tell(d.ResumePrefetch);
        HandoverWanted.Remove(m.Disk);
    }

    /// <summary>SiteActor: Command&lt;WriteHeldForHandover&gt; (from the event stream)</summary>
    public void OnWriteHeldForHandover(string disk)
    {
        if (!Incoming.ContainsKey(disk)) return;
        HandoverWanted.Add(disk);
        TellCoordinator(new HandoverRequested(disk));
    }

    /// <summary>SiteActor: Command&lt;RelocationFinished&gt; (from the event stream)</summary>
    public void OnRelocationFinished(string name)
    {
        if (!Incoming.ContainsKey(name) || !State.TryGet(name, out var disk) || disk.Phase != SiteDisk.Incoming) return;
        bool import = disk.Peer.Length == 0;
        Persist(new SiteEvents.DiskAdded(disk.Name, disk.Size, disk.ImagePath, import ? disk.Epoch : disk.Epoch + 1), e =>
        {
            if (!import) TellCoordinator(new RelocationDone(e.Name, e.Epoch));
        });
    }

    // ---------------- the guest's NBD connection to this site ----------------

    /// <summary>The NBD export the guest talks to: OwnedDisk if this site serves the disk from its own image,
    /// else the RelocatingDisk of its disk actor; null when the disk is not exported here.</summary>
    public object? ExportOf(string disk) =>
        !Up ? null : Owned.TryGetValue(disk, out var o) ? o : Incoming.TryGetValue(disk, out var a) ? a : null;

    // ---------------- what the checks look at ----------------

    /// <summary>The epoch at which this site would acknowledge a guest write now; null if it would not.</summary>
    public long? AcceptsWritesAt(string disk)
    {
        if (!Up) return null;
        if (Owned.TryGetValue(disk, out var o))
            return o.Fenced || !State.TryGet(disk, out var d) ? null : d.Epoch;
        if (Incoming.TryGetValue(disk, out var a)) return a.OwnerEpoch;
        return null;
    }

    /// <summary>What a guest read of the block returns at this site once everything settled (-1: not local).</summary>
    public int SettledVersion(string disk, int block)
    {
        if (Owned.TryGetValue(disk, out var o)) return o.Image.Volatile[block];
        if (Incoming.TryGetValue(disk, out var a)) return a.State.Map.IsLocal(block) ? a.Image.Volatile[block] : -1;
        return -1;
    }

    /// <summary>No relocation left at this site.</summary>
    public bool Quiet => Up && State.Disks.All(d => d.Phase == SiteDisk.Owned) && Incoming.Values.All(a => a.Settled);

    public string Fingerprint()
    {
        var sb = new StringBuilder();
        foreach (var d in State.Disks.OrderBy(d => d.Name))
            sb.Append($"{d.Name}:{d.Phase}@{d.Epoch}>{d.Peer} {Sim.Runs(d.FinalDirty ?? [])} ");
        foreach (var (n, o) in Owned) sb.Append($"owned {n} {o.Describe()}");
        foreach (var (n, a) in Incoming) sb.Append($"incoming {n} {a.Fingerprint()} ");
        return sb.ToString();
    }

    public string Describe()
    {
        if (!Up) return $"{Name}: DOWN";
        var sb = new StringBuilder($"{Name}:");
        foreach (var d in State.Disks)
        {
            sb.Append($" {d.Phase} e{d.Epoch}{(d.Peer.Length > 0 ? " peer " + d.Peer : "")}");
            if (Owned.TryGetValue(d.Name, out var o)) sb.Append($" {o.Describe()}v[{string.Join(",", o.Image.Volatile)}]");
            if (Incoming.TryGetValue(d.Name, out var a)) sb.Append(' ').Append(a.Describe());
            if (Outgoing.TryGetValue(d.Name, out var og)) sb.Append($" unacked {og.Unacked.Count}");
        }
        return sb.ToString();
    }
}
