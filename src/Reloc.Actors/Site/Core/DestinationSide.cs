using static Reloc.Actors.Coordinator.RelocationProtocol;
using P = Reloc.Actors.Disk.VirtualDiskProtocol;

namespace Reloc.Actors.Site.Core;

/// <summary>
/// The site as a relocation's destination: serve the disk at once through a disk actor (reads pass through to
/// the source until this site owns the disk), apply the source's invalidations, take ownership at the new epoch,
/// and report completion. Every step names its relocation: a step of another attempt is refused.
/// </summary>
/// <param name="blockSize">The block size of the arriving disks' block maps (reported ranges are converted to it).</param>
internal sealed class DestinationSide(SiteContext c, int blockSize)
{
    /// <summary>The disk arrives here by exactly this relocation, and its disk actor runs.</summary>
    private bool IsArriving(string disk, string relocation, out SiteDisk d) =>
        c.State.TryGet(disk, out d!) && d.Phase == DiskPhase.Incoming && d.Relocation == relocation && relocation.Length > 0
        && c.Served.GetValueOrDefault(disk) == Serving.Arrival;

    public void OnPrepareIncoming(PrepareIncoming m, object replyTo)
    {
        var invalid = SiteState.ValidateName(m.Disk);
        if (invalid is not null) { c.Refuse(replyTo, invalid); return; }
        if (c.State.TryGet(m.Disk, out var existing))
        {
            if (existing.Phase == DiskPhase.Incoming && existing.Relocation == m.Relocation)
            {
                c.Reply(replyTo, new IncomingPrepared(m.Disk, m.Epoch, m.Relocation)); // a retry
                if (c.HandoverWanted.Contains(m.Disk)) c.Emit(new SiteDecision.TellCoordinator(new HandoverRequested(m.Disk, m.Relocation)));
            }
            else c.Refuse(replyTo, $"disk '{m.Disk}' already exists on site {c.Site}", existing.Phase == DiskPhase.Incoming ? SiteEvent.PrepareRefusedOtherCopy : SiteEvent.None);
            return;
        }
        if (m.Relocation.Length == 0) { c.Refuse(replyTo, "a relocation needs an id"); return; }
        if (c.Creating.TryGetValue(m.Disk, out var pending))
        {
            // The same step again while its image is created: the first one's answer will come.
            if (pending.Request is PrepareIncoming p && p.Relocation == m.Relocation) return;
            c.Refuse(replyTo, $"disk '{m.Disk}' is being created on site {c.Site}");
            return;
        }
        var path = c.ImagePathOf(m.Disk);
        c.Creating[m.Disk] = new PendingImage(ImagePurpose.Arrival, m, replyTo, path);
        c.Emit(new SiteDecision.CreateImage(m.Disk, path, m.Size));
    }

    public void OnImageCreated(PendingImage pending, SiteInput.ImageCreated created)
    {
        var m = (PrepareIncoming)pending.Request;
        // The disk actor's journal key is fresh for every arrival: a copy created again for a relocation this site
        // had before never replays the earlier copy's journal over a new, empty image.
        c.Persist(new SiteEvents.IncomingAdded(m.Disk, created.Size, pending.Path, m.SourceUri, m.Epoch, m.FromSite, c.NewId(), m.Relocation,
            new ArrivalOptions(m.Hybrid, m.RateBytesPerSecond, m.Prefetch)));
        c.State.TryGet(m.Disk, out var disk);
        c.Serve(disk);
        c.Reply(pending.ReplyTo, new IncomingPrepared(m.Disk, m.Epoch, m.Relocation));
    }

    public void OnImageFailed(PendingImage pending, SiteInput.ImageFailed f)
    {
        // A full or read-only disk refuses this relocation; it must not restart the site (and its other disks).
        var m = (PrepareIncoming)pending.Request;
        c.Log(CoreLogLevel.Error, $"cannot create the image of arriving disk {m.Disk} at {pending.Path}: {f.Reason}");
        c.Refuse(pending.ReplyTo, $"site {c.Site} cannot create disk '{m.Disk}': {f.Reason}");
    }

    public void OnDropIncoming(DropIncoming m, object replyTo, ArrivalFacts? arrival)
    {
        var dropped = new IncomingDropped(m.Disk, m.Epoch, m.Relocation);
        // Not (or no longer) arriving by this relocation: nothing of it to drop.
        if (!c.State.TryGet(m.Disk, out var disk) || disk.Phase != DiskPhase.Incoming || disk.Relocation != m.Relocation)
        { c.Reply(replyTo, dropped); return; }
        // Ownership lives in the disk's own journal: until it is replayed, "not owned" is not known.
        if (c.Served.GetValueOrDefault(m.Disk) != Serving.Arrival || arrival is not { Recovered: true, IsOwner: false })
        {
            bool owner = arrival?.IsOwner == true;
            c.Refuse(replyTo, $"disk '{m.Disk}' on site {c.Site} {(owner ? "is owned here" : "is still recovering")}: not dropped",
                owner ? SiteEvent.DropRefusedOwner : SiteEvent.DropRefusedRecovering);
            return;
        }
        c.Remove(disk, replyTo, dropped);
    }

