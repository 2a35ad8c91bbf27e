using System.Net;
using Akka.Actor;
using Akka.Cluster;
using Akka.Hosting;
using Reloc.Actors.Coordinator;
using Reloc.Actors.History;
using Reloc.Actors.Site;
using Reloc.Management;
using static Reloc.Actors.Coordinator.RelocationProtocol;

namespace Reloc.Actors.Management;

/// <summary>
/// What the management API does (<see cref="ManagementRoutes"/> maps it to HTTP): any node answers for the
/// whole cluster, as Petabridge.Cmd's host does for <c>pbm</c>. Disk requests go to the sites (the disks'
/// authority), relocation requests to the migration coordinator. A refusal throws
/// <see cref="ManagementException"/> with the HTTP status it maps to.
/// </summary>
public sealed class ManagementService(ActorSystem system, IActorRef coordinator, string? version = null)
{
    public static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan CreateTimeout = TimeSpan.FromMinutes(30); // a disk from a large image file
    private static readonly TimeSpan CancelTimeout = TimeSpan.FromSeconds(60);

    public ActorSystem System => system;

    public ClusterView Cluster()
    {
        var cluster = Akka.Cluster.Cluster.Get(system);
        var state = cluster.State;
        var oldest = state.Members.Where(m => m.Status == MemberStatus.Up).OrderBy(m => m, Member.AgeOrdering).FirstOrDefault();
        return new ClusterView(cluster.SelfAddress.ToString(), state.Leader?.ToString(), oldest?.Address.ToString(),
            state.Members.Select(m => new MemberView(m.Address.ToString(), m.Status.ToString(), m.Roles.FirstOrDefault(),
                !state.Unreachable.Contains(m), m.AppVersion.ToString())).ToList(), version);
    }

    public MemberChange ChangeMember(string text, bool leave)
    {
        var cluster = Akka.Cluster.Cluster.Get(system);
        var member = cluster.State.Members.FirstOrDefault(m => m.Address.ToString() == text || m.Roles.Contains(text))
                     ?? throw NotFound($"no cluster member '{text}' (give its address or site name)");
        if (leave) cluster.Leave(member.Address);
        else cluster.Down(member.Address);
        return new MemberChange(member.Address.ToString(), member.Roles.FirstOrDefault(), leave ? "leaving" : "downed");
    }

    private ActorSelection SiteOf(string site)
    {
        var sites = SiteDirectory.Sites(system);
        if (!sites.Contains(site)) throw NotFound($"unknown site '{site}' (sites: {string.Join(", ", sites)})");
        return SiteDirectory.SiteOf(system, site);
    }

    public async Task<DiskCopy> CreateDiskAsync(CreateDiskRequest request)
    {
        RequestChecks.Check(request);
        var all = await SiteDirectory.ListDisks(system, AskTimeout);
        var existing = all.Answered.SelectMany(l => l.Disks).FirstOrDefault(d => d.Name == request.Name);
        if (existing is not null) throw Conflict($"disk '{request.Name}' already exists (on site {existing.Site})");
        var reply = await SiteOf(request.Site).Ask<object>(new SiteProtocol.CreateDisk(request.Name, request.From is null ? request.Size : 0, request.From), CreateTimeout);
        return reply switch
        {
            SiteProtocol.DiskInfo info => Views.Copy(info),
            SiteProtocol.Refused r => throw Conflict(r.Reason),
            SiteProtocol.Forbidden f => throw new ManagementException(f.Reason, HttpStatusCode.Forbidden),
            _ => throw Unexpected(reply),
        };
    }

    public async Task<DiskListView> DisksAsync()
    {
        var all = await SiteDirectory.ListDisks(system, AskTimeout);
        return new DiskListView(all.Answered.SelectMany(l => l.Disks).OrderBy(d => d.Name).ThenBy(d => d.Site).Select(Views.Copy).ToList(), all.Missing);
    }

