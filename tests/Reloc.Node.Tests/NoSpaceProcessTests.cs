using System.Net;
using Reloc.Management;
using Reloc.Testing;
using Xunit;

namespace Reloc.Node.Tests;

/// <summary>
/// A destination site whose data directory is a small tmpfs (a file system that really fills up), with site
/// processes: a relocation it cannot hold is refused up front (nothing started, the disk stays); one that runs out of
/// space part-way before the handover (the room was taken after the check) is cancelled: the source keeps the disk,
/// the destination's partial copy is dropped, the events say why. Ends with the owner's image compared with everything
/// the guest flushed, byte for byte.
/// </summary>
public sealed class NoSpaceProcessTests
{
    private const int Size = 32 << 20;
    private const int Block = 64 << 10;

    [TmpfsFact]
    public async Task A_destination_without_room_refuses_up_front_and_one_that_fills_up_before_the_handover_cancels_it()
    {
        await using var c = new SiteCluster();
        // Site b's images on a 48 MiB tmpfs; its journal elsewhere (a full journal is another failure than this one).
        await using var tmpfs = await Tmpfs.MountAsync(Path.Combine(c.Dir, "site-b"), 48 << 20);
        File.AppendAllText(c.ConfigPath('b'), $"\nreloc.persistence.connection-string = \"Data Source={Path.Combine(c.Dir, "site-b.db")};Pooling=true\"\n");
        await c.StartAllAsync();
        await c.CallAsync('a', m => m.CreateDiskAsync(new CreateDiskRequest("vm", "site-a", Size)));
        await using var guest = new Guest(new byte[Size], 5);
        await guest.ConnectAsync(c.NbdUri('a', "vm"));
        await guest.WriteAtAndFlushAsync(Enumerable.Range(0, 384).Select(b => ((long)b * Block, Block))); // 24 MiB of data

        // 1. Up front: with 20 MiB free at b the 24 MiB of data do not fit: refused, nothing started.
        var filler = Path.Combine(tmpfs.Path, "filler");
        await File.WriteAllBytesAsync(filler, new byte[28 << 20]);
        var refused = await Assert.ThrowsAsync<ManagementException>(() => c.RelocateAsync('a', "b", "hybrid", 2_000_000));
        Assert.Equal(HttpStatusCode.Conflict, refused.Status);
        Assert.Contains("cannot relocate 'vm' to site-b: site site-b has", refused.Message);
        Assert.Null(await c.PhaseAsync('a', "vm"));
        Assert.Equal(["site-a"], (await c.CallAsync('a', m => m.DiskAsync("vm"))).Copies.Select(d => d.Site));

        // 2. Room at the check, taken while the copy runs (capped: it is still under way): the copy hits ENOSPC before
        // the handover (the guest stays at a), and the relocation is cancelled.
        File.Delete(filler);
        await c.RelocateAsync('a', "b", "hybrid", 2_000_000);
        await File.WriteAllBytesAsync(filler, new byte[38 << 20]);
        await guest.WriteAtAndFlushAsync(Enumerable.Range(400, 20).Select(b => ((long)b * Block + 512, 8192))); // the guest goes on at a
        DiskView? show = null;
        await SiteCluster.WaitAsync(async () =>
        {
            show = await c.TryAsync('a', m => m.DiskAsync("vm"));
            return show is { Owner: "site-a", Phase: "owned", Copies.Count: 1 } && await c.PhaseAsync('a', "vm") is null;
        }, TimeSpan.FromSeconds(120), "the relocation cancelled and b's copy dropped");
        Assert.Equal(1, show!.Epoch);
        Assert.False(File.Exists(c.ImagePath('b', "vm")), "b's partial copy is dropped");
        var events = (await c.CallAsync('a', m => m.EventsAsync(limit: 1000))).Events.Where(e => e.Disk == "vm").ToList();
        Assert.Contains(events, e => e.Kind == "stalled" && e.Detail!.Contains("no space left") && e.Detail.Contains("cancelled before the handover"));
        Assert.Contains(events, e => e.Kind == "cancelled");

        // Nothing lost: a's image is what the guest flushed, and the guest goes on there.
        await guest.WriteAtAndFlushAsync(Enumerable.Range(500, 4).Select(b => ((long)b * Block, Block)));
        var mismatch = guest.Mismatch(await File.ReadAllBytesAsync(c.ImagePath('a', "vm")));
        Assert.True(mismatch is null, mismatch);
        Assert.Equal(guest.ExpectedChecksum, Tool.Sha256(c.ImagePath('a', "vm")));
    }
}
