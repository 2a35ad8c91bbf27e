using System.Text;
using Reloc.Actors.Site;
using Reloc.Actors.Site.Core;
using Reloc.Storage;
using static Reloc.Actors.Coordinator.RelocationProtocol;
using P = Reloc.Actors.Disk.VirtualDiskProtocol;

namespace Reloc.Actors.Tests.Model;

/// <summary>
/// One site node: the simulation's shell of the production <see cref="SiteCore"/> (as <see cref="SiteActor"/> is
/// the actor's). Messages in as inputs; the core's events go to the journal before anything else it decided; the
/// rest is carried out over the simulated network, images and disk actors. What survives a crash: the site
/// journal, every disk actor's journal, and the images' durable content; the core and the devices do not.
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
    /// <summary>The disk actors' journals by persistence id.</summary>
    public Dictionary<string, List<object>> DiskJournals { get; } = new(StringComparer.Ordinal);

    // ---- volatile ----
    private SiteCore _core = null!;
    /// <summary>The devices of the disks served as owned (SiteDevices._owned).</summary>
    public Dictionary<string, ModelDevice> Owned { get; } = new(StringComparer.Ordinal);
    /// <summary>The disk actors of arriving disks (SiteDevices._arrivals).</summary>
    public Dictionary<string, DiskActorModel> Incoming { get; } = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _timers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _clientsSeen = new(StringComparer.Ordinal);
    /// <summary>For the checks: the journal keys of every copy this site created, by relocation.</summary>
    private readonly Dictionary<string, List<string>> _journalsOf = new(StringComparer.Ordinal);

    public SiteState State => _core.State;

    public static string ImagePathOf(string site, string disk) => Path.Combine(site, disk + ".img");
    public static string UriOf(string site, string disk) => $"nbd://{site}:10809/{disk}";
    public static string SiteOfUri(string uri) => uri["nbd://".Length..uri.IndexOf(':', "nbd://".Length)];

    private SiteCore NewCore() => new(Name, Name, $"nbd://{Name}:10809", Sim.BlockSize, sim.NewJournal);

    public void Boot()
    {
        Up = true;
        Inc = 1;
        _core = NewCore();
        Run(new SiteInput.Started());
    }

    /// <summary>The operator's first disk, as a create leaves it: the image (version 1 where it holds data, 0 in its
    /// holes, durable), then the event; served like a disk recovered from the journal.</summary>
    public void CreateInitialDisk(string disk, int blocks)
    {
        var path = ImagePathOf(Name, disk);
        Images[path] = new Image(Enumerable.Range(0, blocks).Select(sim.O.InitialVersion).ToArray());
        var added = new SiteEvents.DiskAdded(disk, blocks * (long)Sim.BlockSize, path, 1);
        _journal.Add(added);
        _core = NewCore();
        foreach (var e in _journal) _core.Recover(e);
        Run(new SiteInput.Started());
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
        Incoming.Clear();
        _timers.Clear();
        _clientsSeen.Clear();
        foreach (var image in Images.Values) image.Crash();
        sim.Guest.OnSiteCrash(Name);
    }

    /// <summary>Recovery: a new core replays the journal, then serves every disk.</summary>
    public void Restart()
    {
        Up = true;
        sim.Trace($"site {Name} restarts");
        _core = NewCore();
        foreach (var e in _journal) _core.Recover(e);
        Run(new SiteInput.Started());
    }

    // ---------------- the shell ----------------

    private void Run(SiteInput input)
    {
        var decisions = _core.Handle(input);
        foreach (var p in decisions.OfType<SiteDecision.Persist>())
        {
            _journal.Add(p.Event);
            if (sim.Tracing) sim.Trace($"  {Name} persists {Sim.Fmt(p.Event)}");
        }
        foreach (var d in decisions) if (d is not SiteDecision.Persist) Execute(d);
    }

    /// <summary>An I/O result back through the mailbox of this incarnation.</summary>
    private void Later(SiteInput input)
    {
        int inc = Inc;
        sim.Local(Name, "site", () => { if (Up && Inc == inc) Run(input); });
    }

    private void Execute(SiteDecision decision)
    {
        switch (decision)
        {
            case SiteDecision.Reply r: sim.Reply(Self, (Addr)r.To, r.Message); break;
            case SiteDecision.SendToSite s: sim.ToSite(Name, s.Site, s.Message, Self); break;
            case SiteDecision.TellCoordinator t: sim.ToCoordinator(this, t.Message); break;
            case SiteDecision.CreateImage c:
                Images[c.Path] = new Image(sim.O.Blocks, initial: 0); // an empty, sparse file, durable at once
                Later(new SiteInput.ImageCreated(c.Disk, c.Size));
                break;
            case SiteDecision.ServeOwned s:
                var owned = new ModelDevice(Images[s.Disk.ImagePath], s.Disk.Size);
                if (s.Fenced) owned.Fence(() => { });
                Owned[s.Disk.Name] = owned;
                break;
            case SiteDecision.ServeArrival s: ServeArrival(s); break;
            case SiteDecision.ArrivalJoinsOwned j:
                Owned[j.Disk] = Incoming[j.Disk].Front;
                break;
            case SiteDecision.StopServing s:
                Owned.Remove(s.Disk);
                if (Incoming.Remove(s.Disk, out var arrival)) arrival.Stop();
                if (s.ArrivalJournal is not null) DiskJournals.Remove(s.ArrivalJournal);
                Images.Remove(s.ImagePath);
                sim.Guest.OnExportGone(Name);
                break;
            case SiteDecision.DeleteArrivalJournal d:
                DiskJournals.Remove(d.PersistenceId);
                break;
            case SiteDecision.Track t: Owned.GetValueOrDefault(t.Disk)?.Tracker.StartTracking(t.BlockSize, t.Everything); break;
            case SiteDecision.Untrack u: Owned.GetValueOrDefault(u.Disk)?.Tracker.StopTracking(); break;
            case SiteDecision.Fence f: Fence(f.Disk); break;
            case SiteDecision.Unfence u: Owned.GetValueOrDefault(u.Disk)?.Unfence(); break;
            case SiteDecision.StartStream s: StartStream(s.Disk); break;
            case SiteDecision.StopStream s: _timers.Remove("stream-" + s.Disk); break;
            case SiteDecision.AskArrival a: AskArrival(a); break;
            case SiteDecision.TellArrival { Message: P.ResumePrefetch } t:
                if (Incoming.TryGetValue(t.Disk, out var resumed)) resumed.Tell(resumed.ResumePrefetch);
                break;
            case SiteDecision.TellArrival: break; // a rate: the model copies at no rate
            case SiteDecision.Log l: OnEvent(l.Event, l.Text); break;
            default: throw new InvalidOperationException($"site {Name} decided {decision}");
        }
    }

    private void OnEvent(SiteEvent e, string text)
    {
        if (sim.Tracing) sim.Trace($"  {Name}: {text}");
        switch (e)
        {
            case SiteEvent.RefusedNotServed: sim.Stats.RefusedArrived++; break; // a registered disk not served (F1)
            case SiteEvent.PrepareRefusedOtherCopy: sim.Stats.Hit(Paths.PrepareRefusedOtherCopy); break;
            case SiteEvent.TakeOwnershipRefused: sim.Stats.Hit(Paths.TakeOwnershipRefused); break;
            case SiteEvent.DropRefusedRecovering: sim.Stats.Hit(Paths.DropRefusedRecovering); break;
            case SiteEvent.DropRefusedOwner: sim.Stats.Hit(Paths.DropRefusedOwner); break;
            case SiteEvent.StopRefusedFencing: sim.Stats.Hit(Paths.StopRefusedFencing); break;
            case SiteEvent.StopRefusedFenced: sim.Stats.Hit(Paths.StopRefusedFenced); break;
            case SiteEvent.ArrivedJoinsOwned: sim.Stats.Hit(Paths.ArrivedJoinsOwned); break;
            case SiteEvent.EndedAttemptRefused: sim.Stats.Hit(Paths.EndedAttemptRefused); break;
        }
    }

    /// <summary>SiteDevices.ServeArrival: a fresh DiskState (not the owner); the disk actor recovers from its journal;
    /// the export's device is the owned-disk layer over its relocating disk from the start.</summary>
    private void ServeArrival(SiteDecision.ServeArrival s)
    {
        var disk = s.Disk;
        if (_journalsOf.TryGetValue(disk.Relocation, out var earlier) && earlier.Any(k => k != s.PersistenceId))
            sim.Stats.Hit(Paths.FreshJournal);
        if (!_journalsOf.TryGetValue(disk.Relocation, out var keys)) _journalsOf[disk.Relocation] = keys = [];
        if (!keys.Contains(s.PersistenceId)) keys.Add(s.PersistenceId);
        if (!DiskJournals.TryGetValue(s.PersistenceId, out var journal)) DiskJournals[s.PersistenceId] = journal = [];
        var actor = new DiskActorModel(sim, this, disk.Name, disk.Epoch, disk.Relocation, SiteOfUri(disk.SourceUri!), Images[disk.ImagePath], journal, s.Options.Prefetch);
        actor.Front = new ModelDevice(actor.Image, disk.Size, actor);
        Incoming[disk.Name] = actor;
        actor.BeginRecovery();
        if (!s.Options.Hybrid) actor.Tell(actor.PausePrefetch);
    }

    /// <summary>SiteActor: OwnedDisk.FenceAsync, then its FlushAsync, drained and fed back as FenceDone.</summary>
    private void Fence(string disk)
    {
        if (!Owned.TryGetValue(disk, out var owned)) { Later(new SiteInput.FenceDone(disk, "the disk is not served", [])); return; }
        int inc = Inc;
        void Done(string? error) => sim.Local(Name, "site", () =>
        {
            if (Up && Inc == inc && _core.IsFencing(disk) && ReferenceEquals(Owned.GetValueOrDefault(disk), owned))
                Run(new SiteInput.FenceDone(disk, error, error is null ? owned.Tracker.DrainDirty() : []));
        });
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

    /// <summary>Timers.StartPeriodicTimer: replaces a timer of the same key; gone with the incarnation. A tick
    /// drains the device's dirty blocks into the core.</summary>
    private void StartStream(string disk)
    {
        var key = "stream-" + disk;
        int generation = _timers.GetValueOrDefault(key) + 1;
        _timers[key] = generation;
        int inc = Inc;
        void Fire()
        {
            if (!Up || Inc != inc || _timers.GetValueOrDefault(key) != generation) return;
            sim.After(Sim.StreamTickMs, Fire);
            Run(new SiteInput.StreamTick(disk, Owned.GetValueOrDefault(disk)?.Tracker.DrainDirty() ?? [], At(sim.Now)));
        }
        sim.After(Sim.StreamTickMs, Fire);
    }

    /// <summary>The ask to the disk actor, piped to the step's sender.</summary>
    private void AskArrival(SiteDecision.AskArrival a)
    {
        if (!Incoming.TryGetValue(a.Disk, out var d)) return;
        int inc = Inc;
        void Answer(object r)
        {
            if (!Up || Inc != inc) return;
            sim.Reply(Self, (Addr)a.ReplyTo, r is P.Invalidated or P.OwnershipConfirmed ? a.Answer : new SiteProtocol.Refused($"{a.Request.GetType().Name} refused: {r}"));
        }
        switch (a.Request)
        {
            case P.Invalidate i: d.Tell(() => d.OnInvalidate(i.Epoch, i.Blocks, Answer)); break;
            case P.TakeOwnership t: d.Tell(() => d.OnTakeOwnership(t.Epoch, t.FinalDirty, Answer)); break;
            default: throw new InvalidOperationException($"site {Name} asks its disk actor {a.Request}");
        }
    }

    private static DateTime At(long ms) => DateTime.UnixEpoch.AddMilliseconds(ms);

    private ArrivalFacts? FactsOf(string disk) =>
        Incoming.TryGetValue(disk, out var a) ? new ArrivalFacts(a.State.Recovered, a.State.IsOwner, a.State.Map.LocalBytes) : null;

    // ---------------- messages ----------------

    /// <summary>A message from another node (or this one) to the site actor.</summary>
    public void Receive(object m, Addr sender)
    {
        if (!Up) return;
        if (m is SiteProtocol.ListDisks)
        {
            sim.Reply(Self, sender, ListNow()!);
            return;
        }
        long? messageBase = EpochBase(m);
        long? receiverBase = messageBase is null ? null : BaseEpoch(Sim.DiskName);
        bool stale = messageBase < receiverBase;
        // A site on a relocation (outgoing, fenced or incoming by it) must not change on another one's step or answer.
        var relocation = RelocationOf(m);
        string? current = relocation is null ? null : State.TryGet(DiskOf(m), out var d) && d.Relocation.Length > 0 ? d.Relocation : null;
        bool foreign = current is not null && current != relocation;
        string before = stale || foreign ? Fingerprint() : "";
        var journalBefore = _journal.Count;
        Observe(m);
        var disk = DiskOf(m);
        // SiteActor.Message: the guest count now, before the step.
        if (m is StartOutgoing && GuestClientsOf(disk) is var n && n != _core.ClientsOf(disk)) Run(new SiteInput.ClientsChanged(disk, n));
        Run(new SiteInput.Message(m, sender, At(sim.Now), disk.Length > 0 ? FactsOf(disk) : null));
        if (stale) sim.CheckStale($"site {Name}", m, messageBase!.Value, receiverBase!.Value, before, Fingerprint());
        if (foreign) sim.CheckForeign($"site {Name}", m, relocation!, current!, before, Fingerprint());
        if (_journal.Count > journalBefore && RelocationOf(m) is { Length: > 0 } r && sim.EndedRelocations.Contains(r) && _journal[^1] is not SiteEvents.OutgoingEnded)
            sim.Note($"site {Name} persists {_journal[^1].GetType().Name} on a {m.GetType().Name} of relocation {r}, which a coordinator already ended");
    }

    /// <summary>What the model knows across sites and the core cannot: facts that explain a violation.</summary>
    private void Observe(object m)
    {
        switch (m)
        {
            case PrepareIncoming p when !State.TryGet(p.Disk, out _) && sim.SiteOrNull(p.FromSite) is { } from
                                        && !(from.State.TryGet(p.Disk, out var fd) && fd.Phase == DiskPhase.Outgoing && fd.Peer == Name && fd.Relocation == p.Relocation):
                sim.Note($"{Name} prepares an incoming copy from {p.FromSite} for relocation {p.Relocation} while {p.FromSite} is not relocating it there by it");
                break;
            case DropIncoming x when State.TryGet(x.Disk, out var disk) && disk.Phase == DiskPhase.Incoming && disk.Relocation == x.Relocation:
                if (Incoming.TryGetValue(x.Disk, out var a) && a.OwnedDurably && a.State.Recovered && !a.State.IsOwner)
                    sim.Note($"{Name} drops a copy it owns (its journal says so, but its disk actor says otherwise)");
                if (sim.SiteOrNull(disk.Peer) is { } source && source.State.TryGet(x.Disk, out var sd) && sd.Peer == Name && sd.Relocation == disk.Relocation
                    && sd.Phase is DiskPhase.Fenced or DiskPhase.Outgoing && Incoming.TryGetValue(x.Disk, out var b) && b.State is { Recovered: true, IsOwner: false })
                    sim.Note($"{Name} drops the incoming copy of a live relocation ({source.Name} is {sd.Phase} for it by {sd.Relocation} at epoch {sd.Epoch})");
                break;
        }
    }

    /// <summary>The disk actor published WriteHeldForHandover (the event stream to the site actor).</summary>
    public void OnWriteHeldForHandover(string disk) => Run(new SiteInput.WriteHeld(disk));

    /// <summary>The disk actor published RelocationFinished.</summary>
    public void OnRelocationFinished(string disk) => Run(new SiteInput.ArrivalFinished(disk));

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
        !State.TryGet(disk, out var d) ? null : d.Phase == DiskPhase.Fenced ? d.Epoch - 1 : d.Epoch;

    /// <summary>What ListDisks answers now (SiteActor's query over the core).</summary>
    public SiteProtocol.DiskList? ListNow() =>
        Up ? new SiteProtocol.DiskList(Name, State.Disks.OrderBy(d => d.Name, StringComparer.Ordinal).Select(d => _core.Info(d, FactsOf(d.Name))).ToList()) : null;

    private bool HasExport(string disk) => Owned.ContainsKey(disk) || Incoming.ContainsKey(disk);

    /// <summary>Guest connections to the disk's export (not the peer export).</summary>
    public int GuestClientsOf(string disk) => Up && HasExport(disk) && sim.Guest.Connected.Contains(Name) ? 1 : 0;

    /// <summary>NbdExport.Clients.Changed → ClientsChanged, polled after every event.</summary>
    public void PollClients()
    {
        if (!Up) return;
        foreach (var disk in Owned.Keys.Concat(Incoming.Keys).Distinct().ToList())
        {
            int n = GuestClientsOf(disk);
            if (_clientsSeen.GetValueOrDefault(disk) == n) continue;
            _clientsSeen[disk] = n;
            int inc = Inc;
            sim.Local(Name, "site", () => { if (Up && Inc == inc) Run(new SiteInput.ClientsChanged(disk, GuestClientsOf(disk))); });
        }
    }

    // ---------------- the peer export (another site's fetchers) ----------------

    /// <summary>A read of the peer export: served by the owned device whatever its phase; null when this site does
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
        State.TryGet(disk, out var d) && ((d.Phase == DiskPhase.Outgoing && d.Peer == destination && d.Relocation == relocation
                                           && Owned.TryGetValue(disk, out var o) && o.Tracker.IsTracking)
                                          || d.Phase == DiskPhase.Fenced);

    /// <summary>The export the guest talks to: the owned device, or the arriving disk's (the same object before and
    /// after the arrival); null when the disk is not exported here.</summary>
    public ModelDevice? ExportOf(string disk) =>
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
    public bool Quiet => Up && State.Disks.All(d => d.Phase == DiskPhase.Owned) && Incoming.Values.All(a => a.Settled);

    public string Fingerprint()
    {
        var sb = new StringBuilder();
        foreach (var d in State.Disks.OrderBy(d => d.Name))
            sb.Append($"{d.Name}:{d.Phase}@{d.Epoch}>{d.Peer}#{d.Relocation} {Sim.Runs(d.FinalDirty ?? [])} ");
        foreach (var (n, o) in Owned) sb.Append($"owned {n} {o.Tracker.Describe()}");
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
            if (Owned.TryGetValue(d.Name, out var o)) sb.Append($" {o.Tracker.Describe()}v[{string.Join(",", o.Image.Volatile)}]");
            if (Incoming.TryGetValue(d.Name, out var a) && d.Phase == DiskPhase.Incoming) sb.Append(' ').Append(a.Describe());
            if (_core.UnackedOf(d.Name) is > 0 and var unacked) sb.Append($" unacked {unacked}");
            if (_core.IsFencing(d.Name)) sb.Append(" fencing");
        }
        return sb.ToString();
    }
}

