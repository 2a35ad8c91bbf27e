using System.Text;
using Reloc.Actors.Site;
using static Reloc.Actors.Coordinator.RelocationProtocol;

namespace Reloc.Actors.Tests.Model;

/// <summary>Mirrors <see cref="OwnedDisk"/>: write tracking and the fence over its device, which is the site's own
/// image (SiteActor.Export) or, for a disk arriving by relocation, the <c>RelocatingDisk</c> of its disk actor
/// (SiteActor.StartIncoming: the export's device from arrival on, and the site's owned disk once it arrived).
/// Writes are counted in flight between Enter and Exit, so a fence completes only when every write admitted
/// before it is done and tracked (FenceAsync).</summary>
internal sealed class OwnedModel(Image image, int blocks, DiskActorModel? device = null)
{
    public Image Image { get; } = image;
    /// <summary>null: the image itself; else the relocating disk (its disk actor) the writes go through.</summary>
    public DiskActorModel? Device { get; } = device;
    public bool Fenced { get; private set; }
    private HashSet<long>? _dirty;
    private bool _allDirty;
    private int _writesInFlight;
    private readonly List<Action> _drained = [];
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

    /// <summary>OwnedDisk.Enter: refused (EPERM) once fenced, else counted in flight.</summary>
    public bool Enter()
    {
        if (Fenced) return false;
        _writesInFlight++;
        return true;
    }

    /// <summary>OwnedDisk.Exit: the written block is tracked (even if the write failed), and the last write in
    /// flight completes a fence waiting for it.</summary>
    public void Exit(int block)
    {
        _dirty?.Add(block);
        if (--_writesInFlight == 0 && Fenced)
        {
            var drained = _drained.ToList();
            _drained.Clear();
            foreach (var d in drained) d();
        }
    }

    /// <summary>OwnedDisk.WriteAsync straight to the image (Enter, write, Exit): refused once fenced.</summary>
    public bool Write(int block, int version)
    {
        if (!Enter()) return false;
        Image.Volatile[block] = version;
        Exit(block);
        return true;
    }

    /// <summary>OwnedDisk.FenceAsync: writes refused from now on; <paramref name="drained"/> once none is in flight.</summary>
    public void Fence(Action drained)
    {
        Fenced = true;
        if (_writesInFlight == 0) drained();
        else _drained.Add(drained);
    }

    /// <summary>OwnedDisk.Unfence (a fence whose flush failed): the source owns the disk again.</summary>
    public void Unfence()
    {
        Fenced = false;
        _drained.Clear();
    }

    public string Describe() => $"{(Fenced ? "fenced " : "")}{(_writesInFlight > 0 ? $"in flight {_writesInFlight} " : "")}{(Tracking ? $"tracking{(_allDirty ? " all" : "")} {{{string.Join(",", _dirty!.Order())}}} " : "")}";
}

/// <summary>SiteActor.Outgoing: the invalidation stream of a source.</summary>
internal sealed class OutgoingModel(string disk, string toSite, long epoch, string relocation)
{
    public string Disk { get; } = disk;
    public string ToSite { get; } = toSite;
    public long Epoch { get; } = epoch;
    public string Relocation { get; } = relocation;
    public long Seq { get; set; }
    public SortedDictionary<long, (List<(long First, long Count)> Runs, long Sent)> Unacked { get; } = new();
}

/// <summary>Names of <see cref="Stats.Paths"/>.</summary>
internal static class Paths
{
    public const string ArrivedJoinsOwned = "an arrived disk joins the owned disks";
    public const string HeldWriteExpired = "a write held for the handover failed after the miss timeout";
    public const string StaleRoundNotJudged = "a round older than a flow's last change did not judge it";
    public const string PrepareRefusedOtherCopy = "PrepareIncoming refused: another attempt's copy is there";
    public const string ForeignAnswerIgnored = "an answer of another relocation ignored by the coordinator";
    public const string Republished = "a disk actor that recovered complete told its site again";
    public const string SitesWin = "a flow replaced by the relocation the sites show";
    public const string TakeOwnershipRefused = "TakeOwnershipAt refused: not arriving by that relocation at that epoch";
    public const string DropRefusedRecovering = "DropIncoming refused: the disk actor still recovers";
    public const string DropRefusedOwner = "DropIncoming refused: owned here";
    public const string StopRefusedFencing = "StopOutgoing refused: a fence is under way";
    public const string StopRefusedFenced = "StopOutgoing refused: fenced (a copy about to own the disk is not dropped)";
    public const string DropAfterStop = "a reconciler's drop sent only once the copy's source confirmed the stop";
    public const string FreshJournal = "a copy created again for a relocation this site had before starts from a fresh journal";
    public const string RefusedLeftoverCopy = "a relocation refused while another site still holds a copy";
}

