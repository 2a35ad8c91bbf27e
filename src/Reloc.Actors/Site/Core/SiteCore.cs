using static Reloc.Actors.Coordinator.RelocationProtocol;

namespace Reloc.Actors.Site.Core;

/// <summary>
/// A site's decisions, without an actor system: the registry of the disks it hosts, its source side (outgoing
/// disks) and its destination side (arriving disks), each its own class over one <see cref="SiteContext"/>.
/// Deterministic: the same inputs in the same order give the same decisions. <see cref="SiteActor"/> and the
/// protocol model are its shells; the durable part is <see cref="SiteState"/>, rebuilt from the persisted events.
/// </summary>
/// <remarks>
/// A disk at a site (<see cref="SiteDisk.Phase"/>):
///   owned --(StartOutgoing)--> outgoing --(Fence, flushed)--> fenced --(Release)--> gone
///   outgoing --(StopOutgoing)--> owned
///   (none) --(PrepareIncoming)--> incoming --(arrival finished)--> owned;  incoming --(DropIncoming)--> gone
/// </remarks>
/// <param name="site">This site's name.</param>
/// <param name="dataDir">Where its images live.</param>
/// <param name="nbdAdvertise">scheme://host:port of its NBD server as other sites and guests reach it (nbds:// when it requires TLS).</param>
/// <param name="arrivalBlockSize">The block size of arriving disks' block maps.</param>
/// <param name="newId">A fresh id (arrival journals, imports), unique across restarts.</param>
public sealed class SiteCore
{
    private readonly SiteContext _c;
    private readonly Registry _registry;
    private readonly SourceSide _source;
    private readonly DestinationSide _destination;

    public SiteCore(string site, string dataDir, string nbdAdvertise, int arrivalBlockSize, Func<string> newId)
    {
        _c = new SiteContext(site, dataDir, nbdAdvertise, newId);
        _registry = new Registry(_c);
        _source = new SourceSide(_c);
        _destination = new DestinationSide(_c, arrivalBlockSize);
    }

    /// <summary>The export name other sites fetch a disk through (not a valid disk name, so it never clashes):
    /// their connections never count as the disk's guests.</summary>
    public static string PeerExport(string disk) => disk + PeerSuffix;

    /// <summary>Whether an export name is a disk's peer export.</summary>
    public static bool IsPeerExport(string export) => export.EndsWith(PeerSuffix, StringComparison.Ordinal);

    private const string PeerSuffix = "@peer";

    /// <summary>The registry (durable) as recovered and changed so far.</summary>
    public SiteState State => _c.State;

    /// <summary>A persisted event replayed at start.</summary>
    public void Recover(object evt) => _c.State.Apply(evt);

    public IReadOnlyList<SiteDecision> Handle(SiteInput input)
    {
        _c.Begin();
        switch (input)
        {
            case SiteInput.Started: OnStarted(); break;
            case SiteInput.Message m: Dispatch(m); break;
            case SiteInput.ImageCreated i when _c.Creating.Remove(i.Disk, out var pending):
                if (pending.Purpose == ImagePurpose.Arrival) _destination.OnImageCreated(pending, i);
                else _registry.OnImageCreated(pending, i);
                break;
            case SiteInput.ImportProbed p: _registry.OnImportProbed(p); break;
            case SiteInput.ImageFailed f when _c.Creating.Remove(f.Disk, out var pending):
                if (pending.Purpose == ImagePurpose.Arrival) _destination.OnImageFailed(pending, f);
                else _registry.OnImageFailed(pending, f);
                break;
            case SiteInput.ImageCreated or SiteInput.ImageFailed: break; // of a create this incarnation did not start
            case SiteInput.ServeFailed f: _c.OnServeFailed(f); break;
            case SiteInput.FenceDone f: _source.OnFenceDone(f); break;
            case SiteInput.StreamTick t: _source.OnStreamTick(t); break;
            case SiteInput.ClientsChanged c: OnClientsChanged(c); break;
            case SiteInput.WriteHeld w: _destination.OnWriteHeld(w.Disk); break;
            case SiteInput.ArrivalFinished f: _destination.OnArrivalFinished(f.Disk); break;
            case SiteInput.ArrivalStalled s: _destination.OnArrivalStalled(s); break;
            default: throw new ArgumentException($"not a site input: {input}", nameof(input));
        }
        return _c.End();
    }