    public void OnInvalidateAt(InvalidateAt m, object replyTo)
    {
        if (!IsArriving(m.Disk, m.Relocation, out _)) { c.Refuse(replyTo, $"no disk '{m.Disk}' arriving at site {c.Site} by relocation {m.Relocation}"); return; }
        c.Emit(new SiteDecision.AskArrival(m.Disk, new P.Invalidate(m.Epoch, SiteContext.ToLocalBlocks(m.Blocks, blockSize)), replyTo,
            new InvalidatedAt(m.Disk, m.Epoch, m.Seq, m.Relocation)));
    }

    public void OnTakeOwnershipAt(TakeOwnershipAt m, object replyTo)
    {
        if (!IsArriving(m.Disk, m.Relocation, out var d))
        { c.Refuse(replyTo, $"no disk '{m.Disk}' arriving at site {c.Site} by relocation {m.Relocation}", SiteEvent.TakeOwnershipRefused); return; }
        if (m.NewEpoch != d.Epoch + 1)
        { c.Refuse(replyTo, $"disk '{m.Disk}' arrives at epoch {d.Epoch}: ownership at {m.NewEpoch} refused", SiteEvent.TakeOwnershipRefused); return; }
        c.Emit(new SiteDecision.AskArrival(m.Disk, new P.TakeOwnership(m.NewEpoch, SiteContext.ToLocalBlocks(m.FinalDirty, blockSize)), replyTo,
            new OwnershipMoved(m.Disk, m.NewEpoch, m.Relocation)));
        c.Emit(new SiteDecision.TellArrival(m.Disk, new P.ResumePrefetch()));
        c.HandoverWanted.Remove(m.Disk);
    }

    /// <summary>The operator's rate cap: kept in the registry, so the arrival keeps it across a restart.</summary>
    public void OnSetRate(SetRate m)
    {
        if (!c.State.TryGet(m.Disk, out var d) || d.Phase != DiskPhase.Incoming) return;
        if (d.Options?.Rate != m.RateBytesPerSecond) c.Persist(new SiteEvents.ArrivalRateSet(m.Disk, m.RateBytesPerSecond));
        if (c.Served.GetValueOrDefault(m.Disk) == Serving.Arrival) c.Emit(new SiteDecision.TellArrival(m.Disk, new P.SetRate(m.RateBytesPerSecond)));
    }

    public void OnWriteHeld(string disk)
    {
        if (c.Served.GetValueOrDefault(disk) != Serving.Arrival || !c.State.TryGet(disk, out var d) || d.Phase != DiskPhase.Incoming) return;
        c.HandoverWanted.Add(disk);
        c.Emit(new SiteDecision.TellCoordinator(new HandoverRequested(disk, d.Relocation)));
    }

    /// <summary>The copy cannot go on here (out of space): the coordinator decides (it cancels a relocation before its
    /// handover). An import has no coordinator: the log says it, and it goes on when room frees.</summary>
    public void OnArrivalStalled(SiteInput.ArrivalStalled s)
    {
        if (c.Served.GetValueOrDefault(s.Disk) != Serving.Arrival || !c.State.TryGet(s.Disk, out var d) || d.Phase != DiskPhase.Incoming) return;
        if (d.Peer.Length == 0) { c.Log(CoreLogLevel.Warning, $"import of disk {s.Disk} stalled: {s.Reason}"); return; }
        c.Emit(new SiteDecision.TellCoordinator(new RelocationStalled(s.Disk, d.Relocation, c.Site, s.Reason)));
    }

    /// <summary>Owned from now on, and movable on at once: the same device (guests stay connected) joins the owned
    /// disks and is exported to other sites; the arrival's journal is no longer needed.</summary>
    public void OnArrivalFinished(string name)
    {
        if (c.Served.GetValueOrDefault(name) != Serving.Arrival || !c.State.TryGet(name, out var disk) || disk.Phase != DiskPhase.Incoming) return;
        bool import = disk.Peer.Length == 0;
        var journal = c.ArrivalJournalOf(disk);
        c.Persist(new SiteEvents.DiskAdded(disk.Name, disk.Size, disk.ImagePath, import ? disk.Epoch : disk.Epoch + 1));
        c.Served[name] = Serving.Arrived;
        c.HandoverWanted.Remove(name);
        c.Emit(new SiteDecision.ArrivalJoinsOwned(name));
        c.Emit(new SiteDecision.DeleteArrivalJournal(name, journal));
        if (!import) c.Emit(new SiteDecision.TellCoordinator(new RelocationDone(name, disk.Epoch + 1, disk.Relocation)));
        c.Log(import ? CoreLogLevel.Info : CoreLogLevel.Debug,
            import ? $"disk {name} imported from {disk.SourceUri}" : $"disk {name} arrived at epoch {disk.Epoch + 1}", SiteEvent.ArrivedJoinsOwned);
    }
}
