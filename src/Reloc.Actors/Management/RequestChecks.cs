using Reloc.Management;

namespace Reloc.Actors.Management;

/// <summary>
/// What the management API checks in a request body before it asks the cluster anything: pure, so the
/// fuzzer (fuzz/Reloc.Fuzz.Targets) runs exactly what the server runs. A refusal is a 400
/// <see cref="ManagementException"/>.
/// </summary>
public static class RequestChecks
{
    public static CreateDiskRequest Check(CreateDiskRequest request)
    {
        if (DiskName.Validate(request.Name) is { } badName) throw ManagementService.BadRequest(badName);
        if (string.IsNullOrWhiteSpace(request.Site)) throw ManagementService.BadRequest("missing the disk's site");
        if (request.From is null && DiskSize.Validate(request.Size) is { } badSize) throw ManagementService.BadRequest(badSize);
        return request;
    }

    public static RelocateRequest Check(RelocateRequest request)
    {
        if (string.IsNullOrWhiteSpace(request.Disk)) throw ManagementService.BadRequest("missing the disk to relocate");
        if (string.IsNullOrWhiteSpace(request.To)) throw ManagementService.BadRequest("missing the destination site");
        // The JSON binder takes numbers ("mode": 5, even "5") for an enum: one outside it would run as postcopy unasked.
        if (!Enum.IsDefined(request.Mode)) throw ManagementService.BadRequest($"unknown relocation mode {(int)request.Mode} (postcopy or hybrid)");
        CheckRate(request.Rate);
        return request;
    }

    public static int CheckWeight(int weight) => weight is < 1 or > Coordinator.LinkShares.MaxWeight
        ? throw ManagementService.BadRequest($"weight must be from 1 to {Coordinator.LinkShares.MaxWeight}, not {weight}") : weight;

    public static long CheckRate(long rate) =>
        rate < 0 ? throw ManagementService.BadRequest($"rate must not be negative, not {rate}") : rate;
}
