namespace Reloc.Actors.Site;

/// <summary>Messages of <see cref="SiteActor"/>: the disks one site hosts. All may cross nodes.</summary>
public static class SiteProtocol
{
    /// <summary>Creates an empty (sparse) disk, or one filled from a local image file or a foreign NBD URI.</summary>
    public sealed record CreateDisk(string Name, long Size, string? FromFile = null) : IRelocMessage
    {
        public bool FromNbd => FromFile is not null && FromFile.StartsWith("nbd://", StringComparison.Ordinal);
    }

    /// <summary>Deletes a disk this site owns. Refused while guests are connected to it, unless <paramref name="Force"/>:
    /// then their connections stay open but every request fails (the image is gone).</summary>
    public sealed record DeleteDisk(string Name, bool Force = false) : IRelocMessage;

    public sealed record ListDisks : IRelocMessage;

    /// <summary>One disk as its site sees it. <see cref="Peer"/>: the other site of a relocation (source of
    /// an incoming disk, destination of an outgoing or fenced one). <see cref="Writable"/>: this site accepts
    /// the disk's writes now. <see cref="Clients"/>: guest NBD connections. <see cref="HandoverWanted"/>: a
    /// guest write waits at this (destination) site for the handover.</summary>
    public sealed record DiskInfo(string Name, long Size, string Site, long Epoch, string Phase, string NbdUri,
        string Peer = "", long LocalBytes = 0, int Clients = 0, bool Writable = false, bool HandoverWanted = false, string Relocation = "",
        QueuedRelocation? Queued = null) : IRelocMessage;

    /// <param name="Links">The link budgets set at run time this site remembers for its pairs (null from a site of the
    /// version before: none), for a coordinator that takes over (<see cref="Coordinator.LinkMemory.Adopt"/>).</param>
    public sealed record DiskList(string Site, IReadOnlyList<DiskInfo> Disks, IReadOnlyList<Coordinator.RememberedBudget>? Links = null) : IRelocMessage;

    /// <param name="ClientsCut">Guest connections the (forced) delete cut off.</param>
    public sealed record Deleted(string Name, int ClientsCut = 0) : IRelocMessage;

    /// <summary>The request was refused; nothing changed.</summary>
    public sealed record Refused(string Reason) : IRelocMessage;

    /// <summary>To a site: where its NBD server is (answered with <see cref="NbdAddress"/>); other sites keep connections
    /// to it warm (reloc.site.peer-connections).</summary>
    public sealed record GetNbdAddress : IRelocMessage;

    /// <param name="BaseUri">scheme://host:port, as guests and other sites reach it (nbds:// when it requires TLS).</param>
    public sealed record NbdAddress(string Site, string BaseUri) : IRelocMessage;

    /// <summary>To a disk's owner: how many bytes its image holds (answered with <see cref="Allocation"/>).</summary>
    public sealed record GetAllocation(string Disk) : IRelocMessage;
    public sealed record Allocation(string Disk, long Size, long Allocated) : IRelocMessage;

    /// <summary>To a relocation's destination, before anything starts: can its data directory hold the disk
    /// (<see cref="Core.RoomCheck"/>)? Answered with <see cref="RoomChecked"/>.</summary>
    public sealed record CheckRoom(string Disk, long Size, long Allocated) : IRelocMessage;

    /// <param name="Refusal">null: it fits.</param>
    /// <param name="Warning">It fits now, but would not if the guest filled the disk's holes.</param>
    public sealed record RoomChecked(string Disk, long Free, long Needed, string? Refusal, string? Warning) : IRelocMessage;

    /// <summary>The request asked for something this site does not allow (a file outside its import directory); nothing changed.</summary>
    public sealed record Forbidden(string Reason) : IRelocMessage;
}

/// <summary>A relocation of an owned disk waiting in the coordinator's admission queue (kept at the disk's owner, where
/// the truth about the disk lives, so a coordinator that takes over rebuilds its queue from the sites).
/// <paramref name="Ticket"/>: its order in the queue (earlier first).</summary>
public sealed record QueuedRelocation(string ToSite, long Ticket, bool Hybrid, long RateBytesPerSecond, bool Prefetch, string Relocation);

