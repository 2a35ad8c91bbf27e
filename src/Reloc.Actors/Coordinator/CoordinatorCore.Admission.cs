using RelocationMode = Reloc.Management.RelocationMode;
using Reloc.Actors.Site;
using static Reloc.Actors.Coordinator.CoordinatorDecision;
using static Reloc.Actors.Coordinator.RelocationPhase;
using static Reloc.Actors.Coordinator.RelocationProtocol;

namespace Reloc.Actors.Coordinator;

/// <summary>The coordinator's admission queue (reloc.coordinator.max-concurrent-relocations-per-site): a relocation over
/// the limit waits, durable at its source (<see cref="QueueRelocation"/>), and starts first come first served
/// (<see cref="Admission.Admit"/>) when a relocation at its sites ends. A coordinator that takes over rebuilds the queue
/// from the sites' disk lists, as it does the relocations under way. Drains (<see cref="DrainSite"/>) go through it.</summary>
public sealed partial class CoordinatorCore
{
    /// <summary>A relocation waiting for a slot. <see cref="Durable"/>: its source has persisted it (until then it cannot
    /// start, and its requester has no answer yet).</summary>
    private sealed class Queued(string disk, string from, string to, long epoch, long size, string sourceUri, bool hybrid, long rate, bool prefetch,
        string relocation, long ticket, DateTime at)
    {
        public string Disk { get; } = disk;
        public string From { get; } = from;
        public string To { get; } = to;
        public long Epoch { get; } = epoch;
        public long Size { get; } = size;
        public string SourceUri { get; } = sourceUri;
        public bool Hybrid { get; } = hybrid;
        public long Rate { get; } = rate;
        public bool Prefetch { get; } = prefetch;
        public string Relocation { get; } = relocation;
        public long Ticket { get; } = ticket;
        public DateTime At { get; } = at;
        public bool Durable { get; set; }
        public DateTime DurableSince { get; set; }
        /// <summary>Who waits for it to be durable: an operator's reply address, or a drain.</summary>
        public object? Waiter { get; set; }
    }

    /// <summary>A drain's answer, sent once every relocation it queued is durable (or refused by its source).</summary>
    private sealed class DrainWait(DrainSite request, object replyTo, List<string> disks, List<DrainSkipped> skipped)
    {
        public DrainSite Request { get; } = request;
        public object ReplyTo { get; } = replyTo;
        public List<string> Disks { get; } = disks;
        public List<DrainSkipped> Skipped { get; } = skipped;
        public int Pending { get; set; }
    }

    /// <summary>First come first: ordered by ticket.</summary>
    private readonly List<Queued> _queue = [];
    /// <summary>Cancelled queued relocations whose source has not confirmed it forgot them (disk → (site, relocation)):
    /// sent again while a round shows them, and never adopted back.</summary>
    private readonly Dictionary<string, (string Site, string Relocation)> _unqueuing = new(StringComparer.Ordinal);
    private long _lastTicket;

    private Queued? QueuedOf(string disk) => _queue.FirstOrDefault(q => q.Disk == disk);

    private RelocationInfo InfoOf(Queued q) => new(q.Disk, q.From, q.To, q.Epoch, QueuedPhase, _queue.IndexOf(q) + 1);

    private static RelocationMode ModeOf(bool hybrid) => hybrid ? RelocationMode.Hybrid : RelocationMode.Postcopy;

    private Admission.Waiting WaitingOf(Queued q) => new(q.Disk, q.From, q.To, q.Durable);

    /// <summary>The queue as admission sees it: one whose site left the cluster neither starts nor holds its other site
    /// (it waits, in its place, until that site is back).</summary>
    private List<Admission.Waiting> Waiting() => _queue.Where(q => !Gone(q.From) && !Gone(q.To)).Select(WaitingOf).ToList();

