using Reloc.Storage;

namespace Reloc.Actors.Site.Core;

/// <summary>How a site serves a disk now (volatile: a restart starts from <see cref="None"/> and serves every
/// registered disk again).</summary>
public enum Serving
{
    None,
    /// <summary>Its image, behind the owned-disk layer (owned, outgoing or fenced).</summary>
    Owned,
    /// <summary>A disk actor that fetches what it lacks (incoming).</summary>
    Arrival,
    /// <summary>An arrival that completed: the same device, now the site's owned disk (until a restart serves the image).</summary>
    Arrived,
}

/// <summary>What an image being created is for.</summary>
internal enum ImagePurpose { Create, Import, Arrival }

/// <summary>A disk whose image is being created: registered once the image exists.</summary>
internal sealed record PendingImage(ImagePurpose Purpose, object Request, object ReplyTo, string Path);

/// <summary>
/// The state the roles of <see cref="SiteCore"/> share: the durable registry, what is served, the relocation
/// work under way (all volatile), and the decisions of the input being handled (persists first).
/// </summary>
internal sealed class SiteContext(string site, string dataDir, string nbdAdvertise, Func<string> newId)
{
    private List<SiteDecision> _persists = [], _effects = [];

    public string Site { get; } = site;
    public SiteState State { get; } = new();
    public Dictionary<string, Serving> Served { get; } = new(StringComparer.Ordinal);
    public Dictionary<string, OutgoingStream> Outgoing { get; } = new(StringComparer.Ordinal);
    /// <summary>Fences admitted whose flush is under way, with who waits for the answer.</summary>
    public Dictionary<string, (Coordinator.RelocationProtocol.Fence Request, object ReplyTo)> Fencing { get; } = new(StringComparer.Ordinal);
    /// <summary>Arriving disks holding a guest write for the handover (told again to a coordinator that asks again).</summary>
    public HashSet<string> HandoverWanted { get; } = new(StringComparer.Ordinal);
    public Dictionary<string, PendingImage> Creating { get; } = new(StringComparer.Ordinal);
    public Dictionary<string, int> Clients { get; } = new(StringComparer.Ordinal);

    public string NewId() => newId();
    public string ImagePathOf(string disk) => Path.Combine(dataDir, disk + ".img");
    public string UriOf(string disk) => $"{nbdAdvertise}/{disk}";

    /// <summary>The persistence id of an arriving disk's actor: fresh for every arrival (older arrivals: by epoch).</summary>
    public string ArrivalJournalOf(SiteDisk d) => d.Journal.Length > 0 ? $"disk-{d.Name}-{Site}-{d.Journal}" : $"disk-{d.Name}-{Site}-e{d.Epoch}";

    /// <summary>One disk as this site shows it; <paramref name="arrival"/>: its disk actor's view, for an arriving disk.</summary>
    public SiteProtocol.DiskInfo Info(SiteDisk d, ArrivalFacts? arrival)
    {
        long local = d.Phase == DiskPhase.Incoming ? arrival?.LocalBytes ?? 0 : d.Size;
        bool writable = d.IsOwnedHere || (d.Phase == DiskPhase.Incoming && arrival is { IsOwner: true });
        return new SiteProtocol.DiskInfo(d.Name, d.Size, Site, d.Epoch, d.Phase.Name(), UriOf(d.Name), d.Peer, local,
            Clients.GetValueOrDefault(d.Name), writable, HandoverWanted.Contains(d.Name), d.Relocation, d.Queued);
    }

    public bool ServesOwned(string disk) => Served.GetValueOrDefault(disk) is Serving.Owned or Serving.Arrived;

    public void Begin()
    {
        _persists = [];
        _effects = [];
    }

    public IReadOnlyList<SiteDecision> End() => [.. _persists, .. _effects];