    /// <summary>Serve every disk the journal holds; an outgoing one tracks every block as written again.</summary>
    private void OnStarted()
    {
        foreach (var d in _c.State.Disks.OrderBy(d => d.Name, StringComparer.Ordinal).ToList())
        {
            _c.Serve(d, recovered: true);
            if (d.Phase == DiskPhase.Outgoing) _source.Begin(d.Name, d.Peer, d.Epoch, TrackingBlockSize, d.Relocation, everything: true);
        }
    }

    private void Dispatch(SiteInput.Message m)
    {
        switch (m.Body)
        {
            case SiteProtocol.CreateDisk x: _registry.OnCreate(x, m.ReplyTo); break;
            case SiteProtocol.DeleteDisk x: _registry.OnDelete(x, m.ReplyTo); break;
            case SiteProtocol.ListDisks: throw new ArgumentException("ListDisks is a query: SiteCore.Info answers it");
            // ---- destination ----
            case PrepareIncoming x: _destination.OnPrepareIncoming(x, m.ReplyTo); break;
            case DropIncoming x: _destination.OnDropIncoming(x, m.ReplyTo, m.Arrival); break;
            case InvalidateAt x: _destination.OnInvalidateAt(x, m.ReplyTo); break;
            case TakeOwnershipAt x: _destination.OnTakeOwnershipAt(x, m.ReplyTo); break;
            case SetRate x: _destination.OnSetRate(x); break;
            // ---- source ----
            case StartOutgoing x: _source.OnStartOutgoing(x, m.ReplyTo); break;
            case InvalidatedAt x: _source.OnInvalidatedAt(x); break;
            case StopOutgoing x: _source.OnStopOutgoing(x, m.ReplyTo); break;
            case Fence x: _source.OnFence(x, m.ReplyTo); break;
            case Release x: _source.OnRelease(x, m.ReplyTo); break;
            case QueueRelocation x: _source.OnQueue(x, m.ReplyTo); break;
            case Unqueue x: _source.OnUnqueue(x, m.ReplyTo); break;
            // ---- link budgets ----
            case RememberLinkBudget x: OnRememberLink(x, m.ReplyTo); break;
            case SiteProtocol.Refused:
                break; // a destination refused an invalidation: it stays unacknowledged and is sent again
            default: throw new ArgumentException($"not a site message: {m.Body.GetType().Name}", nameof(m));
        }
    }

    /// <summary>A link budget set at run time for one of this site's pairs: kept when newer than the one held. The
    /// answer says what is held, and goes out after the persist: a coordinator that hears it knows it is durable.</summary>
    private void OnRememberLink(RememberLinkBudget m, object replyTo)
    {
        var b = m.Budget;
        if (b.Pair.A != _c.Site && b.Pair.B != _c.Site) { _c.Refuse(replyTo, $"site {_c.Site} is not on link {b.Pair}: only its two sites keep its budget"); return; }
        if (b.BandwidthBytesPerSecond < 0) { _c.Refuse(replyTo, $"a link's bandwidth must not be negative, not {b.BandwidthBytesPerSecond}"); return; }
        if (Coordinator.LinkMemory.Supersedes(b, _c.State.LinkOf(b.Pair)))
        {
            _c.Persist(new SiteEvents.LinkBudgetRemembered(b));
            _c.Log(CoreLogLevel.Info, $"link budget remembered: {b}");
        }
        _c.Reply(replyTo, new LinkBudgetHeld(_c.Site, _c.State.LinkOf(b.Pair)!));
    }

    private void OnClientsChanged(SiteInput.ClientsChanged m)
    {
        _c.Clients[m.Disk] = m.Count;
        if (_c.Outgoing.ContainsKey(m.Disk) || _c.Served.GetValueOrDefault(m.Disk) == Serving.Arrival)
            _c.Emit(new SiteDecision.TellCoordinator(new GuestClients(m.Disk, _c.Site, m.Count)));
    }

    // ---------------- queries (no decision) ----------------

    /// <summary>One disk as this site shows it; <paramref name="arrival"/>: its disk actor's view, for an arriving disk.</summary>
    public SiteProtocol.DiskInfo Info(SiteDisk d, ArrivalFacts? arrival) => _c.Info(d, arrival);

    /// <summary>The guest connections the core counts for the disk (from <see cref="SiteInput.ClientsChanged"/>).</summary>
    public int ClientsOf(string disk) => _c.Clients.GetValueOrDefault(disk);

    public bool IsFencing(string disk) => _c.Fencing.ContainsKey(disk);

    /// <summary>The invalidations a source sent and the destination has not acknowledged (for diagnosis).</summary>
    public int UnackedOf(string disk) => _c.Outgoing.TryGetValue(disk, out var o) ? o.Unacked.Count : 0;
}
