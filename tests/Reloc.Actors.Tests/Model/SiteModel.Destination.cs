using System.Text;
using Reloc.Actors.Disk;
using Reloc.Actors.Site;
using static Reloc.Actors.Coordinator.RelocationProtocol;

namespace Reloc.Actors.Tests.Model;

/// <summary>The destination side of <see cref="SiteModel"/> (mirrors SiteActor.Relocation, destination part).</summary>
internal sealed partial class SiteModel
{
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
            Reply(sender, r is VirtualDiskProtocol.Invalidated ? new InvalidatedAt(m.Disk, m.Epoch, m.Seq, m.Relocation) : new SiteProtocol.Refused($"invalidation refused: {r}"));
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
            Reply(sender, r is VirtualDiskProtocol.OwnershipConfirmed ? new OwnershipMoved(m.Disk, m.NewEpoch, m.Relocation) : new SiteProtocol.Refused($"ownership refused: {r}"));
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
}
