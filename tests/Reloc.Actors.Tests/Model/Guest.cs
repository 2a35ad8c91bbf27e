using Reloc.Actors.Site;

namespace Reloc.Actors.Tests.Model;

internal sealed partial class Sim
{
    private readonly Dictionary<int, Action<object>> _asks = [];
    private readonly List<(SiteModel Site, int Inc, object Body)> _proxyBuffer = [];
    private int _askIds;

    /// <summary>An Ask's temporary actor on <paramref name="node"/>: the first answer goes to <paramref name="answer"/>.</summary>
    public Addr NewAsk(string node, int incarnation, Action<object> answer)
    {
        int id = ++_askIds;
        _asks[id] = answer;
        return new Addr(node, incarnation, id);
    }

    /// <summary>Sender.Tell: to one incarnation of an actor (a coordinator, a site actor, an ask, the operator).</summary>
    public void Reply(Addr from, Addr to, object body)
    {
        if (to.Node == "operator")
        {
            if (Tracing) Trace($"{from.Node}->operator {Fmt(body)}");
            return;
        }
        if (to.Ask != 0)
        {
            Send(from.Node, to.Node, body, () => { if (_asks.Remove(to.Ask, out var answer)) answer(body); });
            return;
        }
        var coordinator = Coordinators.FirstOrDefault(k => k.Node == to.Node);
        if (coordinator is not null)
        {
            Send(from.Node, to.Node, body, () => coordinator.Receive(body, from));
            return;
        }
        var site = Site(to.Node);
        Send(from.Node, to.Node, body, () => { if (site.Up && site.Inc == to.Incarnation) site.Receive(body, from); });
    }

    /// <summary>ActorSelection of a site actor (SiteNode.SitePath): whichever incarnation runs when it arrives.</summary>
    public void ToSite(string fromNode, string site, object body, Addr sender)
    {
        var s = Site(site);
        Send(fromNode, site, body, () => { if (s.Up) s.Receive(body, sender); });
    }

    /// <summary>A site's message to /user/coordinator: the local singleton proxy forwards it to the singleton,
    /// buffering while there is none (the buffer dies with the site).</summary>
    public void ToCoordinator(SiteModel site, object body)
    {
        var c = Coordinator;
        if (c is null)
        {
            _proxyBuffer.Add((site, site.Inc, body));
            return;
        }
        var from = site.Self;
        Send(site.Name, c.Node, body, () => c.Receive(body, from));
    }

    private void FlushProxies()
    {
        var buffered = _proxyBuffer.ToList();
        _proxyBuffer.Clear();
        foreach (var (site, inc, body) in buffered)
            if (site.Up && site.Inc == inc) ToCoordinator(site, body);
    }

    /// <summary>At the moment a destination takes ownership, every block it holds as local must be the
    /// source's final content (the fenced source's, flushed): else a write is lost at the handover.</summary>
    public void CheckHandover(SiteModel destination, DiskActorModel disk, string sourceName)
    {
        var source = Site(sourceName);
        if (!source.Images.TryGetValue(SiteModel.ImagePathOf(sourceName, disk.Name), out var image)) return;
        var final = source.Up && source.Owned.TryGetValue(disk.Name, out var owned) ? owned.Image.Volatile : image.Durable;
        for (int b = 0; b < O.Blocks; b++)
            if (disk.State.Map.IsLocal(b) && disk.Image.Volatile[b] != final[b])
                throw new ModelViolation(disk.CopiedUntracked ? "4 handover keeps every write: copy taken while the source did not track" : "4 handover keeps every write",
                    $"{destination.Name} takes ownership at epoch {disk.State.Epoch} with block {b} local at version {disk.Image.Volatile[b]} but the source {sourceName} has version {final[b]}" +
                    $"{(disk.CopiedUntracked ? $" (the source served this copy blocks while it did not track writes for {destination.Name} at epoch {disk.IncomingEpoch})" : "")}: {Describe()}");
    }

    private void AfterEvent()
    {
        foreach (var s in Sites) s.PollClients();
    }
}

/// <summary>
/// The VM: one request at a time (QD1) on the NBD export of the site it runs at. Writes carry a new
/// version of one block; a FLUSH covers the writes acknowledged at that site before it. It migrates as
/// QEMU does: connects at the destination early (and reads there), then at the switchover FLUSHes at
/// the source and moves; a fenced source makes it switch over. What it checks: a read never returns a
/// version older than the last acknowledged write of that block (lowered to the last flushed one when
/// the site that acknowledged it crashed before a FLUSH).
/// </summary>
internal sealed class Guest(Sim sim, int blocks)
{
    private sealed class Op
    {
        public int Id { get; init; }
        public required string Kind { get; init; }
        public required string Site { get; init; }
        public int Block { get; init; }
        public int Version { get; init; }
        public int MinVersion { get; init; }
        public Dictionary<int, int>? Covered { get; init; }
        public Action? Then { get; init; }
    }