    /// <summary>Journal first; the registry changes now (the shell runs no other input before it is durable).</summary>
    public void Persist(object evt)
    {
        State.Apply(evt);
        _persists.Add(new SiteDecision.Persist(evt));
    }

    public void Emit(SiteDecision d) => _effects.Add(d);
    public void Reply(object to, object message) => Emit(new SiteDecision.Reply(to, message));
    public void Refuse(object to, string reason, SiteEvent e = SiteEvent.None)
    {
        if (e != SiteEvent.None) Log(CoreLogLevel.Debug, reason, e);
        Reply(to, new SiteProtocol.Refused(reason));
    }

    public void Log(CoreLogLevel level, string text, SiteEvent e = SiteEvent.None) => Emit(new SiteDecision.Log(level, text, e));

    /// <summary>Serves a registered disk as its phase says. <paramref name="recovered"/>: at a restart, a post-copy
    /// arrival copies in the background too: whether its handover happened lives in its disk actor's journal, not
    /// here, and a copy before the handover is safe (the source's invalidations reach it).</summary>
    public void Serve(SiteDisk d, bool recovered = false)
    {
        if (d.Phase == DiskPhase.Incoming)
        {
            Served[d.Name] = Serving.Arrival;
            var options = d.Options ?? new ArrivalOptions(Hybrid: true, Rate: 0, Prefetch: true);
            Emit(new SiteDecision.ServeArrival(d, ArrivalJournalOf(d), recovered ? options with { Hybrid = true } : options));
        }
        else
        {
            Served[d.Name] = Serving.Owned;
            Emit(new SiteDecision.ServeOwned(d, Fenced: d.Phase == DiskPhase.Fenced));
        }
    }

    public void OnServeFailed(SiteInput.ServeFailed f)
    {
        Served.Remove(f.Disk);
        Log(CoreLogLevel.Error, $"disk {f.Disk} is registered but cannot be served: {f.Reason}");
    }

    /// <summary>Forgets a disk durably, then stops serving it and deletes its image (and an arrival's journal).</summary>
    public void Remove(SiteDisk disk, object replyTo, object answer)
    {
        Persist(new SiteEvents.DiskRemoved(disk.Name));
        Served.Remove(disk.Name);
        if (Outgoing.Remove(disk.Name)) Emit(new SiteDecision.StopStream(disk.Name));
        HandoverWanted.Remove(disk.Name);
        Clients.Remove(disk.Name);
        Emit(new SiteDecision.StopServing(disk.Name, disk.ImagePath, disk.Phase == DiskPhase.Incoming ? ArrivalJournalOf(disk) : null));
        Reply(replyTo, answer);
    }

    /// <summary>Sources track (and report) in <see cref="Coordinator.RelocationProtocol.TrackingBlockSize"/> units;
    /// an arriving disk's block map may use another size: every local block a reported range touches.</summary>
    public static IReadOnlyList<(long First, long Count)> ToLocalBlocks(IReadOnlyList<(long First, long Count)> runs, int localBlockSize)
    {
        const long unit = Coordinator.RelocationProtocol.TrackingBlockSize;
        int shift = int.Log2(localBlockSize);
        if (1L << shift == unit) return runs;
        var local = new BlockRuns();
        foreach (var (first, count) in runs)
        {
            long from = first * unit >> shift;
            long end = ((first + count) * unit + (1L << shift) - 1) >> shift;
            local.Add(from, end - from);
        }
        return local.Runs.ToList();
    }
}

/// <summary>A source's invalidation stream to the destination of one relocation.</summary>
internal sealed class OutgoingStream(string disk, string toSite, long epoch, string relocation)
{
    public string Disk { get; } = disk;
    public string ToSite { get; } = toSite;
    public long Epoch { get; } = epoch;
    public string Relocation { get; } = relocation;
    public long Seq { get; set; }
    public SortedDictionary<long, (IReadOnlyList<(long First, long Count)> Runs, DateTime Sent)> Unacked { get; } = new();
}
