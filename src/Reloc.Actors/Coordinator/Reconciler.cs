using Reloc.Actors.Site;
using static Reloc.Actors.Coordinator.RelocationProtocol;

namespace Reloc.Actors.Coordinator;

/// <summary>
/// Where each relocation stands, derived from the sites alone (pure; no actor system). The sites hold
/// the authoritative state: the source's phase (outgoing, fenced with its final dirty set) and the
/// destination's (incoming, writable after ownership moved, owned once complete). A coordinator that
/// lost its memory (fail-over) or a message (remoting does not retry) reads them back and resends the
/// one idempotent step that moves the relocation forward.
/// </summary>
public static class Reconciler
{
    /// <summary>Phases: starting (the source tracks writes) → preparing (the destination is created) →
    /// serving (both up, source owns) → fencing → transferring → postcopy (destination owns) → releasing;
    /// or cancelling (the source owns again, the destination is dropped).</summary>
    public const string Starting = "starting", Preparing = "preparing", Serving = "serving", Fencing = "fencing",
        Transferring = "transferring", Postcopy = "postcopy", Releasing = "releasing", Cancelling = "cancelling";

    /// <summary>A relocation as the sites show it, and the step that moves it on (null: nothing to send;
    /// the sites will report by themselves). <see cref="Trigger"/>: the handover trigger that holds now, if one does.
    /// <see cref="Relocation"/>: the attempt's id, as the sites persisted it.</summary>
    /// <param name="DropAt">With a <see cref="StopOutgoing"/> step: the site whose copy of that attempt is dropped once the
    /// source confirms it no longer sends it (a fenced source refuses, so a copy about to own the disk is never dropped).</param>
    /// <param name="SourceIdle">Serving, and the source has no guest (not a trigger by itself: see <see cref="CoordinatorCore.IdleRounds"/>).</param>
    public sealed record Derived(RelocationInfo Info, long Size, string SourceUri, object? Step, string? StepTo, HandoverTrigger? Trigger,
        string Relocation, string? Anomaly = null, string? DropAt = null, bool SourceIdle = false)
    {
        public bool Handover => Trigger is not null;
    }

    /// <summary>The handover trigger: the one rule for what a coordinator heard from the sites and what their lists
    /// show. <paramref name="sourceClients"/>: -1 if not known. <paramref name="idle"/>: the source has had no guest
    /// since it began tracking (the caller's knowledge: one count of zero alone is no proof, a source that just
    /// restarted has none until its VM reconnects). Null: no trigger.</summary>
    public static HandoverTrigger? TriggerOf(bool writeAtDestination, int sourceClients, bool destinationHasClients, bool idle) =>
        writeAtDestination ? HandoverTrigger.WriteAtDestination
        : sourceClients == 0 && destinationHasClients ? HandoverTrigger.GuestMoved
        : idle ? HandoverTrigger.SourceIdle
        : null;

    /// <summary>The copy that owns a disk now (the one whose site accepts its writes), else the one that owns it
    /// by phase (owned, or outgoing while it fences); null if none does (mid-handover, or unknown).</summary>
    public static SiteProtocol.DiskInfo? OwnerOf(IEnumerable<SiteProtocol.DiskInfo> copies)
    {
        var list = copies as IReadOnlyCollection<SiteProtocol.DiskInfo> ?? copies.ToList();
        return list.FirstOrDefault(d => d.Writable) ?? list.FirstOrDefault(d => d.Phase is SiteDisk.Owned or SiteDisk.Outgoing);
    }

    /// <param name="lists">The disk lists of the sites that answered (a site that did not is unknown, not empty).</param>
    public static IReadOnlyList<Derived> Derive(IReadOnlyList<SiteProtocol.DiskList> lists)
    {
        var answered = lists.Select(l => l.Site).ToHashSet(StringComparer.Ordinal);
        var byName = lists.SelectMany(l => l.Disks).GroupBy(d => d.Name, StringComparer.Ordinal);
        var result = new List<Derived>();
        foreach (var copies in byName)
        {
            var source = copies.FirstOrDefault(d => d.Phase is SiteDisk.Outgoing or SiteDisk.Fenced);
            if (source is not null)
            {
                if (!answered.Contains(source.Peer)) continue; // the destination is out of reach: nothing known
                var dest = copies.FirstOrDefault(d => d.Site == source.Peer);
                result.Add(FromSource(source, dest));
                continue;
            }
            foreach (var incoming in copies.Where(d => d.Phase == SiteDisk.Incoming))
            {
                if (!answered.Contains(incoming.Peer)) continue; // an import (no peer), or the source is out of reach
                var info = new RelocationInfo(incoming.Name, incoming.Peer, incoming.Site, incoming.Epoch, "");
                if (incoming.Writable)
                    result.Add(new Derived(info with { Phase = Postcopy }, incoming.Size, "", null, null, null, incoming.Relocation)); // the source already let go
                else
                    // The source does not (or no longer) send this disk by this attempt: a cancel half done, or a
                    // copy a stale step created. Never owned here; but the answers may be of different ages, so the
                    // source confirms first (it refuses if it has fenced for this attempt meanwhile).
                    result.Add(new Derived(info with { Phase = Cancelling }, incoming.Size, "",
                        new StopOutgoing(incoming.Name, incoming.Epoch, incoming.Relocation), incoming.Peer, null, incoming.Relocation,
                        DropAt: incoming.Site));
            }
        }
        return result;
    }