    public async Task<DiskView> DiskAsync(string name)
    {
        var all = await SiteDirectory.ListDisks(system, AskTimeout);
        var copies = all.Answered.SelectMany(l => l.Disks).Where(d => d.Name == name).OrderBy(d => d.Site).ToList();
        if (copies.Count == 0)
            throw NotFound($"unknown disk '{name}'{(all.Missing.Count > 0 ? $" (sites not answering: {string.Join(", ", all.Missing)})" : "")}");
        var owner = Reconciler.OwnerOf(copies) ?? copies[0];
        RelocationInfo? relocation = null;
        try
        {
            var list = await coordinator.Ask<RelocationList>(new GetRelocations(), AskTimeout);
            relocation = list.Relocations.FirstOrDefault(r => r.Disk == name);
        }
        catch (AskTimeoutException) { } // shown without relocation detail
        return new DiskView(name, owner.Size, owner.Site, owner.Epoch, owner.Phase, owner.LocalBytes, owner.NbdUri,
            relocation is null ? null : Views.Relocation(relocation), copies.Select(Views.Copy).ToList());
    }

    /// <param name="force">Delete even while guests are connected to it (refused otherwise: 409 naming how many).</param>
    public async Task<DiskDeleted> DeleteDiskAsync(string name, bool force = false)
    {
        var all = await SiteDirectory.ListDisks(system, AskTimeout);
        var copies = all.Answered.SelectMany(l => l.Disks).Where(d => d.Name == name).ToList();
        if (copies.Count == 0) throw NotFound($"unknown disk '{name}'");
        var owned = Reconciler.OwnerOf(copies) is { Phase: SiteDisk.Owned } owner ? owner
                    : throw Conflict($"disk '{name}' is relocating ({string.Join(", ", copies.Select(c => $"{c.Phase} at {c.Site}"))}): cancel or finish the relocation first");
        var reply = await SiteOf(owned.Site).Ask<object>(new SiteProtocol.DeleteDisk(name, force), AskTimeout);
        return reply switch
        {
            SiteProtocol.Deleted d => new DiskDeleted(d.Name, owned.Site, d.ClientsCut),
            SiteProtocol.Refused r => throw Conflict(r.Reason),
            _ => throw Unexpected(reply),
        };
    }

    public async Task<Reloc.Management.RelocationAccepted> RelocateAsync(RelocateRequest request)
    {
        RequestChecks.Check(request);
        var warning = await CheckRoomAsync(request.Disk, request.To);
        var reply = await coordinator.Ask<object>(new Relocate(request.Disk, request.To, request.Mode == RelocationMode.Hybrid, request.Rate, request.Prefetch), AskTimeout);
        return reply switch
        {
            RelocationProtocol.RelocationAccepted a => new Reloc.Management.RelocationAccepted(a.Disk, a.FromSite, a.ToSite, a.Epoch, warning),
            RelocationQueued q => new Reloc.Management.RelocationAccepted(q.Disk, q.FromSite, q.ToSite, q.Epoch, warning, ManagementApi.QueuedPhase, q.Position),
            RelocationRefused r => throw Conflict(r.Reason),
            _ => throw Unexpected(reply),
        };
    }

    /// <summary>Relocates every disk <paramref name="site"/> owns now to the request's site, through the admission queue:
    /// 404 for a site not up, 409 for a drain into itself (the coordinator's refusals), 400 for a bad rate.
    /// The destination's room is not checked per disk: a relocation that runs out of room stalls and is cancelled
    /// before its handover (the disk stays where it is).</summary>
    public async Task<DrainView> DrainAsync(string site, DrainRequest request)
    {
        if (string.IsNullOrWhiteSpace(request.To)) throw BadRequest("to: the destination site is required");
        RequestChecks.CheckRate(request.Rate);
        var sites = SiteDirectory.Sites(system);
        foreach (var s in new[] { site, request.To })
            if (!sites.Contains(s)) throw NotFound($"unknown site '{s}', or not up (sites up: {string.Join(", ", sites)})");
        // Every queued relocation is persisted at its source before the answer: one site write per disk.
        return await AskCoordinatorAsync<DrainAccepted, DrainView>(new DrainSite(site, request.To, request.Mode == RelocationMode.Hybrid, request.Rate, request.Prefetch),
            d => new DrainView(d.FromSite, d.ToSite, d.Relocations.Select(Views.Relocation).ToList(), d.Skipped.Select(k => new DrainSkippedView(k.Disk, k.Reason)).ToList()),
            TimeSpan.FromSeconds(60));
    }

