using System.Text.Json;
using Reloc.Actors.History;
using Reloc.Management;

namespace Reloc.Actors.Management;

/// <summary>
/// What a change asked of the API, as the audit records it (pure, tested as a table): the route's name
/// (<see cref="ManagementRoutes"/>' WithName), its route values and its JSON body → action, target and one line an
/// operator reads (<c>relocate vm1 → site-b hybrid</c>). A body that does not parse still gives the action and target.
/// </summary>
public static class AuditMapping
{
    public static (AuditAction Action, string Target, string Detail) Describe(string? route, IReadOnlyDictionary<string, string?> values, string? body)
    {
        string V(string key) => values.TryGetValue(key, out var v) && v is not null ? v : "?";
        // As the member routes read it: an address's '/' arrives escaped.
        string Member() => Uri.UnescapeDataString(V("member"));
        switch (route)
        {
            case "CreateDisk":
                var create = Parse(body, ManagementJson.Default.CreateDiskRequest);
                return create is null
                    ? (AuditAction.CreateDisk, "?", "create a disk (unreadable body)")
                    : (AuditAction.CreateDisk, create.Name, $"create disk {create.Name} at {create.Site}" +
                        (create.From is { Length: > 0 } from ? $" from {from}" : $" size {create.Size}"));
            case "DeleteDisk":
                return (AuditAction.DeleteDisk, V("name"), $"delete disk {V("name")}");
            case "Relocate":
                var move = Parse(body, ManagementJson.Default.RelocateRequest);
                return move is null
                    ? (AuditAction.Relocate, "?", "relocate (unreadable body)")
                    : (AuditAction.Relocate, move.Disk, $"relocate {move.Disk} → {move.To} {(move.Mode == RelocationMode.Hybrid ? "hybrid" : "postcopy")}" +
                        (move.Rate > 0 ? $" rate {move.Rate} B/s" : "") + (move.Prefetch ? "" : " no prefetch"));
            case "SetRelocationRate":
                var rate = Parse(body, ManagementJson.Default.RateRequest);
                return (AuditAction.SetRate, V("disk"), $"set the relocation rate of {V("disk")} to " + (rate is null ? "? (unreadable body)" : $"{rate.Rate} B/s"));
            case "SetRelocationWeight":
                var weight = Parse(body, ManagementJson.Default.WeightRequest);
                return (AuditAction.SetWeight, V("disk"), $"set the weight of {V("disk")} to " + (weight is null ? "? (unreadable body)" : $"{weight.Weight}"));
            case "SetLinkBudget":
                var link = Parse(body, ManagementJson.Default.LinkRequest);
                return (AuditAction.SetLinkBudget, $"{V("siteA")}<->{V("siteB")}", $"set the link budget of {V("siteA")}<->{V("siteB")} to "
                    + (link is null ? "? (unreadable body)" : link.Bandwidth == 0 ? "none" : $"{link.Bandwidth} B/s"));
            case "DrainSite":
                var drain = Parse(body, ManagementJson.Default.DrainRequest);
                return (AuditAction.DrainSite, V("site"), $"drain {V("site")} → " + (drain is null ? "? (unreadable body)"
                    : $"{drain.To} {(drain.Mode == RelocationMode.Hybrid ? "hybrid" : "postcopy")}" + (drain.Rate > 0 ? $" rate {drain.Rate} B/s" : "") + (drain.Prefetch ? "" : " no prefetch")));
            case "Handover":
                return (AuditAction.Handover, V("disk"), $"hand {V("disk")} over");
            case "CancelRelocation":
                return (AuditAction.CancelRelocation, V("disk"), $"cancel the relocation of {V("disk")}");
            case "LeaveMember":
                return (AuditAction.LeaveMember, Member(), $"member {Member()} leaves");
            case "DownMember":
                return (AuditAction.DownMember, Member(), $"down member {Member()}");
            default:
                return (AuditAction.Other, "", $"route {route ?? "unknown"}");
        }
    }

    /// <summary>2xx: accepted; anything else (401, 403, 400, 404, 409, 503...) refused.</summary>
    public static AuditOutcome OutcomeOf(int status) => status is >= 200 and < 300 ? AuditOutcome.Accepted : AuditOutcome.Refused;

    private static T? Parse<T>(string? body, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type) where T : class
    {
        if (string.IsNullOrWhiteSpace(body)) return null;
        try { return JsonSerializer.Deserialize(body, type); }
        catch (JsonException) { return null; }
    }
}
