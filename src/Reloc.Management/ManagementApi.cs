using System.Text.Json;
using System.Text.Json.Serialization;

namespace Reloc.Management;

/// <summary>
/// The management API of a site node (HTTP, default 127.0.0.1:9110): its routes, and the typed
/// requests and answers below, serialised with <see cref="ManagementJson"/> (source-generated, camelCase).
/// Any node answers for the whole cluster. Sizes and rates are plain numbers of bytes (per second):
/// parsing "10GiB" is the console's job. Errors are RFC 7807 problem details (<see cref="Problem"/>).
/// </summary>
public static class ManagementApi
{
    public const int DefaultPort = 9110;
    public const string Prefix = "/api/v1";
    public const string Cluster = Prefix + "/cluster";
    public const string Disks = Prefix + "/disks";
    public const string Relocations = Prefix + "/relocations";
    public const string Events = Prefix + "/events";
    public const string Audit = Prefix + "/audit";
    public const string Links = Prefix + "/links";
    public const string Sites = Prefix + "/sites";
    public const string OpenApi = "/openapi/v1.json";
    public const string Health = "/healthz";
    public const string Ready = "/readyz";
    public const string Metrics = "/metrics";

    public static string Member(string member, string action) => $"{Cluster}/members/{Uri.EscapeDataString(member)}/{action}";
    public static string Disk(string name) => $"{Disks}/{Uri.EscapeDataString(name)}";
    public static string DiskHistory(string name) => $"{Disk(name)}/history";
    public static string Relocation(string disk) => $"{Relocations}/{Uri.EscapeDataString(disk)}";
    /// <summary>Server-sent events: one <see cref="SseProgress"/> per look at the relocation, then one <see cref="SseDone"/>.</summary>
    public static string RelocationProgress(string disk) => $"{Relocation(disk)}/progress";
    public static string RelocationAction(string disk, string action) => $"{Relocation(disk)}/{action}";
    /// <summary>The link between two sites (either order names the same link).</summary>
    public static string Link(string siteA, string siteB) => $"{Links}/{Uri.EscapeDataString(siteA)}/{Uri.EscapeDataString(siteB)}";
    /// <summary>POST: relocate every disk the site owns to another (<see cref="DrainRequest"/>), through the admission queue.</summary>
    public static string SiteDrain(string site) => $"{Sites}/{Uri.EscapeDataString(site)}/drain";

    /// <summary>The phase of a relocation waiting in the admission queue (<see cref="RelocationView.Position"/>: its place).</summary>
    public const string QueuedPhase = "queued";

    /// <summary>The event names of a relocation's progress stream.</summary>
    public const string SseProgress = "progress", SseDone = "done", SseProblem = "problem";
    /// <summary>The event name of the cluster's event stream (<see cref="Events"/>?follow=true).</summary>
    public const string SseRelocationEvent = "relocation";
}

public enum RelocationMode
{
    [JsonStringEnumMemberName("postcopy")] Postcopy,
    [JsonStringEnumMemberName("hybrid")] Hybrid,
}

// ---- requests ----

public sealed record CreateDiskRequest(string Name, string Site, long Size = 0, string? From = null);

public sealed record RelocateRequest(string Disk, string To, RelocationMode Mode = RelocationMode.Postcopy, long Rate = 0, bool Prefetch = true);

public sealed record RateRequest(long Rate);

/// <summary>A relocation's weight on its link (1..1000, default 1).</summary>
public sealed record WeightRequest(int Weight);

/// <summary>A link's budget in bytes per second, each direction (0: none).</summary>
public sealed record LinkRequest(long Bandwidth);

// ---- answers ----

public sealed record MemberView(string Address, string Status, string? Site, bool Reachable, string? Version = null);

public sealed record ClusterView(string Self, string? Leader, string? Coordinator, IReadOnlyList<MemberView> Members, string? Version = null);

public sealed record MemberChange(string Address, string? Site, string Action);

