using Reloc.Storage;
using System.Text;
using Reloc.Actors.Site;
using static Reloc.Actors.Coordinator.RelocationProtocol;

namespace Reloc.Actors.Tests.Model;

/// <summary>
/// One site node: <see cref="SiteActor"/> (registry, source and destination steps) with the persisted
/// <see cref="SiteState"/> rebuilt from the real <see cref="SiteEvents"/> through <see cref="SiteState.Apply"/>.
/// What survives a crash: the site journal, every disk actor's journal, and the images' durable content.
/// Everything else (OwnedDisk tracking and fences, unacknowledged invalidations, fences under way, disk actors,
/// wanted handovers) is lost.
/// </summary>
internal sealed partial class SiteModel(Sim sim, string name)
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

    /// <summary>SiteActor.OnCreate + Prepared: the image first (version 1 where it holds data, 0 in its holes, durable), then the event.</summary>
    public void CreateInitialDisk(string disk, int blocks)
    {
        var path = ImagePathOf(Name, disk);
        Images[path] = new Image(Enumerable.Range(0, blocks).Select(sim.O.InitialVersion).ToArray());
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

    /// <summary>NBD BLOCK_STATUS on the peer export (RawImage's SEEK_HOLE): the runs of blocks within <paramref name="ranges"/>
    /// that read as zeros now (version 0: a hole never written, or punched); null when not served here.</summary>
    public List<(long First, long Count)>? ServePeerZeros(string disk, IReadOnlyList<(long First, long Count)> ranges)
    {
        if (!Up || !Owned.TryGetValue(disk, out var owned)) return null;
        var zeros = new BlockRuns();
        foreach (var (first, count) in ranges)
            for (long b = first; b < first + count; b++)
                if (owned.Image.Volatile[b] == 0) zeros.Add(b, 1);
        return zeros.Runs.ToList();
    }

    /// <summary>Whether every write the guest makes here from now on reaches <paramref name="destination"/> (as an
    /// invalidation or in the final dirty set): outgoing to it by that relocation, or fenced (no more writes).</summary>
    public bool Tracks(string disk, string destination, string relocation) =>
        State.TryGet(disk, out var d) && ((d.Phase == SiteDisk.Outgoing && d.Peer == destination && d.Relocation == relocation && Owned.TryGetValue(disk, out var o) && o.Tracking)
                                          || d.Phase == SiteDisk.Fenced);

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
