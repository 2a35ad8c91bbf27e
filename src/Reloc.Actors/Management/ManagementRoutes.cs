using System.Net;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Akka.Actor;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Reloc.Management;

namespace Reloc.Actors.Management;

/// <summary>
/// The management API's routes (<see cref="ManagementApi"/> names them): minimal APIs over
/// <see cref="ManagementService"/>. Refusals become RFC 7807 problem details with the status the service
/// chose; a cluster that does not answer in time is 503; a malformed body is 400.
/// </summary>
public static class ManagementRoutes
{
    /// <summary>How long a progress stream keeps looking while the coordinator does not answer (a fail-over)
    /// before it ends with a problem.</summary>
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan DefaultInterval = TimeSpan.FromMilliseconds(500);

    public static void Map(IEndpointRouteBuilder app)
    {
        var root = app.MapGroup(ManagementApi.Prefix).AddEndpointFilter(Problems);
        // Two groups on one prefix: reading needs the viewer role, changing the operator role (both let anyone through with auth off).
        var read = root.MapGroup("").RequireAuthorization(ManagementAuth.ViewerPolicy);
        var change = root.MapGroup("").RequireAuthorization(ManagementAuth.OperatorPolicy);

        read.MapGet("/cluster", (ManagementService s) => s.Cluster()).WithName("GetCluster");
        // A member is named by its site or its address; Kestrel leaves an escaped '/' of an address escaped in a route value.
        change.MapPost("/cluster/members/{member}/leave", (ManagementService s, string member) => s.ChangeMember(Uri.UnescapeDataString(member), leave: true)).WithName("LeaveMember");
        change.MapPost("/cluster/members/{member}/down", (ManagementService s, string member) => s.ChangeMember(Uri.UnescapeDataString(member), leave: false)).WithName("DownMember");

        read.MapGet("/disks", (ManagementService s) => s.DisksAsync()).WithName("ListDisks");
        change.MapPost("/disks", async (ManagementService s, CreateDiskRequest request) =>
        {
            var created = await s.CreateDiskAsync(request);
            return TypedResults.Created(ManagementApi.Disk(created.Name), created);
        }).WithName("CreateDisk");
        read.MapGet("/disks/{name}", (ManagementService s, string name) => s.DiskAsync(name)).WithName("GetDisk");
        read.MapGet("/disks/{name}/history", (ManagementService s, string name) => s.DiskHistoryAsync(name)).WithName("GetDiskHistory");
        change.MapDelete("/disks/{name}", (ManagementService s, string name, bool? force) => s.DeleteDiskAsync(name, force == true)).WithName("DeleteDisk");

        read.MapGet("/events", Events).WithName("Events");
        read.MapGet("/audit", (ManagementService s, int? limit) => s.AuditAsync(limit ?? 100)).WithName("Audit");

        read.MapGet("/relocations", (ManagementService s) => s.RelocationsAsync()).WithName("ListRelocations");
        change.MapPost("/relocations", async (ManagementService s, RelocateRequest request) =>
        {
            var accepted = await s.RelocateAsync(request);
            return TypedResults.Accepted(ManagementApi.Relocation(accepted.Disk), accepted);
        }).WithName("Relocate");
        change.MapPost("/sites/{site}/drain", (ManagementService s, string site, DrainRequest request) => s.DrainAsync(site, request)).WithName("DrainSite");
        read.MapGet("/relocations/{disk}", (ManagementService s, string disk) => s.RelocationAsync(disk)).WithName("GetRelocation");
        change.MapPost("/relocations/{disk}/rate", (ManagementService s, string disk, RateRequest request) => s.SetRateAsync(disk, request.Rate)).WithName("SetRelocationRate");
        change.MapPost("/relocations/{disk}/weight", (ManagementService s, string disk, WeightRequest request) => s.SetWeightAsync(disk, request.Weight)).WithName("SetRelocationWeight");
        read.MapGet("/links", (ManagementService s) => s.LinksAsync()).WithName("ListLinks");
        change.MapPut("/links/{siteA}/{siteB}", (ManagementService s, string siteA, string siteB, LinkRequest request) => s.SetLinkAsync(siteA, siteB, request.Bandwidth)).WithName("SetLinkBudget");
        change.MapPost("/relocations/{disk}/handover", (ManagementService s, string disk) => s.HandoverAsync(disk)).WithName("Handover");
        change.MapPost("/relocations/{disk}/cancel", (ManagementService s, string disk) => s.CancelAsync(disk)).WithName("CancelRelocation");
        read.MapGet("/relocations/{disk}/progress", (ManagementService s, string disk, int? intervalMs, CancellationToken ct) =>
        {
            var interval = intervalMs is { } ms ? TimeSpan.FromMilliseconds(Math.Clamp(ms, 100, 10_000)) : DefaultInterval;
            return TypedResults.ServerSentEvents(ProgressAsync(s, disk, interval, ct));
        }).WithName("FollowRelocation");
    }