/// <summary>One copy of a disk at one site (a relocating disk has two).</summary>
public sealed record DiskCopy(string Name, long Size, string Site, long Epoch, string Phase, string NbdUri, string Peer = "",
    long LocalBytes = 0, int Clients = 0, bool Writable = false, bool HandoverWanted = false, string Relocation = "");

public sealed record DiskListView(IReadOnlyList<DiskCopy> Disks, IReadOnlyList<string> UnreachableSites);

/// <param name="Position">Its place in the admission queue (1: next) when <paramref name="Phase"/> is "queued"; 0 under way.</param>
public sealed record RelocationView(string Disk, string FromSite, string ToSite, long Epoch, string Phase, int Position = 0);

/// <summary>A drain: relocate every disk <c>{site}</c> owns now to <paramref name="To"/> (disks created there later are not included).</summary>
public sealed record DrainRequest(string To, RelocationMode Mode = RelocationMode.Postcopy, long Rate = 0, bool Prefetch = true);

public sealed record DrainSkippedView(string Disk, string Reason);

/// <summary>What a drain relocates (started, or queued with its place) and what it left out, with why.</summary>
public sealed record DrainView(string FromSite, string ToSite, IReadOnlyList<RelocationView> Relocations, IReadOnlyList<DrainSkippedView> Skipped);

/// <summary>A relocation on a link: its weight, the operator's cap (0: none) and the rate its destination was given (bytes/s; 0: unlimited).</summary>
public sealed record LinkShareView(string Disk, string FromSite, string ToSite, int Weight, long Cap, long Rate);

/// <summary>The link between two sites: its budget each way (bytes/s; 0: none), whether it was set at run time
/// (else it is reloc.links'), and the relocations on it.</summary>
public sealed record LinkView(string SiteA, string SiteB, long Bandwidth, bool SetAtRunTime, IReadOnlyList<LinkShareView> Relocations);

public sealed record LinkListView(IReadOnlyList<LinkView> Links);

public sealed record DiskView(string Name, long Size, string Owner, long Epoch, string Phase, long LocalBytes, string NbdUri,
    RelocationView? Relocation, IReadOnlyList<DiskCopy> Copies);

/// <param name="ClientsCut">Guest connections a forced delete cut off (their requests fail from then on).</param>
public sealed record DiskDeleted(string Name, string Site, int ClientsCut = 0);

/// <param name="Warning">The destination can hold the disk's data now, but not its full size (set when so).</param>
/// <param name="State">"started", or "queued" (over reloc.coordinator.max-concurrent-relocations-per-site: it waits, kept at its
/// source, and starts first come first served; <paramref name="Position"/> is its place, 1: next).</param>
public sealed record RelocationAccepted(string Disk, string FromSite, string ToSite, long Epoch, string? Warning = null, string State = "started", int Position = 0);

public sealed record RelocationCancelled(string Disk);

/// <summary>The destination's view of a relocating disk (bytes; rate in bytes per second).</summary>
public sealed record ProgressView(string Disk, string State, long LocalBytes, long TotalBytes, long FetchedBytes, long SkippedBytes,
    long WrittenBytes, long OnDemandFetches, long RateBps, int PrefetchWindow, bool PrefetchPaused);

public sealed record RelocationStatusView(RelocationView Info, ProgressView Progress);

/// <summary>One look at a relocation on its progress stream: the coordinator's phase, and the destination's
/// progress when it answered (null between two steps).</summary>
public sealed record ProgressSample(RelocationView Info, ProgressView? Progress);

/// <summary>The last event of a progress stream: the relocation is no longer listed; where the disk is now
/// (null when it was deleted).</summary>
public sealed record ProgressDone(DiskView? Disk);

/// <summary>RFC 7807 problem details, as the node sends them (application/problem+json).</summary>
public sealed record Problem(string? Type, string? Title, int? Status, string? Detail);

public sealed record Health(string Status, IReadOnlyDictionary<string, string> Checks);

