using Reloc.Storage;
using static Reloc.Actors.Coordinator.RelocationProtocol;

namespace Reloc.Actors.Site.Core;

/// <summary>
/// The site as a relocation's source: track the guest's writes (from before the destination copies anything),
/// stream them as invalidations to the destination, and at handover fence, flush and hand over the final dirty
/// set (including every invalidation not yet acknowledged, so none can be lost in flight), kept durably until
/// release. Every step is idempotent: a coordinator may send it again.
/// </summary>
internal sealed class SourceSide(SiteContext c)
{
    /// <summary>Most runs in one invalidation or final dirty set: 16 bytes each, so a message stays far below
    /// Akka.Remote's frame size (128 000 bytes by default; a larger message would be dropped).</summary>
    public const int MaxRuns = 4096;
    /// <summary>Past this many unacknowledged invalidations the destination is not answering: fold them into one.</summary>
    public const int MaxUnacked = 64;
    /// <summary>An unacknowledged invalidation is sent again after this (the destination may have restarted).</summary>
    public static readonly TimeSpan Resend = TimeSpan.FromSeconds(1);

    /// <summary>Sorted, merged runs; past <see cref="MaxRuns"/> the runs closest together are joined (more
    /// blocks invalidated than written is safe: they are copied again; fewer would not be).</summary>
    public static List<(long First, long Count)> Coarsen(IEnumerable<(long First, long Count)> runs)
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

    public void OnStartOutgoing(StartOutgoing m, object replyTo)
    {
        if (!c.State.TryGet(m.Disk, out var disk) || !c.ServesOwned(m.Disk))
        { c.Refuse(replyTo, $"no disk '{m.Disk}' on site {c.Site}", disk is null ? SiteEvent.None : SiteEvent.RefusedNotServed); return; }
        if (disk.Phase == DiskPhase.Outgoing && disk.Relocation == m.Relocation)
        { c.Reply(replyTo, new OutgoingStarted(m.Disk, m.Epoch, c.Clients.GetValueOrDefault(m.Disk), m.Relocation)); return; } // a retry
        if (disk.Phase != DiskPhase.Owned) { c.Refuse(replyTo, $"disk '{m.Disk}' is {disk.Phase.Name()} on site {c.Site}, not owned"); return; }
        if (m.Epoch != disk.Epoch) { c.Refuse(replyTo, $"disk '{m.Disk}' is at epoch {disk.Epoch}, not {m.Epoch}"); return; }
        if (m.ToSite == c.Site) { c.Refuse(replyTo, $"disk '{m.Disk}' is already at {m.ToSite}"); return; }
        // A late step of an attempt that was stopped (its coordinator replaced meanwhile) must not start it again.
        if (disk.Stopped?.Contains(m.Relocation) == true)
        { c.Refuse(replyTo, $"relocation {m.Relocation} of '{m.Disk}' was stopped on site {c.Site}; it is not started again", SiteEvent.EndedAttemptRefused); return; }
        c.Persist(new SiteEvents.OutgoingBegun(m.Disk, m.Epoch, m.ToSite, m.Relocation));
        Begin(m.Disk, m.ToSite, m.Epoch, m.BlockSize, m.Relocation, everything: false);
        c.Reply(replyTo, new OutgoingStarted(m.Disk, m.Epoch, c.Clients.GetValueOrDefault(m.Disk), m.Relocation));
    }

    /// <param name="everything">After a restart: which blocks were written but not yet reported is lost
    /// with the process, so every block counts as written (the destination copies them again).</param>
    public void Begin(string disk, string toSite, long epoch, int blockSize, string relocation, bool everything)
    {
        c.Emit(new SiteDecision.Track(disk, blockSize, everything));
        c.Outgoing[disk] = new OutgoingStream(disk, toSite, epoch, relocation);
        c.Emit(new SiteDecision.StartStream(disk));
    }

    private void End(string disk)
    {
        c.Outgoing.Remove(disk);
        c.Emit(new SiteDecision.StopStream(disk));
        if (c.ServesOwned(disk)) c.Emit(new SiteDecision.Untrack(disk));
    }