    /// <summary>A relocation the sites allow (its disk owned at <paramref name="owner"/>): it starts now if admission
    /// lets it, else it joins the queue and its source is asked to keep it. <paramref name="waiter"/> is answered
    /// (accepted now, or queued once durable), or is a drain.</summary>
    private void Admit(string disk, SiteProtocol.DiskInfo owner, string to, bool hybrid, long rate, bool prefetch, object waiter, DateTime now)
    {
        var candidate = new Admission.Waiting(disk, owner.Site, to);
        if (Admission.Admit(_flows.Values.Select(f => (f.From, f.To)), [.. Waiting(), candidate], _admission.MaxPerSite).Contains(disk))
        {
            var flow = BeginFlow(disk, owner.Site, to, owner.Epoch, owner.Size, owner.NbdUri, newRelocationId(), hybrid, rate, prefetch, now,
                answer: waiter is DrainWait ? null : waiter);
            if (waiter is DrainWait drain) drain.Disks.Add(flow.Disk);
            return;
        }
        _lastTicket = Math.Max(now.Ticks, _lastTicket + 1);
        var q = new Queued(disk, owner.Site, to, owner.Epoch, owner.Size, owner.NbdUri, hybrid, rate, prefetch, newRelocationId(), _lastTicket, now) { Waiter = waiter };
        _queue.Add(q);
        if (waiter is DrainWait d) { d.Disks.Add(disk); d.Pending++; }
        Log(CoreLogLevel.Debug, $"relocation {q.Relocation} of {disk} {q.From}->{q.To} waits for a slot (place {_queue.Count}); asking {q.From} to keep it");
        Tell(q.From, new QueueRelocation(disk, q.Epoch, to, q.Ticket, hybrid, rate, prefetch, q.Relocation));
    }

    /// <summary>A flow begins (the operator's request admitted, or one from the queue): the source tracks writes first.</summary>
    private Flow BeginFlow(string disk, string from, string to, long epoch, long size, string sourceUri, string relocation, bool hybrid, long rate,
        bool prefetch, DateTime now, object? answer)
    {
        var flow = new Flow(disk, from, to, epoch, size, sourceUri, relocation, FlowEvent.Accepted, Starting, now, OnMoved)
        {
            Hybrid = hybrid, Rate = rate, RateKnown = true, Prefetch = prefetch, Mode = ModeOf(hybrid),
        };
        _flows[disk] = flow;
        Moved(flow, null, FlowEvent.Accepted, now);
        Log(CoreLogLevel.Debug, $"relocation accepted: {flow.View}"); // at Information: its lifecycle event (Started)
        if (answer is not null) Answer(answer, new RelocationAccepted(disk, flow.From, flow.To, flow.Epoch));
        // The source tracks writes before the destination copies anything, so no write escapes the invalidations.
        Tell(flow.From, new StartOutgoing(flow.Disk, flow.To, flow.Epoch, TrackingBlockSize, flow.Relocation));
        return flow;
    }

    /// <summary>After every input: the queued relocations a freed slot (or a queue that just became durable) lets start.</summary>
    private void AdmitQueued(DateTime now)
    {
        if (_queue.Count == 0) return;
        var start = Admission.Admit(_flows.Values.Select(f => (f.From, f.To)), Waiting(), _admission.MaxPerSite);
        foreach (var disk in start)
        {
            var q = QueuedOf(disk)!;
            _queue.Remove(q);
            if (_flows.ContainsKey(disk)) continue; // the sites show it under way already (adopted): nothing to start
            Log(CoreLogLevel.Debug, $"relocation {q.Relocation} of {disk} {q.From}->{q.To} leaves the queue after {(now - q.At).TotalSeconds:0.0} s");
            BeginFlow(q.Disk, q.From, q.To, q.Epoch, q.Size, q.SourceUri, q.Relocation, q.Hybrid, q.Rate, q.Prefetch, now, answer: null);
        }
    }

    private Lifecycle QueueEvent(Queued q, RelocationEventKind kind, DateTime now, string detail) =>
        new(kind, q.Relocation, q.Disk, q.From, q.To, ModeOf(q.Hybrid), q.Epoch, null, now,
            Duration: kind == RelocationEventKind.Cancelled ? now - q.At : null, Detail: detail);

    private void OnQueuedAt(QueuedAt m, DateTime now)
    {
        if (QueuedOf(m.Disk) is not { } q || q.Relocation != m.Relocation || q.Durable) return; // a retry's answer, or cancelled meanwhile
        q.Durable = true;
        q.DurableSince = now;
        var place = _queue.IndexOf(q) + 1;
        _out.Add(QueueEvent(q, RelocationEventKind.Queued, now, $"waits in the admission queue at place {place}"));
        switch (q.Waiter)
        {
            case DrainWait drain: DrainStepDone(drain); break;
            case { } to: Answer(to, new RelocationQueued(q.Disk, q.From, q.To, q.Epoch, place)); break;
        }
        q.Waiter = null;
    }