/// <summary>Persisted events of a site's disk registry.</summary>
public static class SiteEvents
{
    public sealed record DiskAdded(string Name, long Size, string ImagePath, long Epoch) : IRelocMessage;

    public sealed record DiskRemoved(string Name) : IRelocMessage;

    /// <summary>A disk arriving from <see cref="FromSite"/>: served here at once, relocating from
    /// <see cref="SourceUri"/>. <see cref="Journal"/> keys the block map's journal: fresh for every arrival,
    /// so no earlier copy's bits (of a cancelled attempt, or of this one dropped and created again) can ever
    /// be replayed over a new, empty image. <see cref="Relocation"/>: the attempt's id, which every step of
    /// the relocation must name. <see cref="Options"/>: how it is copied (null in events written before they were kept: hybrid, no cap,
    /// prefetch, as a restart resumed every arrival then).</summary>
    public sealed record IncomingAdded(string Name, long Size, string ImagePath, string SourceUri, long Epoch, string FromSite = "", string Journal = "", string Relocation = "",
        Core.ArrivalOptions? Options = null) : IRelocMessage;

    /// <summary>The operator's rate cap on an arriving disk's background copy changed (kept across restarts).</summary>
    public sealed record ArrivalRateSet(string Name, long Rate) : IRelocMessage;

    /// <summary>The source tracks the guest's writes for a relocation to <see cref="ToSite"/> (from now on,
    /// even across a restart, when it conservatively reports every block as written).</summary>
    public sealed record OutgoingBegun(string Name, long Epoch, string ToSite, string Relocation = "") : IRelocMessage;

    /// <summary>Relocation <see cref="Relocation"/> was stopped before the handover (or before it began here): the
    /// site owns the disk as before, and a late StartOutgoing of that attempt is refused.</summary>
    public sealed record OutgoingEnded(string Name, string Relocation = "") : IRelocMessage;

    /// <summary>The disk was handed over to <see cref="ToSite"/> at <see cref="NewEpoch"/>: this site refuses its
    /// writes from now on, even after a restart, and keeps the final dirty set until the disk is released,
    /// so a repeated fence (a new coordinator) gets the same answer.</summary>
    /// <summary>A relocation of the (owned) disk waits in the admission queue (<see cref="QueuedRelocation"/>).</summary>
    public sealed record RelocationQueued(string Name, QueuedRelocation Queued) : IRelocMessage;

    /// <summary>The queued relocation <see cref="Relocation"/> was cancelled before it started: the disk leaves the queue
    /// and the attempt is remembered as stopped (a late StartOutgoing of it is refused).</summary>
    public sealed record QueueLeft(string Name, string Relocation) : IRelocMessage;

    /// <summary>A link budget set at run time for one of this site's pairs (not a disk's event): kept, the newest per
    /// pair, so that the coordinator that takes over adopts it instead of reloc.links.</summary>
    public sealed record LinkBudgetRemembered(Coordinator.RememberedBudget Budget) : IRelocMessage;

    public sealed record DiskFenced(string Name, long NewEpoch, string ToSite = "", IReadOnlyList<(long First, long Count)>? FinalDirty = null, string Relocation = "") : IRelocMessage;
}

/// <summary>A disk this site hosts (pure registry state, rebuilt from <see cref="SiteEvents"/>).</summary>
/// <param name="Options">How an incoming disk is copied.</param>
/// <param name="Stopped">The attempts stopped at this epoch (most recent last, a few kept): never started again.</param>
public sealed record SiteDisk(string Name, long Size, string ImagePath, long Epoch, DiskPhase Phase = DiskPhase.Owned, string? SourceUri = null,
    string Peer = "", string Journal = "", IReadOnlyList<(long First, long Count)>? FinalDirty = null, string Relocation = "",
    Core.ArrivalOptions? Options = null, IReadOnlyList<string>? Stopped = null, QueuedRelocation? Queued = null)
{
    /// <summary>How many stopped attempts a disk remembers: a late step comes from a coordinator replaced
    /// recently, and each of those started at most one attempt.</summary>
    public const int StoppedKept = 16;

    /// <summary>The phases' names on the wire and in the console (<see cref="SiteProtocol.DiskInfo.Phase"/>).</summary>
    public const string Owned = "owned", Outgoing = "outgoing", Incoming = "incoming", Fenced = "fenced";

    /// <summary>Owned here (with or without a relocation under way): the guest's writes land here.</summary>
    public bool IsOwnedHere => Phase is DiskPhase.Owned or DiskPhase.Outgoing;
}