    /// <summary>Refuses (409) a relocation whose destination cannot hold the disk, before anything starts: the source says
    /// how many bytes the disk holds, the destination judges its free space now (<see cref="Site.Core.RoomCheck"/>).
    /// What this cannot judge (the disk is not where a relocation could start, an unknown site) the coordinator refuses.</summary>
    /// <returns>A warning (it fits, but not the disk's full size), or null.</returns>
    private async Task<string?> CheckRoomAsync(string disk, string to)
    {
        var all = await SiteDirectory.ListDisks(system, AskTimeout);
        var owner = Reconciler.OwnerOf(all.Answered.SelectMany(l => l.Disks).Where(d => d.Name == disk).ToList());
        if (owner is not { Phase: SiteDisk.Owned } || owner.Site == to || !SiteDirectory.Sites(system).Contains(to)) return null;
        var allocation = await SiteOf(owner.Site).Ask<object>(new SiteProtocol.GetAllocation(disk), AskTimeout) switch
        {
            SiteProtocol.Allocation a => a,
            SiteProtocol.Refused r => throw Conflict(r.Reason),
            var other => throw Unexpected(other),
        };
        return await SiteOf(to).Ask<object>(new SiteProtocol.CheckRoom(disk, allocation.Size, allocation.Allocated), AskTimeout) switch
        {
            SiteProtocol.RoomChecked { Refusal: { } why } => throw Conflict($"cannot relocate '{disk}' to {to}: {why}"),
            SiteProtocol.RoomChecked room => room.Warning,
            var other => throw Unexpected(other),
        };
    }

    public Task<List<RelocationView>> RelocationsAsync() =>
        AskCoordinatorAsync<RelocationList, List<RelocationView>>(new GetRelocations(), l => l.Relocations.Select(Views.Relocation).ToList());

    public Task<RelocationStatusView> RelocationAsync(string disk) =>
        AskCoordinatorAsync<RelocationStatus, RelocationStatusView>(new GetRelocationStatus(disk),
            s => new RelocationStatusView(Views.Relocation(s.Info), Views.Progress(s.Progress)));

    public Task<RelocationView> SetRateAsync(string disk, long rate) =>
        AskCoordinatorAsync<RelocationInfo, RelocationView>(new SetRelocationRate(disk, RequestChecks.CheckRate(rate)), Views.Relocation);

    public Task<RelocationView> SetWeightAsync(string disk, int weight) =>
        AskCoordinatorAsync<RelocationInfo, RelocationView>(new SetRelocationWeight(disk, RequestChecks.CheckWeight(weight)), Views.Relocation);

    public Task<LinkListView> LinksAsync() =>
        AskCoordinatorAsync<LinkList, LinkListView>(new GetLinks(), l => new LinkListView(l.Links.Select(Views.Link).ToList()));

    public Task<LinkView> SetLinkAsync(string siteA, string siteB, long bandwidth) =>
        AskCoordinatorAsync<LinkInfo, LinkView>(new SetLinkBudget(siteA, siteB, RequestChecks.CheckRate(bandwidth)), Views.Link);

    public Task<RelocationView> HandoverAsync(string disk) =>
        AskCoordinatorAsync<RelocationInfo, RelocationView>(new RequestHandover(disk), Views.Relocation);

    public Task<Reloc.Management.RelocationCancelled> CancelAsync(string disk) =>
        AskCoordinatorAsync<RelocationProtocol.RelocationCancelled, Reloc.Management.RelocationCancelled>(new CancelRelocation(disk),
            c => new Reloc.Management.RelocationCancelled(c.Disk), CancelTimeout);

    private IActorRef History => ActorRegistry.For(system).Get<RelocationHistory>();