    private void OnQueueRefused(QueueRefused m)
    {
        if (QueuedOf(m.Disk) is not { } q || q.Relocation != m.Relocation) return;
        _queue.Remove(q);
        Log(CoreLogLevel.Info, $"relocation {q.Relocation} of {q.Disk} {q.From}->{q.To} not queued: {m.Reason}");
        switch (q.Waiter)
        {
            case DrainWait drain:
                drain.Disks.Remove(q.Disk);
                drain.Skipped.Add(new DrainSkipped(q.Disk, m.Reason));
                DrainStepDone(drain);
                break;
            case { } to: Answer(to, new RelocationRefused(m.Reason)); break;
        }
    }

    /// <summary>Cancels a queued relocation: out of the queue, and its source forgets it. Nothing ran, so nothing else changes.</summary>
    private void CancelQueued(Queued q, object replyTo, DateTime now)
    {
        _queue.Remove(q);
        _unqueuing[q.Disk] = (q.From, q.Relocation);
        Tell(q.From, new Unqueue(q.Disk, q.Relocation));
        switch (q.Waiter)
        {
            case DrainWait drain:
                drain.Disks.Remove(q.Disk);
                drain.Skipped.Add(new DrainSkipped(q.Disk, "cancelled while being queued"));
                DrainStepDone(drain);
                break;
            case { } to: Answer(to, new RelocationRefused($"the relocation of '{q.Disk}' was cancelled while being queued")); break;
        }
        if (q.Durable) _out.Add(QueueEvent(q, RelocationEventKind.Cancelled, now, "cancelled while queued"));
        Log(CoreLogLevel.Debug, $"queued relocation {q.Relocation} of {q.Disk} {q.From}->{q.To} cancelled; it never started");
        Answer(replyTo, new RelocationCancelled(q.Disk));
    }

    private void OnDrain(DrainSite m, object replyTo)
    {
        if (m.FromSite == m.ToSite) { Answer(replyTo, new RelocationRefused($"cannot drain site {m.FromSite} into itself: name another site with --to")); return; }
        if (m.RateBytesPerSecond < 0) { Answer(replyTo, new RelocationRefused($"rate must not be negative, not {m.RateBytesPerSecond}")); return; }
        foreach (var site in new[] { m.FromSite, m.ToSite })
            if (Gone(site))
            {
                Answer(replyTo, new RelocationRefused($"unknown site '{site}', or not up (sites up: {string.Join(", ", _sites!.Order(StringComparer.Ordinal))})"));
                return;
            }
        _out.Add(new AskAllSitesForDrain(m, replyTo));
    }