/// <summary>A disk's phase at one site (<see cref="SiteState.Transitions"/>); on the wire and in the console by its name.</summary>
public enum DiskPhase { Owned, Outgoing, Incoming, Fenced }

public static class DiskPhases
{
    public static string Name(this DiskPhase phase) => phase switch
    {
        DiskPhase.Owned => SiteDisk.Owned,
        DiskPhase.Outgoing => SiteDisk.Outgoing,
        DiskPhase.Incoming => SiteDisk.Incoming,
        DiskPhase.Fenced => SiteDisk.Fenced,
        _ => throw new ArgumentOutOfRangeException(nameof(phase), phase, null),
    };
}

public sealed class SiteState
{
    private readonly Dictionary<string, SiteDisk> _disks = new(StringComparer.Ordinal);
    private readonly Dictionary<Coordinator.LinkPair, Coordinator.RememberedBudget> _links = [];

    public IReadOnlyCollection<SiteDisk> Disks => _disks.Values;

    /// <summary>The link budgets set at run time this site remembers (the newest per pair), ordered by pair.</summary>
    public IReadOnlyList<Coordinator.RememberedBudget> Links =>
        [.. _links.Values.OrderBy(l => l.Pair.A, StringComparer.Ordinal).ThenBy(l => l.Pair.B, StringComparer.Ordinal)];

    public Coordinator.RememberedBudget? LinkOf(Coordinator.LinkPair pair) => _links.GetValueOrDefault(pair);

    public bool TryGet(string name, out SiteDisk disk) => _disks.TryGetValue(name, out disk!);

    /// <summary>Every change of a disk's phase an event may make (null: not registered). One table: <see cref="Apply"/>
    /// refuses any other (a journal that says otherwise is corrupt, and recovering from it would hide a lost disk or
    /// a second writer), and README's diagram of the site is generated from it.</summary>
    public static readonly IReadOnlyList<(DiskPhase? From, Type Event, DiskPhase? To, string Why)> Transitions =
    [
        (null, typeof(SiteEvents.DiskAdded), DiskPhase.Owned, "created"),
        (null, typeof(SiteEvents.IncomingAdded), DiskPhase.Incoming, "PrepareIncoming / import"),
        (DiskPhase.Incoming, typeof(SiteEvents.ArrivalRateSet), DiskPhase.Incoming, "SetRate"),
        (DiskPhase.Incoming, typeof(SiteEvents.DiskAdded), DiskPhase.Owned, "arrival finished"),
        (DiskPhase.Incoming, typeof(SiteEvents.DiskRemoved), null, "DropIncoming"),
        (DiskPhase.Owned, typeof(SiteEvents.OutgoingBegun), DiskPhase.Outgoing, "StartOutgoing"),
        (DiskPhase.Owned, typeof(SiteEvents.OutgoingEnded), DiskPhase.Owned, "StopOutgoing before the start"),
        (DiskPhase.Owned, typeof(SiteEvents.RelocationQueued), DiskPhase.Owned, "QueueRelocation"),
        (DiskPhase.Owned, typeof(SiteEvents.QueueLeft), DiskPhase.Owned, "Unqueue"),
        (DiskPhase.Owned, typeof(SiteEvents.DiskRemoved), null, "DeleteDisk"),
        (DiskPhase.Outgoing, typeof(SiteEvents.OutgoingEnded), DiskPhase.Owned, "StopOutgoing"),
        (DiskPhase.Outgoing, typeof(SiteEvents.DiskFenced), DiskPhase.Fenced, "Fence, flushed"),
        (DiskPhase.Fenced, typeof(SiteEvents.DiskRemoved), null, "Release"),
    ];