/// <summary>
/// One site node: <see cref="SiteActor"/> (registry, source and destination steps) with the persisted
/// <see cref="SiteState"/> rebuilt from the real <see cref="SiteEvents"/> through <see cref="SiteState.Apply"/>.
/// What survives a crash: the site journal, every disk actor's journal, and the images' durable content.
/// Everything else (OwnedDisk tracking and fences, unacknowledged invalidations, fences under way, disk actors,
/// wanted handovers) is lost.
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
    /// <summary>The disk actors' journals by persistence id; SiteActor.Remove does not delete them.</summary>
    public Dictionary<string, List<object>> DiskJournals { get; } = new(StringComparer.Ordinal);

    // ---- volatile ----
    public SiteState State { get; private set; } = new();
    public Dictionary<string, OwnedModel> Owned { get; } = new(StringComparer.Ordinal);          // SiteActor._images
    public Dictionary<string, OutgoingModel> Outgoing { get; } = new(StringComparer.Ordinal);    // SiteActor._outgoing
    public Dictionary<string, DiskActorModel> Incoming { get; } = new(StringComparer.Ordinal);   // SiteActor._incoming
    public HashSet<string> HandoverWanted { get; } = new(StringComparer.Ordinal);               // SiteActor._handoverWanted
    public HashSet<string> Fencing { get; } = new(StringComparer.Ordinal);                      // SiteActor._fencing
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
        Fencing.Clear();
        _timers.Clear();
        _clientsSeen.Clear();
        State = new SiteState();
        foreach (var image in Images.Values) image.Crash();
        sim.Guest.OnSiteCrash(Name);
    }

    /// <summary>SiteActor's Recover handlers and RecoveryCompleted: replay, then export every disk (subscribed to the
    /// event stream before, so a disk actor that recovers complete reaches OnRelocationFinished).</summary>
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
        if (disk.Phase == SiteDisk.Fenced) owned.Fence(() => { }); // nothing in flight yet: completes at once
        Owned[disk.Name] = owned;
        if (disk.Phase == SiteDisk.Outgoing) BeginOutgoing(disk.Name, disk.Peer, disk.Epoch, disk.Relocation, everything: true);
    }

    // ---------------- messages ----------------

    /// <summary>A message from another node (or this one) to the site actor.</summary>
    public void Receive(object m, Addr sender)
    {
        if (!Up) return;
        long? messageBase = EpochBase(m);
        long? receiverBase = messageBase is null ? null : BaseEpoch(Sim.DiskName);
        bool stale = messageBase < receiverBase;
        // A site on a relocation (outgoing, fenced or incoming by it) must not change on another one's step or answer.
        var relocation = RelocationOf(m);
        string? current = relocation is null ? null : State.TryGet(DiskOf(m), out var d) && d.Relocation.Length > 0 ? d.Relocation : null;
        bool foreign = current is not null && current != relocation;
        string before = stale || foreign ? Fingerprint() : "";
        var journalBefore = _journal.Count;
        Dispatch(m, sender);
        if (stale) sim.CheckStale($"site {Name}", m, messageBase!.Value, receiverBase!.Value, before, Fingerprint());
        if (foreign) sim.CheckForeign($"site {Name}", m, relocation!, current!, before, Fingerprint());
        if (_journal.Count > journalBefore && RelocationOf(m) is { Length: > 0 } r && sim.EndedRelocations.Contains(r))
            sim.Note($"site {Name} persists {_journal[^1].GetType().Name} on a {m.GetType().Name} of relocation {r}, which a coordinator already ended");
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

    /// <summary>The relocation (attempt) a step or answer names.</summary>
    public static string? RelocationOf(object m) => m switch
    {
        StartOutgoing x => x.Relocation, PrepareIncoming x => x.Relocation, StopOutgoing x => x.Relocation, DropIncoming x => x.Relocation,
        InvalidateAt x => x.Relocation, InvalidatedAt x => x.Relocation, Fence x => x.Relocation, TakeOwnershipAt x => x.Relocation, Release x => x.Relocation,
        OutgoingStarted x => x.Relocation, IncomingPrepared x => x.Relocation, OutgoingStopped x => x.Relocation, IncomingDropped x => x.Relocation,
        Fenced x => x.Relocation, OwnershipMoved x => x.Relocation, RelocationDone x => x.Relocation, Released x => x.Relocation,
        HandoverRequested x => x.Relocation,
        _ => null,
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
            GuestClientsOf(d.Name), writable, HandoverWanted.Contains(d.Name), d.Relocation);
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
        foreach (var disk in Owned.Keys.Concat(Incoming.Keys).Distinct().ToList())
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
            if (disk is { Phase: SiteDisk.Owned } && Incoming.ContainsKey(m.Disk)) sim.Stats.RefusedArrived++; // arrived by relocation, not among the owned disks (F1)
            Refuse(sender, $"no disk '{m.Disk}' on site {Name}");
            return;
        }
        if (disk.Phase == SiteDisk.Outgoing && disk.Relocation == m.Relocation) { Reply(sender, new OutgoingStarted(m.Disk, m.Epoch, GuestClientsOf(m.Disk), m.Relocation)); return; } // a retry
        if (disk.Phase != SiteDisk.Owned) { Refuse(sender, $"disk '{m.Disk}' is {disk.Phase}, not owned"); return; }
        if (m.Epoch != disk.Epoch) { Refuse(sender, $"disk '{m.Disk}' is at epoch {disk.Epoch}, not {m.Epoch}"); return; }
        if (m.ToSite == Name) { Refuse(sender, $"disk '{m.Disk}' is already at {m.ToSite}"); return; }
        Persist(new SiteEvents.OutgoingBegun(m.Disk, m.Epoch, m.ToSite, m.Relocation), e =>
        {
            BeginOutgoing(e.Name, e.ToSite, e.Epoch, e.Relocation, everything: false);
            Reply(sender, new OutgoingStarted(m.Disk, m.Epoch, GuestClientsOf(m.Disk), m.Relocation));
        });
    }

    /// <summary>SiteActor.BeginOutgoing</summary>
    private void BeginOutgoing(string disk, string toSite, long epoch, string relocation, bool everything)
    {
        var owned = Owned[disk];
        owned.StartTracking();
        if (everything) owned.MarkAllDirty();
        Outgoing[disk] = new OutgoingModel(disk, toSite, epoch, relocation);
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
            sim.ToSite(Name, o.ToSite, new InvalidateAt(o.Disk, o.Epoch, seq, runs, o.Relocation), Self);
        }
        var fresh = owned.DrainDirty();
        if (fresh.Count == 0) return;
        o.Seq++;
        o.Unacked[o.Seq] = (fresh, now);
        sim.ToSite(Name, o.ToSite, new InvalidateAt(o.Disk, o.Epoch, o.Seq, fresh, o.Relocation), Self);
    }

    /// <summary>SiteActor: Command&lt;InvalidatedAt&gt;</summary>
    private void OnInvalidatedAt(InvalidatedAt m)
    {
        if (Outgoing.TryGetValue(m.Disk, out var o) && o.Relocation == m.Relocation) o.Unacked.Remove(m.Seq);
    }

    /// <summary>SiteActor: Command&lt;StopOutgoing&gt;</summary>
    private void OnStopOutgoing(StopOutgoing m, Addr sender)
    {
        if (!State.TryGet(m.Disk, out var disk)) { Reply(sender, new OutgoingStopped(m.Disk, m.Epoch, m.Relocation)); return; } // nothing here to stop
        // Not outgoing for this relocation (stopped already, never started, or another one): nothing to stop.
        if (disk.Phase == SiteDisk.Owned || (disk.Phase == SiteDisk.Outgoing && disk.Relocation != m.Relocation))
        { Reply(sender, new OutgoingStopped(m.Disk, m.Epoch, m.Relocation)); return; }
        if (disk.Phase != SiteDisk.Outgoing || Fencing.Contains(m.Disk))
        {
            if (Fencing.Contains(m.Disk)) sim.Stats.Hit(Paths.StopRefusedFencing);
            else if (disk.Phase == SiteDisk.Fenced) sim.Stats.Hit(Paths.StopRefusedFenced);
            Refuse(sender, $"disk '{m.Disk}' is {(Fencing.Contains(m.Disk) ? "being fenced" : disk.Phase)} on site {Name}: past the handover");
            return;
        }
        Persist(new SiteEvents.OutgoingEnded(m.Disk), _ =>
        {
            EndOutgoing(m.Disk);
            Reply(sender, new OutgoingStopped(m.Disk, m.Epoch, m.Relocation));
        });
    }

    /// <summary>SiteActor: Command&lt;Fence&gt; (and FenceAndFlushAsync: OwnedDisk.FenceAsync, then its FlushAsync,
    /// piped back as FenceDone)</summary>
    private void OnFence(Fence m, Addr sender)
    {
        if (!Owned.TryGetValue(m.Disk, out var owned) || !State.TryGet(m.Disk, out var disk)) { Refuse(sender, $"no disk '{m.Disk}' on site {Name}"); return; }
        if (disk.Phase == SiteDisk.Fenced && disk.Epoch == m.NewEpoch && disk.Relocation == m.Relocation)
        { Reply(sender, new Fenced(m.Disk, m.NewEpoch, disk.FinalDirty ?? [], m.Relocation)); return; } // a retry: the same answer
        if (disk.Phase != SiteDisk.Outgoing || disk.Epoch + 1 != m.NewEpoch || disk.Relocation != m.Relocation)
        { Refuse(sender, $"cannot fence '{m.Disk}' at epoch {m.NewEpoch} for relocation {m.Relocation}: it is {disk.Phase} at epoch {disk.Epoch}"); return; }
        if (!Fencing.Add(m.Disk)) return; // a fence is already under way: its answer will come
        int inc = Inc;
        void Done(string? error) => sim.Local(Name, "site", () => { if (Up && Inc == inc) OnFenceDone(m, sender, error); });
        owned.Fence(() =>
        {
            if (!Up || Inc != inc) return;
            if (owned.Device is { } device) // OwnedDisk.FlushAsync → RelocatingDisk.FlushAsync: Sync at the disk actor
                device.GuestFlush(ok => Done(ok ? null : "the disk actor did not flush"));
            else
                sim.After(sim.FlushLatency(), () => // the image's fdatasync runs off the actor
                {
                    if (!Up || Inc != inc) return;
                    owned.Image.Sync();
                    Done(null);
                });
        });
    }

    /// <summary>SiteActor: Command&lt;FenceDone&gt;</summary>
    private void OnFenceDone(Fence m, Addr replyTo, string? error)
    {
        Fencing.Remove(m.Disk);
        if (!Owned.TryGetValue(m.Disk, out var owned) || !State.TryGet(m.Disk, out var disk) || disk.Phase != SiteDisk.Outgoing) return;
        if (error is not null)
        {
            owned.Unfence(); // still the owner: the guest may go on writing here
            Refuse(replyTo, $"fencing {m.Disk} failed: {error}");
            return;
        }
        var final = owned.DrainDirty();
        if (Outgoing.TryGetValue(m.Disk, out var o)) foreach (var (runs, _) in o.Unacked.Values) final.AddRange(runs);
        Persist(new SiteEvents.DiskFenced(m.Disk, m.NewEpoch, disk.Peer, final, m.Relocation), _ =>
        {
            EndOutgoing(m.Disk);
            Reply(replyTo, new Fenced(m.Disk, m.NewEpoch, final, m.Relocation));
        });
    }

    /// <summary>SiteActor: Command&lt;Release&gt;</summary>
    private void OnRelease(Release m, Addr sender)
    {
        if (!State.TryGet(m.Disk, out var disk) || disk.Phase != SiteDisk.Fenced || disk.Epoch != m.Epoch || disk.Relocation != m.Relocation)
        { Reply(sender, new Released(m.Disk, m.Epoch, m.Relocation)); return; } // already released (a retry)
        Remove(disk, () => Reply(sender, new Released(m.Disk, m.Epoch, m.Relocation)));
    }

    /// <summary>SiteActor.Remove: forget durably, stop serving, delete the image (the disk actor's journal stays).</summary>
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

    /// <summary>A read of the peer export (another site's fetcher): served by the owned disk whatever its phase
    /// (the site's own image, or the complete relocating disk of a disk that arrived); null when this site does
    /// not serve the disk that way (no such export: the NBD request fails).</summary>
    public int[]? ServePeerRead(string disk, long first, long count)
    {
        if (!Up || !Owned.TryGetValue(disk, out var owned)) return null;
        var data = new int[count];
        for (long i = 0; i < count; i++) data[i] = owned.Image.Volatile[first + i];
        return data;
    }

    /// <summary>Whether every write the guest makes here from now on reaches <paramref name="destination"/> (as an
    /// invalidation or in the final dirty set): outgoing to it by that relocation, or fenced (no more writes).</summary>
    public bool Tracks(string disk, string destination, string relocation) =>
        State.TryGet(disk, out var d) && ((d.Phase == SiteDisk.Outgoing && d.Peer == destination && d.Relocation == relocation && Owned.TryGetValue(disk, out var o) && o.Tracking)
                                          || d.Phase == SiteDisk.Fenced);

    // ---------------- destination ----------------

    /// <summary>SiteActor.IsArriving: the disk arrives here by exactly this relocation.</summary>
    private bool IsArriving(string disk, string relocation, out DiskActorModel incoming)
    {
        incoming = null!;
        return State.TryGet(disk, out var d) && d.Phase == SiteDisk.Incoming && d.Relocation == relocation
               && relocation.Length > 0 && Incoming.TryGetValue(disk, out incoming!);
    }

    /// <summary>SiteActor.OnPrepareIncoming</summary>
    private void OnPrepareIncoming(PrepareIncoming m, Addr sender)
    {
        if (State.TryGet(m.Disk, out var existing))
        {
            if (existing.Phase == SiteDisk.Incoming && existing.Relocation == m.Relocation)
            {
                Reply(sender, new IncomingPrepared(m.Disk, m.Epoch, m.Relocation)); // a retry
                if (HandoverWanted.Contains(m.Disk)) TellCoordinator(new HandoverRequested(m.Disk, m.Relocation));
            }
            else
            {
                if (existing.Phase == SiteDisk.Incoming) sim.Stats.Hit(Paths.PrepareRefusedOtherCopy);
                Refuse(sender, $"disk '{m.Disk}' already exists on site {Name}");
            }
            return;
        }
        var path = ImagePathOf(Name, m.Disk);
        Images[path] = new Image(sim.O.Blocks, initial: 0); // File.Delete + RawImage.Create: empty, sparse
        if (m.Relocation.Length == 0) { Refuse(sender, "a relocation needs an id"); return; }
        if (sim.SiteOrNull(m.FromSite) is { } from && !(from.State.TryGet(m.Disk, out var fd) && fd.Phase == SiteDisk.Outgoing && fd.Peer == Name && fd.Relocation == m.Relocation))
            sim.Note($"{Name} prepares an incoming copy from {m.FromSite} for relocation {m.Relocation} while {m.FromSite} is not relocating it there by it");
        // The disk actor's journal key is fresh for every arrival (F12): a copy created again for a relocation this
        // site had before (a late PrepareIncoming, a round of old answers) never replays the earlier copy's journal.
        var journal = sim.NewJournal();
        if (_journalsOf.TryGetValue(m.Relocation, out var earlier) && earlier.Any(k => DiskJournals.TryGetValue(k, out var j) && j.Count > 0))
            sim.Stats.Hit(Paths.FreshJournal);
        if (DiskJournals.TryGetValue(JournalKey(m.Disk, journal), out var old) && old.Count > 0)
            sim.Note($"{Name} prepares an incoming copy of relocation {m.Relocation} over the journal of an earlier copy ({old.Count} events) with a fresh, empty image");
        Persist(new SiteEvents.IncomingAdded(m.Disk, m.Size, path, m.SourceUri, m.Epoch, m.FromSite, journal, m.Relocation), e =>
        {
            State.TryGet(e.Name, out var disk);
            if (!_journalsOf.TryGetValue(e.Relocation, out var keys)) _journalsOf[e.Relocation] = keys = [];
            keys.Add(JournalKey(e.Name, e.Journal));
            StartIncoming(disk!, m.Hybrid, m.Prefetch);
            Reply(sender, new IncomingPrepared(e.Name, e.Epoch, e.Relocation));
        });
    }

    /// <summary>For the checks: the journal keys of every copy this site created, by relocation.</summary>
    private readonly Dictionary<string, List<string>> _journalsOf = new(StringComparer.Ordinal);

    /// <summary>SiteActor.StartIncoming: the disk actor's persistence id.</summary>
    private string JournalKey(string disk, string journal) => $"disk-{disk}-{Name}-{journal}";

    /// <summary>SiteActor.StartIncoming: a fresh DiskState (not the owner), the disk actor recovers from its journal;
    /// the export's device is an OwnedDisk over its RelocatingDisk from the start.</summary>
    private void StartIncoming(SiteDisk disk, bool hybrid, bool prefetch)
    {
        var key = disk.Journal.Length > 0 ? JournalKey(disk.Name, disk.Journal) : $"disk-{disk.Name}-{Name}-e{disk.Epoch}";
        if (!DiskJournals.TryGetValue(key, out var journal)) DiskJournals[key] = journal = [];
        var actor = new DiskActorModel(sim, this, disk.Name, disk.Epoch, disk.Relocation, SiteOfUri(disk.SourceUri!), Images[disk.ImagePath], journal, prefetch);
        actor.Front = new OwnedModel(actor.Image, sim.O.Blocks, actor);
        Incoming[disk.Name] = actor;
        actor.BeginRecovery();
        if (!hybrid) actor.Tell(actor.PausePrefetch);
    }

    /// <summary>SiteActor.OnDropIncoming</summary>
    private void OnDropIncoming(DropIncoming m, Addr sender)
    {
        // Not (or no longer) arriving by this relocation: nothing of it to drop.
        if (!State.TryGet(m.Disk, out var disk) || disk.Phase != SiteDisk.Incoming || disk.Relocation != m.Relocation)
        { Reply(sender, new IncomingDropped(m.Disk, m.Epoch, m.Relocation)); return; }
        // Ownership lives in the disk's own journal: until it is replayed, "not owned" is not known.
        if (!Incoming.TryGetValue(m.Disk, out var d) || !d.State.Recovered || d.State.IsOwner)
        {
            sim.Stats.Hit(d?.State.IsOwner == true ? Paths.DropRefusedOwner : Paths.DropRefusedRecovering);
            Refuse(sender, $"disk '{m.Disk}' on site {Name} {(d?.State.IsOwner == true ? "is owned here" : "is still recovering")}: not dropped");
            return;
        }
        if (d.OwnedDurably)
            sim.Note($"{Name} drops a copy it owns (its journal says so, but its disk actor {(d.Recovering ? "still recovers" : "says otherwise")})");
        if (sim.SiteOrNull(disk.Peer) is { } source && source.State.TryGet(m.Disk, out var sd) && sd.Peer == Name && sd.Relocation == disk.Relocation
            && sd.Phase is SiteDisk.Fenced or SiteDisk.Outgoing)
            sim.Note($"{Name} drops the incoming copy of a live relocation ({source.Name} is {sd.Phase} for it by {sd.Relocation} at epoch {sd.Epoch})");
        Remove(disk, () => Reply(sender, new IncomingDropped(m.Disk, m.Epoch, m.Relocation)));
    }

    /// <summary>SiteActor: Command&lt;InvalidateAt&gt; (an Ask to the disk actor piped back to the source)</summary>
    private void OnInvalidateAt(InvalidateAt m, Addr sender)
    {
        if (!IsArriving(m.Disk, m.Relocation, out var d)) { Refuse(sender, $"no disk '{m.Disk}' arriving at site {Name} by relocation {m.Relocation}"); return; }
        int inc = Inc;
        d.Tell(() => d.OnInvalidate(m.Epoch, m.Blocks, r =>
        {
            if (!Up || Inc != inc) return;
            Reply(sender, r is DiskActorModel.Invalidated ? new InvalidatedAt(m.Disk, m.Epoch, m.Seq, m.Relocation) : new SiteProtocol.Refused($"invalidation refused: {r}"));
        }));
    }

    /// <summary>SiteActor: Command&lt;TakeOwnershipAt&gt;</summary>
    private void OnTakeOwnershipAt(TakeOwnershipAt m, Addr sender)
    {
        if (!IsArriving(m.Disk, m.Relocation, out var d)) { sim.Stats.Hit(Paths.TakeOwnershipRefused); Refuse(sender, $"no disk '{m.Disk}' arriving at site {Name} by relocation {m.Relocation}"); return; }
        if (m.NewEpoch != d.IncomingEpoch + 1) { sim.Stats.Hit(Paths.TakeOwnershipRefused); Refuse(sender, $"disk '{m.Disk}' arrives at epoch {d.IncomingEpoch}: ownership at {m.NewEpoch} refused"); return; }
        int inc = Inc;
        d.Tell(() => d.OnTakeOwnership(m.NewEpoch, m.FinalDirty, r =>
        {
            if (!Up || Inc != inc) return;
            Reply(sender, r is DiskActorModel.OwnershipConfirmed ? new OwnershipMoved(m.Disk, m.NewEpoch, m.Relocation) : new SiteProtocol.Refused($"ownership refused: {r}"));
        }));
        d.Tell(d.ResumePrefetch);
        HandoverWanted.Remove(m.Disk);
    }

    /// <summary>SiteActor: Command&lt;WriteHeldForHandover&gt; (from the event stream)</summary>
    public void OnWriteHeldForHandover(string disk)
    {
        if (!Incoming.ContainsKey(disk) || !State.TryGet(disk, out var d) || d.Phase != SiteDisk.Incoming) return;
        HandoverWanted.Add(disk);
        TellCoordinator(new HandoverRequested(disk, d.Relocation));
    }

    /// <summary>SiteActor: Command&lt;RelocationFinished&gt; (from the event stream): owned from now on, and movable
    /// on at once: the same device (an OwnedDisk over the complete relocating disk) joins the owned disks and is
    /// exported to other sites.</summary>
    public void OnRelocationFinished(string name)
    {
        if (!Incoming.ContainsKey(name) || !State.TryGet(name, out var disk) || disk.Phase != SiteDisk.Incoming) return;
        bool import = disk.Peer.Length == 0;
        Persist(new SiteEvents.DiskAdded(disk.Name, disk.Size, disk.ImagePath, import ? disk.Epoch : disk.Epoch + 1), e =>
        {
            Owned[e.Name] = Incoming[e.Name].Front; // _images[e.Name] = owned, and its peer export (ServePeerRead)
            sim.Stats.Hit(Paths.ArrivedJoinsOwned);
            if (!import) TellCoordinator(new RelocationDone(e.Name, e.Epoch, disk.Relocation));
        });
    }

    // ---------------- the guest's NBD connection to this site ----------------

    /// <summary>The NBD export the guest talks to: the OwnedDisk over the site's image, or over the RelocatingDisk
    /// of its disk actor (the same object before and after the arrival); null when the disk is not exported here.</summary>
    public OwnedModel? ExportOf(string disk) =>
        !Up ? null : Owned.TryGetValue(disk, out var o) ? o : Incoming.TryGetValue(disk, out var a) ? a.Front : null;

    // ---------------- what the checks look at ----------------

    /// <summary>The epoch at which this site would acknowledge a guest write now; null if it would not.</summary>
    public long? AcceptsWritesAt(string disk)
    {
        if (!Up) return null;
        if (Owned.TryGetValue(disk, out var o))
            return o.Fenced || !State.TryGet(disk, out var d) ? null : d.Epoch;
        if (Incoming.TryGetValue(disk, out var a)) return a.Front.Fenced ? null : a.OwnerEpoch;
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
            sb.Append($"{d.Name}:{d.Phase}@{d.Epoch}>{d.Peer}#{d.Relocation} {Sim.Runs(d.FinalDirty ?? [])} ");
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
            sb.Append($" {d.Phase} e{d.Epoch}{(d.Peer.Length > 0 ? " peer " + d.Peer : "")}{(d.Relocation.Length > 0 ? " #" + d.Relocation : "")}");
            if (Owned.TryGetValue(d.Name, out var o)) sb.Append($" {o.Describe()}v[{string.Join(",", o.Image.Volatile)}]");
            if (Incoming.TryGetValue(d.Name, out var a) && d.Phase == SiteDisk.Incoming) sb.Append(' ').Append(a.Describe());
            if (Outgoing.TryGetValue(d.Name, out var og)) sb.Append($" unacked {og.Unacked.Count}");
            if (Fencing.Contains(d.Name)) sb.Append(" fencing");
        }
        return sb.ToString();
    }
}
