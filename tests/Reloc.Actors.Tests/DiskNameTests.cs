using Reloc.Management;
using Xunit;

namespace Reloc.Actors.Tests;

/// <summary>Names and sizes of disks, judged in one place (<see cref="DiskName"/>, <see cref="DiskSize"/>): tables.</summary>
public sealed class DiskNameTests
{
    public static TheoryData<string?, string?> Names => new()
    {
        { "vm1", null },
        { "VM-1_a.b", null },
        { "9", null },
        { new string('a', 64), null },
        { new string('a', 65), "is 65 characters long: at most 64" },
        { null, "a disk needs a name" },
        { "", "a disk needs a name" },
        { ".hidden", "must start with a letter or a digit" },
        { "..", "must start with a letter or a digit" },
        { "-rf", "must start with a letter or a digit" },
        { "_x", "must start with a letter or a digit" },
        { "../etc", "must start with a letter or a digit" },
        { "a/b", "may only hold letters, digits" },
        { "a b", "may only hold letters, digits" },
        { "vm1@peer", "must not contain '@' (the site's internal export names use it)" },
        { "vé", "may only hold letters, digits" },
        { "a\nb", "may only hold letters, digits" },
    };

    [Theory]
    [MemberData(nameof(Names))]
    public void A_name(string? text, string? refusal)
    {
        var ok = DiskName.TryParse(text, out var name, out var why);
        if (refusal is null)
        {
            Assert.True(ok, why);
            Assert.Equal(text, name.Value);
        }
        else
        {
            Assert.False(ok);
            Assert.Contains(refusal, why);
            Assert.DoesNotContain("\n", why); // echoed names cannot break a log line or a problem document
        }
    }

    public static TheoryData<long, string?> Sizes => new()
    {
        { 512, null },
        { 1L << 20, null },
        { 10L << 30, null },
        { 1_000_000_000, null }, // 1 GB: 1953125 sectors
        { DiskSize.Max, null },
        { 0, "must be positive, not 0" },
        { -512, "must be positive, not -512" },
        { 1, "is not a whole number of 512-byte sectors (the nearest: 0 or 512)" },
        { 1_500_000_000, "is not a whole number of 512-byte sectors (the nearest: 1499999744 or 1500000256)" }, // "1.5GB"
        { DiskSize.Max + 512, "is more than the largest allowed" },
        { long.MaxValue, "is more than the largest allowed" },
    };

    [Theory]
    [MemberData(nameof(Sizes))]
    public void A_size(long bytes, string? refusal)
    {
        var ok = DiskSize.TryParse(bytes, out var size, out var why);
        if (refusal is null)
        {
            Assert.True(ok, why);
            Assert.Equal(bytes, size.Bytes);
        }
        else
        {
            Assert.False(ok);
            Assert.Contains(refusal, why);
        }
    }
}
