using Reloc.Testing;
using Xunit;
using Xunit.Abstractions;

namespace Reloc.Vm.Tests;

/// <summary>The checks the migration tests rely on are not vacuous: each catches what it is there to catch.</summary>
public sealed class GuestTests(ITestOutputHelper output) : VmTest(output, "guest")
{
    [Fact]
    public async Task The_image_prediction_catches_a_lost_write_and_a_torn_sector()
    {
        var guest = await Guest.BuildAsync(Dir);
        const int last = 40000;
        var image = guest.ExpectedImage(last);
        Assert.True(guest.Check(image, last).Matches);
        Assert.True(guest.Check(guest.ExpectedImage(last + 1), last).Matches); // stopped between the write and its "k=" line
        Assert.False(guest.Check(guest.ExpectedImage(last + 2), last).Matches);

        // k = last - 3 never reached the disk: its slot still holds what k - Slots wrote.
        int lost = last - 3, slot = Guest.SlotOf(lost);
        var offset = (int)(Guest.SectorOf(slot) * Guest.SectorSize);
        Guest.Pattern(lost - Guest.Slots, image.AsSpan(offset, Guest.SectorSize));
        var check = guest.Check(image, last);
        Assert.False(check.Matches);
        Assert.Contains($"slot {slot} (sector {Guest.SectorOf(slot)}, block {offset / Guest.BlockSize}): expected k={lost}, holds k={lost - Guest.Slots}", check.Differences);

        image = guest.ExpectedImage(last);
        image[offset + 300] ^= 1;
        Assert.Contains("torn or foreign data", guest.Check(image, last).Differences);

        // Issue 9's loss: before the guest wraps around, a lost write leaves its sector a hole.
        const int early = 1000;
        image = guest.ExpectedImage(early);
        slot = Guest.SlotOf(early - 3);
        image.AsSpan((int)(Guest.SectorOf(slot) * Guest.SectorSize), Guest.SectorSize).Clear();
        check = guest.Check(image, early);
        Assert.False(check.Matches);
        Assert.Contains("1 sectors in 1 blocks differ", check.Differences);
        Assert.Contains($"slot {slot} (sector {Guest.SectorOf(slot)}, block {Guest.BlockOf(early - 3)}): expected k={early - 3}, holds zeros", check.Differences);
    }

    /// <summary>The layout spreads the slots over the whole disk, one sector each, two per relocation block, at
    /// varying sectors of their blocks; the boot image is sparse, the program's sectors and nothing else.</summary>
    [Fact]
    public async Task The_slots_cover_the_disk_and_the_image_starts_as_holes()
    {
        var sectors = Enumerable.Range(0, Guest.Slots).Select(Guest.SectorOf).ToList();
        Assert.Equal(Guest.Slots, sectors.Distinct().Count());
        Assert.All(sectors, s => Assert.InRange(s, Guest.FirstSector, Guest.DiskSize / Guest.SectorSize - 1));
        var perBlock = sectors.GroupBy(s => s * Guest.SectorSize / Guest.BlockSize).ToList();
        Assert.Equal((Guest.DiskSize - Guest.FirstSector * Guest.SectorSize) / Guest.BlockSize, perBlock.Count);
        Assert.All(perBlock, b => Assert.Equal(2, b.Count()));
        Assert.True(sectors.Select(s => s % (Guest.BlockSize / Guest.SectorSize)).Distinct().Count() >= 64, "slots sit at varying sectors of their blocks");
        // Consecutive rounds land far apart: the first 200 touch about as many blocks.
        Assert.True(Enumerable.Range(1, 200).Select(Guest.BlockOf).Distinct().Count() > 180);

        var guest = await Guest.BuildAsync(Dir);
        var path = await guest.WriteImageAsync(Path.Combine(Dir, "disk.img"));
        Assert.Equal(Guest.DiskSize, new FileInfo(path).Length);
        var du = await Tool.CheckAsync("du", "--block-size=1", path); // allocated bytes
        Assert.True(long.Parse(du.Split('\t')[0]) < 1 << 20, $"the image is not sparse: {du}");
    }

    [Fact]
    public void The_serial_check_catches_a_gap_a_repeat_and_a_guest_error()
    {
        Assert.Null(new SerialTranscript("RELOC-GUEST ready\r\nk=1\r\nk=2\r\nk=3\r\nk=").CounterProblem());
        Assert.Equal(2, new SerialTranscript("k=1\r\nk=2\r\nk=3").LastK); // the last line is still being printed
        Assert.NotNull(new SerialTranscript("k=1\r\nk=3\r\n").CounterProblem());
        Assert.NotNull(new SerialTranscript("k=1\r\nk=2\r\nk=2\r\n").CounterProblem());
        Assert.Equal(["ERR verify-old k=-5 found k=7 dword=1 at k=9", "HALT"],
            new SerialTranscript("k=8\r\nERR verify-old k=-5 found k=7 dword=1 at k=9\r\nHALT\r\n").Errors);
        // A line split across the source's and the destination's output is one line.
        Assert.Equal([1, 2, 3], new SerialTranscript("k=1\r\nk=2\r\nk=" + "3\r\n").Ks);
    }

    /// <summary>The guest itself notices a sector that does not hold what was last written there: the one
    /// it re-reads in its first round, never written and so expected to be zeros, is corrupted before boot.</summary>
    [Fact]
    public async Task The_guest_reports_a_sector_that_does_not_hold_what_was_written_there()
    {
        var guest = await Guest.BuildAsync(Dir);
        // Round k = 1 re-reads k - d, d as guest.S computes it.
        uint h = unchecked(1u * 0x9e3779b1) >> 8;
        int d = (int)Math.Min(1 + (h & (Guest.Slots - 1)), Guest.Slots - 1);
        int older = 1 - d;
        // The image up to that slot's sector: the program, zeros (never written), one byte flipped.
        var offset = (int)(Guest.SectorOf(Guest.SlotOf(older)) * Guest.SectorSize);
        var image = new byte[offset + Guest.SectorSize];
        guest.Program.CopyTo(image, 0);
        image[offset + 100] ^= 0xff;

        await using var server = await TestServer.StartAsync(Guest.DiskSize, image);
        await using var vm = await StartVmAsync("guest", server.Uri(), incoming: false);
        var error = await Assert.ThrowsAsync<GuestErrorException>(() => vm.WaitForKAsync(100, Run));
        Report(error.Message);
        Assert.Contains($"ERR verify-old k={older} found k=0 dword=25 at k=1", error.Message);
    }
}
