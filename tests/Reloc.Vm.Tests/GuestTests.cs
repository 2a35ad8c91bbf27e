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
        var offset = (Guest.FirstSector + slot) * Guest.SectorSize;
        Guest.Pattern(lost - Guest.Slots, image.AsSpan(offset, Guest.SectorSize));
        var check = guest.Check(image, last);
        Assert.False(check.Matches);
        Assert.Contains($"slot {slot} (sector {Guest.FirstSector + slot}): expected k={lost}, holds k={lost - Guest.Slots}", check.Differences);

        image = guest.ExpectedImage(last);
        image[offset + 300] ^= 1;
        Assert.Contains("torn or foreign data", guest.Check(image, last).Differences);
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
    /// it re-reads in its first round is corrupted in the image before boot.</summary>
    [Fact]
    public async Task The_guest_reports_a_sector_that_does_not_hold_what_was_written_there()
    {
        var guest = await Guest.BuildAsync(Dir);
        // Round k = 1 re-reads k - d, d as guest.S computes it.
        uint h = unchecked(1u * 0x9e3779b1) >> 8;
        int d = (int)Math.Min(1 + (h & (Guest.Slots - 1)), Guest.Slots - 1);
        int older = 1 - d;
        var image = guest.InitialImage.ToArray();
        image[(Guest.FirstSector + Guest.SlotOf(older)) * Guest.SectorSize + 100] ^= 0xff;

        await using var server = await TestServer.StartAsync(Guest.DiskSize, image);
        await using var vm = await StartVmAsync("guest", server.Uri(), incoming: false);
        var error = await Assert.ThrowsAsync<GuestErrorException>(() => vm.WaitForKAsync(100, Run));
        Report(error.Message);
        Assert.Contains($"ERR verify-old k={older} found k={older} dword=25 at k=1", error.Message);
    }
}