    /// <param name="newest">Without <paramref name="after"/>: the newest <paramref name="limit"/> events (still oldest first).</param>
    public async Task<EventListView> EventsAsync(long? after, int limit, bool newest = false)
    {
        if (limit is < 1 or > 10_000) throw BadRequest($"limit must be 1..10000, not {limit}");
        var events = await History.Ask<HistoryProtocol.HistoryEvents>(new HistoryProtocol.GetEvents(after, limit, newest), AskTimeout);
        return new EventListView(events.Events.Select(HistoryViews.Event).ToList());
    }

    /// <summary>The newest <paramref name="limit"/> changes asked of any node's API (this node's copy of the audit), oldest first.</summary>
    public async Task<AuditListView> AuditAsync(int limit)
    {
        if (limit is < 1 or > 10_000) throw BadRequest($"limit {limit}: expected 1..10000");
        var records = await History.Ask<HistoryProtocol.AuditRecords>(new HistoryProtocol.GetAudit(limit), AskTimeout);
        return new AuditListView(records.Records.Select(HistoryViews.Audit).ToList());
    }

    public async Task<DiskHistoryView> DiskHistoryAsync(string disk)
    {
        var history = await History.Ask<HistoryProtocol.DiskHistory>(new HistoryProtocol.GetDiskHistory(disk), AskTimeout);
        return new DiskHistoryView(disk, history.Relocations.Select(HistoryViews.Row).ToList());
    }

    /// <summary>The relocation events after <paramref name="after"/> (none when null: only new ones), then each new one; ends when
    /// <paramref name="ct"/> is cancelled. A reader that falls more than a feed's capacity behind loses the oldest (bounded).</summary>
    public async IAsyncEnumerable<RelocationEventView> FollowEventsAsync(long? after, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        await using var feed = await RelocationEventFeed.OpenAsync(system, History, after, cancellation: ct);
        await foreach (var entry in feed.ReadAllAsync(ct))
            yield return HistoryViews.Event(entry);
    }

    private async Task<TView> AskCoordinatorAsync<T, TView>(object message, Func<T, TView> view, TimeSpan? timeout = null)
    {
        var reply = await coordinator.Ask<object>(message, timeout ?? AskTimeout);
        return reply switch
        {
            T ok => view(ok),
            RelocationRefused r => throw Conflict(r.Reason),
            _ => throw Unexpected(reply),
        };
    }

    private static ManagementException NotFound(string reason) => new(reason, HttpStatusCode.NotFound);
    private static ManagementException Conflict(string reason) => new(reason, HttpStatusCode.Conflict);
    public static ManagementException BadRequest(string reason) => new(reason, HttpStatusCode.BadRequest);
    private static ManagementException Unexpected(object reply) => new($"unexpected reply {reply.GetType().Name}", HttpStatusCode.InternalServerError);
}

/// <summary>The API's views of the actors' records (the console never sees the actors' types).</summary>
internal static class Views
{
    public static LinkView Link(LinkInfo l) => new(l.SiteA, l.SiteB, l.BandwidthBytesPerSecond, l.SetAtRunTime,
        l.Shares.Select(s => new LinkShareView(s.Disk, s.FromSite, s.ToSite, s.Weight, s.CapBytesPerSecond, s.RateBytesPerSecond)).ToList());

    public static DiskCopy Copy(SiteProtocol.DiskInfo d) =>
        new(d.Name, d.Size, d.Site, d.Epoch, d.Phase, d.NbdUri, d.Peer, d.LocalBytes, d.Clients, d.Writable, d.HandoverWanted, d.Relocation);

    public static RelocationView Relocation(RelocationInfo r) => new(r.Disk, r.FromSite, r.ToSite, r.Epoch, r.Phase, r.Position);

    public static ProgressView Progress(DiskProgress p) =>
        new(p.Disk, p.State, p.LocalBytes, p.TotalBytes, p.FetchedBytes, p.SkippedBytes, p.WrittenBytes, p.OnDemandFetches, p.RateBps, p.PrefetchWindow, p.PrefetchPaused);
}
