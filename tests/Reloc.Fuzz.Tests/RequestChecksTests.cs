using System.Net;
using Reloc.Actors.Management;
using Reloc.Management;
using Xunit;

namespace Reloc.Fuzz.Tests;

/// <summary>The management API's request checks (what the management fuzz target runs after binding), as a table.</summary>
public sealed class RequestChecksTests
{
    public static TheoryData<string, RelocateRequest, string?> Relocations() => new()
    {
        { "defaults", new RelocateRequest("vm1", "b"), null },
        { "hybrid at a rate", new RelocateRequest("vm1", "b", RelocationMode.Hybrid, 40_000_000), null },
        { "no disk", new RelocateRequest(" ", "b"), "missing the disk" },
        { "no destination", new RelocateRequest("vm1", ""), "missing the destination" },
        { "negative rate", new RelocateRequest("vm1", "b", Rate: -1), "rate must not be negative" },
        // Found by the management target: the binder takes "mode": 5 and the relocation ran as postcopy.
        { "mode outside the enum", new RelocateRequest("vm1", "b", (RelocationMode)5), "unknown relocation mode 5" },
    };

    [Theory]
    [MemberData(nameof(Relocations))]
    public void Relocate(string row, RelocateRequest request, string? refusal) => Expect(row, () => RequestChecks.Check(request), refusal);

    public static TheoryData<string, CreateDiskRequest, string?> Creations() => new()
    {
        { "sized", new CreateDiskRequest("vm1", "a", 1 << 20), null },
        { "from an image, no size", new CreateDiskRequest("vm1", "a", From: "/img"), null },
        { "no name", new CreateDiskRequest("", "a", 1), "a disk needs a name" },
        { "a peer export's name", new CreateDiskRequest("vm1@peer", "a", 1 << 20), "must not contain '@'" },
        { "not whole sectors", new CreateDiskRequest("vm1", "a", 1000), "not a whole number of 512-byte sectors" },
        { "no site", new CreateDiskRequest("vm1", " ", 1), "missing the disk's site" },
        { "no size, no image", new CreateDiskRequest("vm1", "a"), "disk size must be positive" },
    };

    [Theory]
    [MemberData(nameof(Creations))]
    public void CreateDisk(string row, CreateDiskRequest request, string? refusal) => Expect(row, () => RequestChecks.Check(request), refusal);

    private static void Expect(string row, Action check, string? refusal)
    {
        if (refusal is null)
        {
            check();
            return;
        }
        var ex = Assert.Throws<ManagementException>(check);
        Assert.Equal(HttpStatusCode.BadRequest, ex.Status);
        Assert.True(ex.Message.Contains(refusal), $"{row}: {ex.Message}");
    }
}