    public void Apply(object evt)
    {
        if (evt is SiteEvents.LinkBudgetRemembered l)
        {
            // Not a disk's: outside the disks' table. Replayed in order, and only a newer one was ever persisted.
            if (Coordinator.LinkMemory.Supersedes(l.Budget, LinkOf(l.Budget.Pair))) _links[l.Budget.Pair] = l.Budget;
            return;
        }
        var name = DiskOf(evt);
        DiskPhase? from = _disks.TryGetValue(name, out var d) ? d.Phase : null;
        if (!Transitions.Any(t => t.From == from && t.Event == evt.GetType()))
            throw new InvalidOperationException(from is null
                ? $"{evt.GetType().Name} for disk '{name}', which this site's journal does not hold"
                : $"{evt.GetType().Name} for disk '{name}', which this site's journal holds {from.Value.Name()}");
        switch (evt)
        {
            case SiteEvents.DiskAdded a:
                _disks[a.Name] = new SiteDisk(a.Name, a.Size, a.ImagePath, a.Epoch);
                break;
            case SiteEvents.DiskRemoved r:
                _disks.Remove(r.Name);
                break;
            case SiteEvents.IncomingAdded i:
                _disks[i.Name] = new SiteDisk(i.Name, i.Size, i.ImagePath, i.Epoch, DiskPhase.Incoming, i.SourceUri, i.FromSite, i.Journal,
                    Relocation: i.Relocation.Length > 0 ? i.Relocation : i.Journal, // SIA2 events: the journal was the id
                    Options: i.Options ?? new Core.ArrivalOptions(Hybrid: true, Rate: 0, Prefetch: true));
                break;
            case SiteEvents.ArrivalRateSet r:
                _disks[r.Name] = d! with { Options = (d.Options ?? new Core.ArrivalOptions(true, 0, true)) with { Rate = r.Rate } };
                break;
            case SiteEvents.OutgoingBegun o:
                _disks[o.Name] = d! with { Phase = DiskPhase.Outgoing, Peer = o.ToSite, Epoch = o.Epoch, Relocation = o.Relocation, Queued = null };
                break;
            case SiteEvents.RelocationQueued q:
                _disks[q.Name] = d! with { Queued = q.Queued };
                break;
            case SiteEvents.QueueLeft q:
                _disks[q.Name] = d! with
                {
                    Queued = d.Queued?.Relocation == q.Relocation ? null : d.Queued,
                    Stopped = [.. (d.Stopped ?? []).Append(q.Relocation).TakeLast(SiteDisk.StoppedKept)],
                };
                break;
            case SiteEvents.OutgoingEnded o:
                _disks[o.Name] = d! with
                {
                    Phase = DiskPhase.Owned, Peer = "", Relocation = "", Queued = d.Queued?.Relocation == o.Relocation ? null : d.Queued,
                    Stopped = o.Relocation.Length == 0 ? d.Stopped : [.. (d.Stopped ?? []).Append(o.Relocation).TakeLast(SiteDisk.StoppedKept)],
                };
                break;
            case SiteEvents.DiskFenced f:
                _disks[f.Name] = d! with { Phase = DiskPhase.Fenced, Epoch = f.NewEpoch, Peer = f.ToSite, FinalDirty = f.FinalDirty ?? [], Relocation = f.Relocation };
                break;
        }
    }

    private static string DiskOf(object evt) => evt switch
    {
        SiteEvents.DiskAdded a => a.Name,
        SiteEvents.DiskRemoved r => r.Name,
        SiteEvents.IncomingAdded i => i.Name,
        SiteEvents.OutgoingBegun o => o.Name,
        SiteEvents.OutgoingEnded o => o.Name,
        SiteEvents.DiskFenced f => f.Name,
        SiteEvents.ArrivalRateSet r => r.Name,
        SiteEvents.RelocationQueued q => q.Name,
        SiteEvents.QueueLeft q => q.Name,
        _ => throw new ArgumentException($"not a site event: {evt.GetType().Name}"),
    };

    /// <summary>Disk names are NBD export names and file names: <see cref="Reloc.Management.DiskName"/> judges them.</summary>
    public static string? ValidateName(string name) => Reloc.Management.DiskName.Validate(name);
}