    public string? At { get; private set; }
    public HashSet<string> Connected { get; } = new(StringComparer.Ordinal);
    public int[] LastIssued { get; } = Enumerable.Range(0, blocks).Select(sim.O.InitialVersion).ToArray();
    /// <summary>The last acknowledged version of each block (which reads must not go below).</summary>
    public int[] Acked { get; } = Enumerable.Range(0, blocks).Select(sim.O.InitialVersion).ToArray();
    /// <summary>The last version of each block acknowledged before an acknowledged FLUSH at the same site.</summary>
    public int[] Flushed { get; } = Enumerable.Range(0, blocks).Select(sim.O.InitialVersion).ToArray();
    private readonly Dictionary<string, Dictionary<int, int>> _unflushed = new(StringComparer.Ordinal);
    private Op? _pending;
    private int _ids;
    private string? _migratingTo;

    public bool Idle => _pending is null;
    private Random Rng => sim.Rng;

    public void Act()
    {
        if (_pending is not null) return;
        if (At is null) { Attach(); return; }
        var site = sim.Site(At);
        if (!site.Up) return; // QEMU's NBD client reconnects; nothing to do until the site is back
        var export = site.ExportOf(Sim.DiskName);
        if (export is null || !site.State.TryGet(Sim.DiskName, out var disk)) { Attach(); return; }
        if (disk.Phase == DiskPhase.Fenced || export.Fenced)
        {
            // The source refuses writes: the hypervisor's switchover (FLUSH at the source, go on at the destination).
            var next = disk.Phase == DiskPhase.Fenced ? disk.Peer : null;
            Flush(At, () => { if (next is not null) MoveTo(next); else Attach(); });
            return;
        }
        if (_migratingTo is not null)
        {
            var destination = sim.Site(_migratingTo);
            if (!destination.Up || destination.ExportOf(Sim.DiskName) is null)
            {
                Connected.Remove(_migratingTo); // the migration was abandoned
                _migratingTo = null;
            }
            else
            {
                int dice = Rng.Next(10);
                if (dice < 2) { Read(_migratingTo, Rng.Next(blocks)); return; } // the incoming QEMU reads first
                if (dice < 4) { var to = _migratingTo; Flush(At, () => MoveTo(to)); return; } // switchover
            }
        }
        else if (sim.O.GuestMigrates && disk.Phase == DiskPhase.Outgoing && Rng.Next(20) == 0 && sim.SiteOrNull(disk.Peer)?.ExportOf(Sim.DiskName) is not null)
        {
            _migratingTo = disk.Peer;
            Connected.Add(disk.Peer); // QEMU -incoming connects to the destination's export
            return;
        }
        int op = Rng.Next(100);
        if (!sim.Chaos) op = 50 + Rng.Next(50); // after the chaos the VM keeps running but writes no more (reads fetch what post-copy without prefetch leaves)
        if (op < 50) Write(At, Rng.Next(blocks), whole: Rng.Next(3) != 0);
        else if (op < 80) Read(At, Rng.Next(blocks));
        else Flush(At, null);
    }

    /// <summary>Where the VM (re)starts: the site that accepts writes, else a destination that will.</summary>
    private void Attach()
    {
        var target = sim.Sites.FirstOrDefault(s => s.AcceptsWritesAt(Sim.DiskName) is not null)
                     ?? sim.Sites.FirstOrDefault(s => s.Up && s.State.TryGet(Sim.DiskName, out var d) && d.Phase == DiskPhase.Incoming);
        if (target is not null) MoveTo(target.Name);
    }

    private void MoveTo(string site)
    {
        if (At is not null && At != site) Connected.Remove(At);
        if (_migratingTo is not null && _migratingTo != site) Connected.Remove(_migratingTo);
        _migratingTo = null;
        if (sim.Tracing && At != site) sim.Trace($"guest moves {At ?? "-"} -> {site}");
        At = site;
        Connected.Add(site);
    }

    private void Write(string site, int block, bool whole)
    {
        int version = ++LastIssued[block];
        Issue(new Op { Id = ++_ids, Kind = whole ? "write" : "partial write", Site = site, Block = block, Version = version });
    }

    private void Read(string site, int block) =>
        Issue(new Op { Id = ++_ids, Kind = "read", Site = site, Block = block, MinVersion = Acked[block] });

    private void Flush(string site, Action? then) =>
        Issue(new Op { Id = ++_ids, Kind = "flush", Site = site, Covered = new Dictionary<int, int>(_unflushed.GetValueOrDefault(site) ?? []), Then = then });

