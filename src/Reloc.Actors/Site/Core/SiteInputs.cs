namespace Reloc.Actors.Site.Core;

/// <summary>What <see cref="SiteCore"/> is told: messages from operators, the coordinator and other sites, and
/// the results of the I/O it decided on. <c>ReplyTo</c> is opaque to the core (an actor, or the model's address).</summary>
public abstract record SiteInput
{
    /// <summary>The journal is replayed (<see cref="SiteCore.Recover"/>): serve every disk it holds.</summary>
    public sealed record Started : SiteInput;

    /// <summary>A message to the site (<see cref="SiteProtocol"/> requests and the relocation steps of
    /// <see cref="Coordinator.RelocationProtocol"/>). <paramref name="Arrival"/>: the disk actor's view of the disk
    /// the message names, if one runs for it (ownership lives in that actor's journal, not the site's).</summary>
    public sealed record Message(object Body, object ReplyTo, DateTime Now, ArrivalFacts? Arrival = null) : SiteInput;

    /// <summary>The image a <see cref="SiteDecision.CreateImage"/> asked for exists, durable and of <paramref name="Size"/> bytes.</summary>
    public sealed record ImageCreated(string Disk, long Size) : SiteInput;

    /// <summary>A foreign NBD server answered the probe of <see cref="SiteDecision.ProbeImport"/>: its size.</summary>
    public sealed record ImportProbed(string Disk, long Size) : SiteInput;

    /// <summary>Creating the image (or probing the import's server) failed; nothing was registered.</summary>
    public sealed record ImageFailed(string Disk, string Reason) : SiteInput;

    /// <summary>The shell could not serve a disk the core decided to serve (its image cannot be opened).</summary>
    public sealed record ServeFailed(string Disk, string Reason) : SiteInput;

    /// <summary>The fence of <see cref="SiteDecision.Fence"/> completed: every write admitted before it finished and
    /// the device flushed (<paramref name="Error"/> null), and <paramref name="Drained"/>, the blocks written since
    /// the last stream tick, in tracking units.</summary>
    public sealed record FenceDone(string Disk, string? Error, IReadOnlyList<(long First, long Count)> Drained) : SiteInput;

    /// <summary>The stream timer of an outgoing disk fired; <paramref name="Drained"/>: the blocks the guest wrote
    /// since the last tick (drained from the device by the shell).</summary>
    public sealed record StreamTick(string Disk, IReadOnlyList<(long First, long Count)> Drained, DateTime Now) : SiteInput;

    /// <summary>The guest connections to a disk's export, counted now (data-path events may come out of order).</summary>
    public sealed record ClientsChanged(string Disk, int Count) : SiteInput;

    /// <summary>The arriving disk holds a guest write that only the handover lets through.</summary>
    public sealed record WriteHeld(string Disk) : SiteInput;

    /// <summary>The arriving disk's copy cannot go on: <paramref name="Reason"/> (its image is out of space).</summary>
    public sealed record ArrivalStalled(string Disk, string Reason) : SiteInput;

    /// <summary>The arriving disk holds every block and owns the disk (or it was an import that completed).</summary>
    public sealed record ArrivalFinished(string Disk) : SiteInput;
}

/// <summary>What the disk actor of an arriving disk knows now.</summary>
/// <param name="Recovered">Its journal is replayed (until then "not owned" is not known).</param>
public sealed record ArrivalFacts(bool Recovered, bool IsOwner, long LocalBytes);

/// <summary>How an arriving disk is copied; kept in its registry entry, so a restart resumes it the same way.</summary>
/// <param name="Hybrid">Copy in the background before the handover too (else post-copy: only after it).</param>
/// <param name="Rate">The operator's cap on the background copy in bytes per second (0: no cap).</param>
/// <param name="Prefetch">false: no background copy at all, blocks move only when read.</param>
public sealed record ArrivalOptions(bool Hybrid, long Rate, bool Prefetch);

/// <summary>What <see cref="SiteCore"/> decides; the shell carries them out in order. <see cref="Persist"/>s come
/// first in a batch and everything after them waits until they are durable.</summary>
public abstract record SiteDecision
{
    public sealed record Persist(object Event) : SiteDecision;

    public sealed record Reply(object To, object Message) : SiteDecision;

    public sealed record SendToSite(string Site, object Message) : SiteDecision;

    public sealed record TellCoordinator(object Message) : SiteDecision;

    /// <summary>Create the disk's image at <paramref name="Path"/> (an orphan of a crashed create is replaced): sparse
    /// of <paramref name="Size"/> bytes, or a copy of <paramref name="FromFile"/>. Feed back
    /// <see cref="SiteInput.ImageCreated"/> or <see cref="SiteInput.ImageFailed"/>.</summary>
    public sealed record CreateImage(string Disk, string Path, long Size, string? FromFile = null) : SiteDecision;