    /// <summary>Every site's disks for a drain: each disk <see cref="DrainSite.FromSite"/> owns now is admitted like an
    /// operator's relocation; the others there are skipped with why. Disks created at the site later are not included.</summary>
    private void OnDrainFound(CoordinatorInput.DrainFound found)
    {
        var (m, replyTo, now) = (found.Request, found.ReplyTo, found.Now);
        if (found.Lists.Count == 0) { Answer(replyTo, new RelocationRefused("could not reach every site to list the disks to drain")); return; }
        var drain = new DrainWait(m, replyTo, [], []);
        foreach (var copies in found.Lists.SelectMany(l => l.Disks).GroupBy(d => d.Name, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            if (!copies.Any(c => c.Site == m.FromSite)) continue;
            var disk = copies.Key;
            var owner = Reconciler.OwnerOf(copies.ToList());
            string? skip =
                _flows.TryGetValue(disk, out var f) ? $"already relocating {f.From}->{f.To} ({f.Phase.Name()})"
                : QueuedOf(disk) is { } q ? $"already queued for {q.To} (place {_queue.IndexOf(q) + 1})"
                : owner is null ? "no site owns it now"
                : owner.Site != m.FromSite ? $"owned by {owner.Site} now (its copy at {m.FromSite} is {copies.First(c => c.Site == m.FromSite).Phase})"
                : owner.Phase != SiteDisk.Owned ? $"already relocating ({owner.Phase} at {owner.Site})"
                : owner.Queued is { } queued ? $"already queued for {queued.ToSite}"
                : copies.FirstOrDefault(c => c.Site != owner.Site) is { } leftover
                    ? $"site {leftover.Site} still holds a {leftover.Phase} copy from an earlier relocation (released first; drain again shortly)"
                : null;
            if (skip is not null) { drain.Skipped.Add(new DrainSkipped(disk, skip)); continue; }
            Admit(disk, owner!, m.ToSite, m.Hybrid, m.RateBytesPerSecond, m.Prefetch, drain, now);
        }
        Log(CoreLogLevel.Info, $"drain of {m.FromSite} into {m.ToSite}: {drain.Disks.Count} disk(s) through the admission queue, {drain.Skipped.Count} skipped");
        if (drain.Pending == 0) AnswerDrain(drain);
    }

    private void DrainStepDone(DrainWait drain)
    {
        if (--drain.Pending == 0) AnswerDrain(drain);
    }

    private void AnswerDrain(DrainWait drain)
    {
        var infos = drain.Disks.Select(d => _flows.TryGetValue(d, out var f) ? f.Info : QueuedOf(d) is { } q ? InfoOf(q) : null).OfType<RelocationInfo>().ToList();
        Answer(drain.ReplyTo, new DrainAccepted(drain.Request.FromSite, drain.Request.ToSite, infos, drain.Skipped));
    }

    /// <summary>A reconcile round and the queue: a queued relocation a site keeps that this coordinator does not know (it just
    /// took over) joins the queue in its ticket's order; one its source no longer keeps (it answered, the disk is gone or
    /// moved) leaves it; a cancel whose source still shows it is sent again.</summary>
    private void ObserveQueue(CoordinatorInput.Observed o)
    {
        var answered = o.Lists.Select(l => l.Site).ToHashSet(StringComparer.Ordinal);
        var shown = o.Lists.SelectMany(l => l.Disks.Where(d => d.Site == l.Site && d.Phase == SiteDisk.Owned && d.Queued is not null))
            .GroupBy(d => (d.Name, d.Queued!.Relocation)).ToDictionary(g => g.Key, g => g.First());
        foreach (var (disk, (site, relocation)) in _unqueuing.ToList())
        {
            if (shown.ContainsKey((disk, relocation))) Tell(site, new Unqueue(disk, relocation));
            else if (answered.Contains(site)) _unqueuing.Remove(disk);
        }
        foreach (var q in _queue.Where(q => q.Durable && q.DurableSince < o.AskedAt && answered.Contains(q.From) && !shown.ContainsKey((q.Disk, q.Relocation))).ToList())
        {
            _queue.Remove(q);
            Log(CoreLogLevel.Warning, $"queued relocation {q.Relocation} of {q.Disk} {q.From}->{q.To} dropped: {q.From} no longer keeps it (the disk was deleted or moved)");
            _out.Add(QueueEvent(q, RelocationEventKind.Cancelled, o.Now, $"{q.From} no longer keeps it queued"));
        }
        foreach (var ((disk, relocation), d) in shown.OrderBy(s => s.Value.Queued!.Ticket))
        {
            if (_unqueuing.ContainsKey(disk) || _flows.ContainsKey(disk) || QueuedOf(disk) is not null) continue;
            var k = d.Queued!;
            var q = new Queued(disk, d.Site, k.ToSite, d.Epoch, d.Size, d.NbdUri, k.Hybrid, k.RateBytesPerSecond, k.Prefetch, relocation, k.Ticket, o.Now)
            { Durable = true, DurableSince = o.Now };
            var at = _queue.FindIndex(e => e.Ticket > k.Ticket);
            _queue.Insert(at < 0 ? _queue.Count : at, q);
            _lastTicket = Math.Max(_lastTicket, k.Ticket);
            Log(CoreLogLevel.Info, $"queued relocation {relocation} of {disk} {q.From}->{q.To} picked up from the sites (place {_queue.IndexOf(q) + 1})");
        }
    }

    private static DateTime? NowOf(CoordinatorInput input) => input switch
    {
        CoordinatorInput.Found f => f.Now,
        CoordinatorInput.Command c => c.Now,
        CoordinatorInput.FromSite s => s.Now,
        CoordinatorInput.Tick t => t.Now,
        CoordinatorInput.Observed o => o.Now,
        CoordinatorInput.DrainFound d => d.Now,
        _ => null, // a relocate request frees no slot: its answer (Found) comes with a time
    };

    private RelocationRefused AlreadyQueued(Queued q) =>
        new($"disk '{q.Disk}' is already queued for {q.To} (place {_queue.IndexOf(q) + 1}): cancel it first to change it");

    private static RelocationRefused Waits(Queued q) =>
        new($"disk '{q.Disk}' waits in the admission queue for {q.To}: nothing runs yet (cancel it, or wait until it starts)");

    private static string DiskOf(object request) => request switch
    {
        SetRelocationRate m => m.Disk,
        SetRelocationWeight m => m.Disk,
        RequestHandover m => m.Disk,
        _ => "",
    };
}