    private void Issue(Op op)
    {
        _pending = op;
        Connected.Add(op.Site);
        if (sim.Tracing) sim.Trace($"guest {op.Kind} at {op.Site}{(op.Kind == "flush" ? "" : $" block {op.Block}")}{(op.Version > 0 ? $" v{op.Version}" : "")}");
        var site = sim.Site(op.Site);
        int inc = site.Inc;
        void Reply(bool ok, int? version) => sim.Local(site.Name, "guest", () => { if (site.Up && site.Inc == inc) Finish(op, ok, version); });
        switch (site.ExportOf(Sim.DiskName))
        {
            case null:
                Finish(op, false, null);
                break;
            case { Device: null } owned:
                // OwnedDisk over the image, on the NBD thread: done at once, the reply reaches the guest a little later.
                if (op.Kind.EndsWith("write")) Reply(owned.Write(op.Block, op.Version), null);
                else if (op.Kind == "read") Reply(owned.Tracker.GuestMayRead, owned.Tracker.GuestMayRead ? owned.Image.Volatile[op.Block] : null); // fenced: refused
                else
                {
                    owned.Image.Sync();
                    Reply(true, null);
                }
                break;
            case { Device: { } disk } owned:
                // OwnedDisk over the RelocatingDisk: writes pass the fence and are tracked when done.
                if (op.Kind.EndsWith("write"))
                {
                    if (!owned.Enter()) { Reply(false, null); break; }
                    disk.GuestWrite(op.Block, op.Version, op.Kind == "write", r =>
                    {
                        owned.Exit(op.Block);
                        Finish(op, r, null);
                    });
                }
                else if (op.Kind == "read")
                {
                    if (!owned.Tracker.GuestMayRead) { Reply(false, null); break; } // fenced: refused
                    disk.GuestRead(op.Block, v => Finish(op, v is not null, v));
                }
                else disk.GuestFlush(r => Finish(op, r, null));
                break;
        }
    }

    private void Finish(Op op, bool ok, int? version)
    {
        if (_pending?.Id != op.Id) return;
        _pending = null;
        if (sim.Tracing) sim.Trace($"guest {op.Kind} at {op.Site}{(op.Kind == "flush" ? "" : $" block {op.Block}")} {(ok ? "ok" : "FAILED")}{(version is not null ? $" -> v{version}" : "")}");
        if (!ok) sim.Stats.FailedOps++;
        else if (op.Kind.EndsWith("write"))
        {
            sim.Stats.Writes++;
            Acked[op.Block] = op.Version;
            if (!_unflushed.TryGetValue(op.Site, out var at)) _unflushed[op.Site] = at = [];
            at[op.Block] = op.Version;
        }
        else if (op.Kind == "read")
        {
            sim.Stats.Reads++;
            // A crash since the read started may have taken an unflushed write with it (Acked lowered meanwhile).
            int min = Math.Min(op.MinVersion, Acked[op.Block]);
            if (version < min || version > LastIssued[op.Block])
                throw new ModelViolation("4 reads see acknowledged writes",
                    $"a read of block {op.Block} at {op.Site} returned version {version}, but version {min} was acknowledged before it started: {sim.Describe()}");
        }
        else
        {
            sim.Stats.Flushes++;
            foreach (var (b, v) in op.Covered!)
            {
                Flushed[b] = Math.Max(Flushed[b], v);
                if (_unflushed.TryGetValue(op.Site, out var at) && at.TryGetValue(b, out var current) && current == v) at.Remove(b);
            }
        }
        op.Then?.Invoke();
    }

    /// <summary>The site's process died: its connections drop, its requests fail, and what it acknowledged
    /// without a FLUSH may be gone (the guest may not count on it any more).</summary>
    public void OnSiteCrash(string site)
    {
        Connected.Remove(site);
        if (_pending?.Site == site) Finish(_pending, false, null);
        if (_unflushed.Remove(site, out var lost))
            foreach (var (b, v) in lost)
                if (Acked[b] == v) Acked[b] = Flushed[b];
    }

    /// <summary>The disk's export at the site was removed (dropped or released): its connection closes.</summary>
    public void OnExportGone(string site)
    {
        if (_pending?.Site == site) Finish(_pending, false, null);
    }

    public string Describe() =>
        $"guest at {At ?? "-"}{(_migratingTo is not null ? $" (migrating to {_migratingTo})" : "")}{(_pending is not null ? $" waiting on {_pending.Kind} at {_pending.Site}" : "")} acked [{string.Join(",", Acked)}] flushed [{string.Join(",", Flushed)}]";
}