/// <summary>
/// An NBD export's device at a site: the owned-disk layer (the real <see cref="WriteTracker"/>: tracking and the
/// fence) over the site's image, or over an arriving disk's relocating disk (<see cref="Device"/>). The fence
/// completes once the writes admitted before it are done, as OwnedDisk.FenceAsync does.
/// </summary>
internal sealed class ModelDevice(Image image, long size, DiskActorModel? device = null)
{
    private readonly List<Action> _drained = [];

    public Image Image { get; } = image;
    /// <summary>null: the image itself; else the arriving disk (its disk actor) the requests go through.</summary>
    public DiskActorModel? Device { get; } = device;
    public WriteTracker Tracker { get; } = new(size);
    public bool Fenced => Tracker.IsFenced;

    public bool Enter() => Tracker.TryEnter();

    public void Exit(int block)
    {
        if (!Tracker.Exit(block * (long)Sim.BlockSize, Sim.BlockSize)) return;
        var drained = _drained.ToList();
        _drained.Clear();
        foreach (var d in drained) d();
    }

    /// <summary>A write straight to the image: refused once fenced.</summary>
    public bool Write(int block, int version)
    {
        if (!Enter()) return false;
        Image.Volatile[block] = version;
        Exit(block);
        return true;
    }

    public void Fence(Action drained)
    {
        if (Tracker.Fence()) drained();
        else _drained.Add(drained);
    }

    public void Unfence()
    {
        Tracker.Unfence();
        _drained.Clear();
    }
}