    /// <summary>Connect to the foreign NBD server at <paramref name="Uri"/> and feed back its size
    /// (<see cref="SiteInput.ImportProbed"/>, or <see cref="SiteInput.ImageFailed"/>).</summary>
    public sealed record ProbeImport(string Disk, string Uri) : SiteDecision;

    /// <summary>Serve a disk this site owns (or holds fenced): its image behind the owned-disk layer, exported to
    /// guests and (by <see cref="SiteCore.PeerExport"/>) to other sites. <paramref name="Fenced"/>: refuse writes from the start.</summary>
    public sealed record ServeOwned(SiteDisk Disk, bool Fenced) : SiteDecision;

    /// <summary>Serve an arriving disk at once: a disk actor that recovers from the journal
    /// <paramref name="PersistenceId"/> fetches what it lacks from the disk's source.</summary>
    public sealed record ServeArrival(SiteDisk Disk, string PersistenceId, ArrivalOptions Options) : SiteDecision;

    /// <summary>The arrival completed: the same device (guests stay connected) is the site's owned disk now, and
    /// other sites may fetch it through its peer export.</summary>
    public sealed record ArrivalJoinsOwned(string Disk) : SiteDecision;

    /// <summary>Stop serving the disk (exports, device, disk actor), delete its image and, for an arrival, its
    /// disk actor's journal (<paramref name="ArrivalJournal"/>).</summary>
    public sealed record StopServing(string Disk, string ImagePath, string? ArrivalJournal) : SiteDecision;

    /// <summary>Delete the journal of a disk actor whose arrival completed (its image holds everything now).</summary>
    public sealed record DeleteArrivalJournal(string Disk, string PersistenceId) : SiteDecision;

    /// <summary>Record the guest's writes in blocks of <paramref name="BlockSize"/> bytes; <paramref name="Everything"/>:
    /// after a restart, when what was written but not reported is lost, count every block as written once.</summary>
    public sealed record Track(string Disk, int BlockSize, bool Everything) : SiteDecision;

    public sealed record Untrack(string Disk) : SiteDecision;

    /// <summary>Refuse writes from now on; once every write admitted before is done, flush, then feed back
    /// <see cref="SiteInput.FenceDone"/> with the blocks written since the last drain.</summary>
    public sealed record Fence(string Disk) : SiteDecision;

    /// <summary>Lift a fence whose flush failed: the guest may write here again.</summary>
    public sealed record Unfence(string Disk) : SiteDecision;

    /// <summary>Fire <see cref="SiteInput.StreamTick"/> for the disk periodically (or stop).</summary>
    public sealed record StartStream(string Disk) : SiteDecision;

    public sealed record StopStream(string Disk) : SiteDecision;

    /// <summary>Ask the arriving disk's actor <paramref name="Request"/>; answer <paramref name="ReplyTo"/> with
    /// <paramref name="Answer"/> when it confirms, with a refusal otherwise.</summary>
    public sealed record AskArrival(string Disk, object Request, object ReplyTo, object Answer) : SiteDecision;

    public sealed record TellArrival(string Disk, object Message) : SiteDecision;

    public sealed record Log(CoreLogLevel Level, string Text, SiteEvent Event = SiteEvent.None) : SiteDecision;
}


/// <summary>Protections a decision took (named for the model's coverage counters).</summary>
public enum SiteEvent
{
    None,
    /// <summary>StartOutgoing refused for a disk that arrived here but is not (yet) among the served owned disks.</summary>
    RefusedNotServed,
    /// <summary>PrepareIncoming refused: another attempt's copy is here.</summary>
    PrepareRefusedOtherCopy,
    /// <summary>TakeOwnershipAt refused: not arriving by that relocation at that epoch.</summary>
    TakeOwnershipRefused,
    /// <summary>DropIncoming refused: the disk actor still recovers.</summary>
    DropRefusedRecovering,
    /// <summary>DropIncoming refused: owned here.</summary>
    DropRefusedOwner,
    /// <summary>StopOutgoing refused: a fence is under way.</summary>
    StopRefusedFencing,
    /// <summary>StopOutgoing refused: fenced.</summary>
    StopRefusedFenced,
    /// <summary>An arrived disk joined the owned disks.</summary>
    ArrivedJoinsOwned,
    /// <summary>StartOutgoing of an attempt this site already ended (a late step of a replaced coordinator).</summary>
    EndedAttemptRefused,
}