    private static Derived FromSource(SiteProtocol.DiskInfo source, SiteProtocol.DiskInfo? dest)
    {
        var relocation = source.Relocation;
        if (source.Phase == SiteDisk.Outgoing)
        {
            var info = new RelocationInfo(source.Name, source.Site, source.Peer, source.Epoch, "");
            if (dest is null)
                return new Derived(info with { Phase = Preparing }, source.Size, source.NbdUri, null, source.Peer, null, relocation);
            if (dest.Phase == SiteDisk.Incoming && dest.Relocation != relocation && !dest.Writable)
                // A copy of another attempt is in the way: it goes first, then this one is prepared.
                return new Derived(info with { Phase = Preparing }, source.Size, source.NbdUri,
                    new StopOutgoing(dest.Name, dest.Epoch, dest.Relocation), dest.Peer, null, relocation, DropAt: dest.Site);
            if (dest.Phase != SiteDisk.Incoming || dest.Relocation != relocation)
                return new Derived(info with { Phase = Serving }, source.Size, source.NbdUri, null, null, null, relocation,
                    $"disk '{source.Name}' leaves {source.Site} by relocation {relocation} but {dest.Site} has it {dest.Phase} ({dest.Relocation})");
            // Not "the source has no guests" alone: a source that just restarted has none until its VM
            // reconnects, and fencing it then fails the VM's writes (the multi-process test caught this).
            var trigger = TriggerOf(dest.HandoverWanted, source.Clients, dest.Clients > 0, idle: false);
            return new Derived(info with { Phase = Serving }, source.Size, source.NbdUri, null, null, trigger, relocation,
                SourceIdle: source.Clients == 0);
        }
        // Fenced: the destination owns NewEpoch = source.Epoch, or is about to.
        var started = new RelocationInfo(source.Name, source.Site, source.Peer, source.Epoch - 1, "");
        if (dest is null || (dest.Phase == SiteDisk.Incoming && dest.Relocation != relocation))
            return new Derived(started with { Phase = Transferring }, source.Size, source.NbdUri, null, null, null, relocation,
                $"disk '{source.Name}' was handed over by {source.Site} to {source.Peer} (relocation {relocation}), which does not have it from that relocation");
        if (dest.Phase == SiteDisk.Incoming && !dest.Writable)
            return new Derived(started with { Phase = Fencing }, source.Size, source.NbdUri, new Fence(source.Name, source.Epoch, relocation), source.Site, null, relocation);
        if (dest.Phase == SiteDisk.Incoming)
            return new Derived(started with { Phase = Postcopy }, source.Size, source.NbdUri, null, null, null, relocation);
        // Released only by an answer from after the handover: a round's answers may be of different ages, and an
        // older one (the destination owned the disk before it left and came back) says nothing of this copy (F16).
        if (dest.Epoch < source.Epoch)
            return new Derived(started with { Phase = Transferring }, source.Size, source.NbdUri, null, null, null, relocation,
                $"disk '{source.Name}' was handed over by {source.Site} to {source.Peer} at epoch {source.Epoch}, which answered from epoch {dest.Epoch}");
        return new Derived(started with { Phase = Releasing }, source.Size, source.NbdUri, new Release(source.Name, source.Epoch, relocation), source.Site, null, relocation);
    }
}

/// <summary>A relocation's phase inside the coordinator; on the wire and in the console by its name (the
/// <see cref="Reconciler"/> constants: <see cref="RelocationProtocol.RelocationInfo.Phase"/> stays a string).</summary>
public enum RelocationPhase { Starting, Preparing, Serving, Fencing, Transferring, Postcopy, Releasing, Cancelling }

public static class RelocationPhases
{
    public static string Name(this RelocationPhase phase) => phase switch
    {
        RelocationPhase.Starting => Reconciler.Starting,
        RelocationPhase.Preparing => Reconciler.Preparing,
        RelocationPhase.Serving => Reconciler.Serving,
        RelocationPhase.Fencing => Reconciler.Fencing,
        RelocationPhase.Transferring => Reconciler.Transferring,
        RelocationPhase.Postcopy => Reconciler.Postcopy,
        RelocationPhase.Releasing => Reconciler.Releasing,
        RelocationPhase.Cancelling => Reconciler.Cancelling,
        _ => throw new ArgumentOutOfRangeException(nameof(phase), phase, null),
    };

    public static RelocationPhase Parse(string name)
    {
        foreach (var phase in Enum.GetValues<RelocationPhase>())
            if (phase.Name() == name) return phase;
        throw new ArgumentException($"not a relocation phase: '{name}'", nameof(name));
    }
}
