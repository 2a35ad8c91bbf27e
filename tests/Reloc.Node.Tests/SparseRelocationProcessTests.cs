using Reloc.Testing;
using Reloc.Management;
using System.Text.Json.Nodes;
using Xunit;

namespace Reloc.Node.Tests;

/// <summary>
/// Sparse disks (created with a size and no image) relocated between site processes while the guest
/// writes into their holes: at the source before and after the destination asked the source for its
/// holes (BLOCK_STATUS), over data, across block boundaries, then at the destination after the guest
/// moved there. Issue 9: blocks written at the source after that scan were punched at the destination
/// instead of fetched. Each ends with the owner's image compared with everything the guest flushed.
/// </summary>
public sealed class SparseRelocationProcessTests
{
    private const int Size = 32 << 20;
    private const int Block = 64 << 10;
    private const long Rate = 1_000_000; // slow: the relocation is under way during every write below

    [Fact]
    public Task Postcopy_carries_writes_into_holes_made_at_the_source_during_the_relocation() =>
        RelocateWhileWritingIntoHolesAsync("postcopy", restartSource: false, seed: 91);

    [Fact]
    public Task Hybrid_carries_writes_into_holes_made_at_the_source_during_the_pre_copy() =>
        RelocateWhileWritingIntoHolesAsync("hybrid", restartSource: false, seed: 92);

    [Fact]
    public Task Hybrid_carries_writes_into_holes_when_the_source_restarts_before_the_handover() =>
        RelocateWhileWritingIntoHolesAsync("hybrid", restartSource: true, seed: 93);

    /// <summary>Whole blocks first..first+count-1.</summary>
    private static IEnumerable<(long, int)> Blocks(int first, int count) =>
        Enumerable.Range(first, count).Select(b => ((long)b * Block, Block));

    /// <summary><paramref name="length"/> bytes 4 KiB into each of the blocks: partial-block writes.</summary>
    private static IEnumerable<(long, int)> Pieces(int first, int count, int length) =>
        Enumerable.Range(first, count).Select(b => ((long)b * Block + 4096, length));

    /// <summary><paramref name="length"/> bytes centred on the boundary before <paramref name="block"/>.</summary>
    private static (long, int) Across(int block, int length) => ((long)block * Block - length / 2, length);

    private static async Task RelocateWhileWritingIntoHolesAsync(string mode, bool restartSource, int seed)
    {
        await using var c = new SiteCluster();
        await c.StartAllAsync();
        await c.CallAsync('a', m => m.CreateDiskAsync(new CreateDiskRequest("vm", "site-b", Size)));
        await using var guest = new Guest(new byte[Size], seed);
        await guest.ConnectAsync(c.NbdUri('b', "vm"));
        // Data in a few places; everything else stays a hole.
        await guest.WriteAtAndFlushAsync([.. Blocks(0, 20), .. Blocks(256, 48), .. Pieces(480, 2, 8192)]);

        await c.RelocateAsync('a', "c", mode, Rate);
        // Straight after the relocation is accepted: usually before the destination exists to scan the holes.
        await guest.WriteAtAndFlushAsync(Blocks(100, 10));
        await c.WaitPhaseAsync('a', "serving");
        if (mode == "hybrid")
            // Pre-copy has begun, so the destination's hole scan is over (the copy waits for it).
            await SiteCluster.WaitAsync(async () => await LocalBytesAsync(c, 'c') > 0, TimeSpan.FromSeconds(60), "pre-copy under way");

        // Into holes (whole blocks, pieces, across boundaries), and over data. In postcopy nothing shows
        // when the hole scan ends: these writes may come before or after it (hybrid: after).
        await guest.WriteAtAndFlushAsync([
            .. Blocks(110, 30), .. Pieces(140, 10, 4096), Across(160, 16384), Across(20, 8192), Across(304, 12288),
            .. Blocks(5, 5), (260L * Block + 8192, 4096),
        ]);

        if (restartSource)
        {
            await c.KillAsync('b'); // which blocks it has not reported yet dies with it
            await guest.DisconnectAsync();
            // Restarted at once, while the survivors still have the dead incarnation as a member: it is
            // downed and removed when the new one joins (remoting without passive connections, so the
            // seed's replies reach the new incarnation: akka/akka-core#24393).
            await c.StartAsync('b'); // resumes tracking with every block counted as written
            await c.WaitUpAsync('a', 3);
            await guest.ConnectAsync(c.NbdUri('b', "vm"));
            await guest.ReadAndCheckAsync(20);
            await guest.WriteAtAndFlushAsync([.. Blocks(170, 10), Across(190, 8192)]);
        }

        // The destination VM reads its disk through to the source before it runs; by now the hole scan
        // the destination began when it started serving is over.
        var seen = guest.Mismatch(await Guest.ReadAllAsync(c.NbdUri('c', "vm"), Size));
        Assert.True(seen is null, "read through the destination: " + seen);
        await guest.WriteAtAndFlushAsync([.. Blocks(200, 10), .. Pieces(210, 5, 4096), Across(220, 8192)]);

        // The guest moves; its first write at the destination waits for the handover.
        await guest.MigrateAsync(c.NbdUri('c', "vm"));
        await guest.WriteAtAndFlushAsync([.. Blocks(400, 10), .. Pieces(410, 5, 8192), Across(420, 8192)]);
        await c.WaitPhaseAsync('a', "postcopy");
        await guest.WriteAtAndFlushAsync([.. Blocks(430, 5), Across(440, 4096), (112L * Block + 4096, 4096)]);
        await c.FinishAndVerifyAsync('a', owner: 'c', source: 'b', guest, epoch: 2);
    }

    private static async Task<long> LocalBytesAsync(SiteCluster c, char site)
    {
        var show = await c.TryAsync('a', m => m.DiskAsync("vm"));
        return show?.Copies.FirstOrDefault(d => d.Site == "site-" + site)?.LocalBytes ?? 0;
    }
}