/// <summary>
/// One relocation lifecycle event as this node recorded it. <paramref name="Seq"/>: this node's order of receipt
/// (rising across its restarts; the SSE id, so Last-Event-ID resumes). <paramref name="Kind"/>: started, adopted,
/// phase-changed, handover, completed, cancelled, superseded, stalled. Names are kebab-case.
/// </summary>
public sealed record RelocationEventView(long Seq, Guid Id, DateTime Time, string Relocation, string Disk, string FromSite, string ToSite,
    string? Mode, long Epoch, string Kind, string? Phase, string? Trigger = null, double? DurationSeconds = null,
    long? TotalBytes = null, long? FetchedBytes = null, long? SkippedBytes = null, long? Misses = null, string? Detail = null);

public sealed record EventListView(IReadOnlyList<RelocationEventView> Events);

/// <summary>One relocation of a disk: when, from, to, mode, what triggered its handover, how long it took, what it
/// moved, and how it ended (completed, cancelled, superseded, in-progress).</summary>
public sealed record RelocationHistoryRow(string Relocation, DateTime Started, string FromSite, string ToSite, string? Mode, string? Trigger,
    double? DurationSeconds, long? TotalBytes, long? FetchedBytes, long? SkippedBytes, long? Misses, string Outcome, string? Phase);

public sealed record DiskHistoryView(string Disk, IReadOnlyList<RelocationHistoryRow> Relocations);

/// <summary>One change asked of a node's API, allowed or not: who (<paramref name="Principal"/>: a token's name, CN=... of a
/// certificate, or anonymous; <paramref name="Auth"/>: none, token, certificate, cookie; <paramref name="Source"/>: the
/// client's address), what (<paramref name="Action"/>: create-disk, delete-disk, relocate, set-rate, handover,
/// cancel-relocation, leave-member, down-member, set-weight, set-link-budget, drain-site; <paramref name="Detail"/>: one line), when, at which node, and how it ended
/// (<paramref name="Outcome"/>: accepted or refused, with the HTTP <paramref name="Status"/>).</summary>
public sealed record AuditRecordView(long Seq, Guid Id, DateTime Time, string Node, string Principal, string Auth, string Source,
    string Action, string Target, string Detail, string Outcome, int Status);

public sealed record AuditListView(IReadOnlyList<AuditRecordView> Records);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    UseStringEnumConverter = true)]
[JsonSerializable(typeof(CreateDiskRequest))]
[JsonSerializable(typeof(RelocateRequest))]
[JsonSerializable(typeof(RateRequest))]
[JsonSerializable(typeof(WeightRequest))]
[JsonSerializable(typeof(LinkRequest))]
[JsonSerializable(typeof(DrainRequest))]
[JsonSerializable(typeof(DrainView))]
[JsonSerializable(typeof(LinkView))]
[JsonSerializable(typeof(LinkListView))]
[JsonSerializable(typeof(ClusterView))]
[JsonSerializable(typeof(MemberChange))]
[JsonSerializable(typeof(DiskCopy))]
[JsonSerializable(typeof(DiskListView))]
[JsonSerializable(typeof(DiskView))]
[JsonSerializable(typeof(DiskDeleted))]
[JsonSerializable(typeof(RelocationAccepted))]
[JsonSerializable(typeof(RelocationCancelled))]
[JsonSerializable(typeof(List<RelocationView>))]
[JsonSerializable(typeof(RelocationStatusView))]
[JsonSerializable(typeof(ProgressSample))]
[JsonSerializable(typeof(ProgressDone))]
[JsonSerializable(typeof(Problem))]
[JsonSerializable(typeof(Health))]
[JsonSerializable(typeof(RelocationEventView))]
[JsonSerializable(typeof(EventListView))]
[JsonSerializable(typeof(DiskHistoryView))]
[JsonSerializable(typeof(AuditRecordView))]
[JsonSerializable(typeof(AuditListView))]
public sealed partial class ManagementJson : JsonSerializerContext;