    public void OnStreamTick(SiteInput.StreamTick t)
    {
        if (!c.Outgoing.TryGetValue(t.Disk, out var o) || !c.ServesOwned(t.Disk)) return;
        foreach (var (seq, (runs, sent)) in o.Unacked.Where(u => t.Now - u.Value.Sent >= Resend).ToList())
        {
            o.Unacked[seq] = (runs, t.Now);
            c.Emit(new SiteDecision.SendToSite(o.ToSite, new InvalidateAt(o.Disk, o.Epoch, seq, runs, o.Relocation)));
        }
        if (t.Drained.Count == 0) return;
        IReadOnlyList<(long First, long Count)> fresh;
        if (o.Unacked.Count >= MaxUnacked)
        {
            // The destination is not answering: fold everything pending into one message (bounded memory, and
            // one resend a second instead of thousands).
            fresh = Coarsen(o.Unacked.Values.SelectMany(u => u.Runs).Concat(t.Drained));
            o.Unacked.Clear();
        }
        else fresh = Coarsen(t.Drained);
        o.Seq++;
        o.Unacked[o.Seq] = (fresh, t.Now);
        c.Emit(new SiteDecision.SendToSite(o.ToSite, new InvalidateAt(o.Disk, o.Epoch, o.Seq, fresh, o.Relocation)));
    }

    public void OnInvalidatedAt(InvalidatedAt m)
    {
        if (c.Outgoing.TryGetValue(m.Disk, out var o) && o.Relocation == m.Relocation) o.Unacked.Remove(m.Seq);
    }

    public void OnStopOutgoing(StopOutgoing m, object replyTo)
    {
        var stopped = new OutgoingStopped(m.Disk, m.Epoch, m.Relocation);
        if (!c.State.TryGet(m.Disk, out var disk)) { c.Reply(replyTo, stopped); return; } // nothing here to stop
        if (disk.Phase == DiskPhase.Owned)
        {
            // Not started (yet), or stopped already: remember the attempt, so its StartOutgoing, if still on its
            // way, cannot start it after the coordinator counted it stopped.
            if (m.Epoch == disk.Epoch && m.Relocation.Length > 0 && disk.Stopped?.Contains(m.Relocation) != true)
                c.Persist(new SiteEvents.OutgoingEnded(m.Disk, m.Relocation));
            c.Reply(replyTo, stopped);
            return;
        }
        if (disk.Phase == DiskPhase.Outgoing && disk.Relocation != m.Relocation) { c.Reply(replyTo, stopped); return; } // another attempt's
        if (disk.Phase != DiskPhase.Outgoing || c.Fencing.ContainsKey(m.Disk))
        {
            bool fencing = c.Fencing.ContainsKey(m.Disk);
            c.Refuse(replyTo, $"disk '{m.Disk}' is {(fencing ? "being fenced" : disk.Phase.Name())} on site {c.Site}: past the handover a relocation cannot be cancelled",
                fencing ? SiteEvent.StopRefusedFencing : disk.Phase == DiskPhase.Fenced ? SiteEvent.StopRefusedFenced : SiteEvent.None);
            return;
        }
        c.Persist(new SiteEvents.OutgoingEnded(m.Disk, m.Relocation));
        End(m.Disk);
        c.Reply(replyTo, stopped);
    }

    public void OnFence(Fence m, object replyTo)
    {
        if (!c.ServesOwned(m.Disk) || !c.State.TryGet(m.Disk, out var disk)) { c.Refuse(replyTo, $"no disk '{m.Disk}' on site {c.Site}"); return; }
        if (disk.Phase == DiskPhase.Fenced && disk.Epoch == m.NewEpoch && disk.Relocation == m.Relocation)
        { c.Reply(replyTo, new Fenced(m.Disk, m.NewEpoch, disk.FinalDirty ?? [], m.Relocation)); return; } // a retry: the same answer
        if (disk.Phase != DiskPhase.Outgoing || disk.Epoch + 1 != m.NewEpoch || disk.Relocation != m.Relocation)
        { c.Refuse(replyTo, $"cannot fence '{m.Disk}' at epoch {m.NewEpoch} for relocation {m.Relocation}: it is {disk.Phase.Name()} at epoch {disk.Epoch} on site {c.Site}"); return; }
        if (c.Fencing.ContainsKey(m.Disk)) return; // a fence is already under way: its answer will come
        c.Fencing[m.Disk] = (m, replyTo);
        c.Emit(new SiteDecision.Fence(m.Disk));
    }