    /// <summary>The relocation events this node recorded (JSON; oldest first: the first <c>limit</c> after <c>after</c>, or with
    /// newest=true the newest <c>limit</c>), or with follow=true (or an event-stream Accept) as server-sent
    /// events: those after <c>after</c> (or Last-Event-ID, as a reconnecting EventSource sends it) first, then each new one.</summary>
    private static async Task<IResult> Events(ManagementService s, HttpRequest request, long? after, int? limit, bool? newest, bool? follow, CancellationToken ct)
    {
        bool stream = follow ?? request.Headers.Accept.Any(a => a?.Contains("text/event-stream", StringComparison.OrdinalIgnoreCase) == true);
        if (!stream) return TypedResults.Ok(await s.EventsAsync(after, limit ?? 100, newest ?? false));
        if (after is null && long.TryParse(request.Headers["Last-Event-ID"], out var last)) after = last;
        return TypedResults.ServerSentEvents(EventItemsAsync(s, after, ct));
    }

    private static async IAsyncEnumerable<SseItem<string>> EventItemsAsync(ManagementService s, long? after, [EnumeratorCancellation] CancellationToken ct)
    {
        await foreach (var e in s.FollowEventsAsync(after, ct))
            yield return new SseItem<string>(JsonSerializer.Serialize(e, ManagementJson.Default.RelocationEventView), ManagementApi.SseRelocationEvent)
                { EventId = e.Seq.ToString(System.Globalization.CultureInfo.InvariantCulture) };
    }

    /// <summary>
    /// A relocation's progress as server-sent events: a <see cref="ProgressSample"/> per look, then
    /// <see cref="ProgressDone"/> with the disk once the coordinator no longer lists it. Asks that fail (the
    /// coordinator moving to another node) are retried for <see cref="Patience"/>, then the stream ends with
    /// a problem event.
    /// </summary>
    private static async IAsyncEnumerable<SseItem<string>> ProgressAsync(ManagementService s, string disk, TimeSpan interval,
        [EnumeratorCancellation] CancellationToken ct)
    {
        using var timer = new PeriodicTimer(interval);
        DateTime? failingSince = null;
        do
        {
            var list = await TryAsync(s.RelocationsAsync);
            if (list is null)
            {
                failingSince ??= DateTime.UtcNow;
                if (DateTime.UtcNow - failingSince < Patience) continue;
                yield return Item(new Problem(null, "the coordinator does not answer", 503,
                    $"no answer from the migration coordinator for {Patience.TotalSeconds:0} s"), ManagementJson.Default.Problem, ManagementApi.SseProblem);
                yield break;
            }
            failingSince = null;
            var entry = list.FirstOrDefault(r => r.Disk == disk);
            if (entry is null)
            {
                var shown = await TryAsync(() => s.DiskAsync(disk));
                yield return Item(new ProgressDone(shown), ManagementJson.Default.ProgressDone, ManagementApi.SseDone);
                yield break;
            }
            var status = await TryAsync(() => s.RelocationAsync(disk)); // none between two steps, or as it ends
            yield return Item(new ProgressSample(status?.Info ?? entry, status?.Progress), ManagementJson.Default.ProgressSample, ManagementApi.SseProgress);
        } while (await timer.WaitForNextTickAsync(ct));
    }

    private static SseItem<string> Item<T>(T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type, string eventType) =>
        new(JsonSerializer.Serialize(value, type), eventType);

    private static async Task<T?> TryAsync<T>(Func<Task<T>> ask) where T : class
    {
        try { return await ask(); }
        catch (Exception ex) when (ex is ManagementException or AskTimeoutException) { return null; }
    }

    /// <summary>Every refusal as a problem document, with the status its kind maps to.</summary>
    private static async ValueTask<object?> Problems(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        try { return await next(context); }
        catch (ManagementException ex)
        {
            return TypedResults.Problem(ex.Message, statusCode: (int)(ex.Status ?? HttpStatusCode.Conflict), title: Title(ex.Status ?? HttpStatusCode.Conflict));
        }
        catch (AskTimeoutException)
        {
            return TypedResults.Problem($"the cluster did not answer within {ManagementService.AskTimeout.TotalSeconds:0} s (is the coordinator's node up?)",
                statusCode: StatusCodes.Status503ServiceUnavailable, title: "the cluster did not answer");
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException)
        {
            return TypedResults.Problem(ex.Message, statusCode: StatusCodes.Status400BadRequest, title: "bad request");
        }
    }

    private static string Title(HttpStatusCode status) => status switch
    {
        HttpStatusCode.NotFound => "not found",
        HttpStatusCode.Conflict => "refused",
        HttpStatusCode.BadRequest => "bad request",
        _ => "failed",
    };
}