    public void OnFenceDone(SiteInput.FenceDone done)
    {
        // Only the fence this incarnation started (after a restart the disk has a new, unfenced device: recording
        // it as fenced would leave two writers).
        if (!c.Fencing.Remove(done.Disk, out var fence)) return;
        var (m, replyTo) = fence;
        if (!c.ServesOwned(m.Disk) || !c.State.TryGet(m.Disk, out var disk) || disk.Phase != DiskPhase.Outgoing) return;
        if (done.Error is not null)
        {
            c.Emit(new SiteDecision.Unfence(m.Disk)); // still the owner: the guest may go on writing here
            c.Refuse(replyTo, $"fencing {m.Disk} failed: {done.Error}");
            return;
        }
        var final = new List<(long First, long Count)>(done.Drained);
        if (c.Outgoing.TryGetValue(m.Disk, out var o)) foreach (var (runs, _) in o.Unacked.Values) final.AddRange(runs);
        var coarse = Coarsen(final);
        c.Persist(new SiteEvents.DiskFenced(m.Disk, m.NewEpoch, disk.Peer, coarse, m.Relocation));
        End(m.Disk);
        c.Reply(replyTo, new Fenced(m.Disk, m.NewEpoch, coarse, m.Relocation));
    }

    /// <summary>A relocation of an owned disk waits in the coordinator's admission queue: remembered here (persisted), nothing
    /// else changes (the disk is served and written as before). A retry gets the same answer.</summary>
    public void OnQueue(QueueRelocation m, object replyTo)
    {
        QueueRefused Refused(string why) => new(m.Disk, m.Relocation, why);
        if (!c.State.TryGet(m.Disk, out var disk) || !c.ServesOwned(m.Disk)) { c.Reply(replyTo, Refused($"no disk '{m.Disk}' on site {c.Site}")); return; }
        if (disk.Queued?.Relocation == m.Relocation) { c.Reply(replyTo, new QueuedAt(m.Disk, disk.Queued.Ticket, m.Relocation)); return; }
        if (disk.Phase != DiskPhase.Owned || disk.Queued is not null)
        { c.Reply(replyTo, Refused($"disk '{m.Disk}' is {(disk.Queued is { } q ? $"already queued for {q.ToSite}" : disk.Phase.Name())} on site {c.Site}")); return; }
        if (m.Epoch != disk.Epoch) { c.Reply(replyTo, Refused($"disk '{m.Disk}' is at epoch {disk.Epoch}, not {m.Epoch}")); return; }
        if (m.ToSite == c.Site) { c.Reply(replyTo, Refused($"disk '{m.Disk}' is already at {m.ToSite}")); return; }
        if (disk.Stopped?.Contains(m.Relocation) == true) { c.Reply(replyTo, Refused($"relocation {m.Relocation} of '{m.Disk}' was stopped on site {c.Site}")); return; }
        c.Persist(new SiteEvents.RelocationQueued(m.Disk, new QueuedRelocation(m.ToSite, m.Ticket, m.Hybrid, m.RateBytesPerSecond, m.Prefetch, m.Relocation)));
        c.Reply(replyTo, new QueuedAt(m.Disk, m.Ticket, m.Relocation));
    }

    /// <summary>A queued relocation cancelled: out of the queue, and never started here (a retry, or one not queued here: done).</summary>
    public void OnUnqueue(Unqueue m, object replyTo)
    {
        if (c.State.TryGet(m.Disk, out var disk) && disk.Phase == DiskPhase.Owned && disk.Queued?.Relocation == m.Relocation)
            c.Persist(new SiteEvents.QueueLeft(m.Disk, m.Relocation));
        c.Reply(replyTo, new Unqueued(m.Disk, m.Relocation));
    }

    public void OnRelease(Release m, object replyTo)
    {
        var released = new Released(m.Disk, m.Epoch, m.Relocation);
        if (!c.State.TryGet(m.Disk, out var disk) || disk.Phase != DiskPhase.Fenced || disk.Epoch != m.Epoch || disk.Relocation != m.Relocation)
        { c.Reply(replyTo, released); return; } // already released (a retry)
        c.Remove(disk, replyTo, released);
    }
}
