using Reloc.Management;
using System.Text.Json.Nodes;
using Reloc.Testing;
using Xunit;

namespace Reloc.Node.Tests;

/// <summary>
/// Three site processes from hocon/; kill -9 the coordinator's node, the source and the destination at
/// chosen points of a relocation. Each ends with the disk at its owner compared, byte for byte (SHA-256),
/// with everything the guest wrote and flushed.
/// </summary>
public sealed class SiteProcessTests
{
    private const int Size = 16 << 20;

    private static async Task<(byte[] Initial, Guest Guest)> DiskAtAsync(SiteCluster c, char site, int seed)
    {
        var initial = Tool.RandomBytes(Size, seed);
        var file = Path.Combine(c.Dir, "vm.raw");
        await File.WriteAllBytesAsync(file, initial);
        await c.CallAsync('a', m => m.CreateDiskAsync(new CreateDiskRequest("vm", "site-" + site, From: file)));
        var guest = new Guest(initial, seed);
        await guest.ConnectAsync(c.NbdUri(site, "vm"));
        await guest.WriteAndFlushAsync(40);
        return (initial, guest);
    }

    [Fact]
    public async Task The_coordinators_node_dies_mid_relocation_and_the_next_coordinator_finishes_it()
    {
        await using var c = new SiteCluster();
        await CoordinatorFailOverAsync(c);
    }

    [Fact]
    public async Task With_postgresql_the_coordinators_node_dies_mid_relocation_and_the_next_coordinator_finishes_it()
    {
        await using var pg = await PostgresServer.StartAsync();
        await using var c = new SiteCluster(pg.ConnectionString());
        await CoordinatorFailOverAsync(c);
    }

    private static async Task CoordinatorFailOverAsync(SiteCluster c)
    {
        await c.StartAllAsync();
        var (_, guest) = await DiskAtAsync(c, 'b', 1);
        await using var _ = guest;
        await c.RelocateAsync('a', "c", "hybrid", 1_000_000); // slow pre-copy: still serving when a dies
        await c.WaitPhaseAsync('a', "serving");
        await guest.WriteAndFlushAsync(40);

        await c.KillAsync('a'); // the oldest node: the coordinator singleton lives there
        await guest.WriteAndFlushAsync(40); // the guest's site is b: it does not notice
        // The survivors down a, the singleton moves to b, and the new coordinator finds the relocation at the sites.
        await c.WaitPhaseAsync('b', "serving");

        await guest.MigrateAsync(c.NbdUri('c', "vm")); // the VM moves: the handover follows
        await guest.WriteAndFlushAsync(40);
        await c.FinishAndVerifyAsync('b', owner: 'c', source: 'b', guest, epoch: 2);
    }

    [Fact]
    public async Task The_source_dies_during_post_copy_and_the_relocation_completes_when_it_returns()
    {
        await using var c = new SiteCluster();
        await c.StartAllAsync();
        var (_, guest) = await DiskAtAsync(c, 'b', 2);
        await using var _ = guest;
        await c.RelocateAsync('a', "c", "postcopy", 1_000_000);
        await c.WaitPhaseAsync('a', "serving");
        await guest.MigrateAsync(c.NbdUri('c', "vm"));
        await guest.WriteAndFlushAsync(40); // whole 4 KiB writes at c; the first one triggers the handover
        await c.WaitPhaseAsync('a', "postcopy");

        await c.KillAsync('b');
        await c.StartAsync('b'); // a new incarnation rejoins; the destination's fetches reconnect to it
        await c.WaitUpAsync('a', 3);
        await guest.WriteAndFlushAsync(40);
        await c.FinishAndVerifyAsync('a', owner: 'c', source: 'b', guest, epoch: 2);
    }

    [Fact]
    public async Task The_destination_dies_during_post_copy_and_resumes_from_its_journal()
    {
        await using var c = new SiteCluster();
        await c.StartAllAsync();
        var (_, guest) = await DiskAtAsync(c, 'b', 3);
        await using var _ = guest;
        await c.RelocateAsync('a', "c", "postcopy", 1_000_000);
        await c.WaitPhaseAsync('a', "serving");
        await guest.MigrateAsync(c.NbdUri('c', "vm"));
        await guest.WriteAndFlushAsync(40);
        await c.WaitPhaseAsync('a', "postcopy");

        await c.KillAsync('c'); // flushed writes at c are durable there, with their bits
        await guest.DisconnectAsync();
        await c.StartAsync('c');
        await c.WaitUpAsync('a', 3);
        await guest.ConnectAsync(c.NbdUri('c', "vm"));
        await guest.ReadAndCheckAsync(20);
        await guest.WriteAndFlushAsync(40);
        await c.FinishAndVerifyAsync('a', owner: 'c', source: 'b', guest, epoch: 2);
    }

    [Fact]
    public async Task The_source_dies_before_handover_and_its_unreported_writes_still_reach_the_destination()
    {
        await using var c = new SiteCluster();
        await c.StartAllAsync();
        var (_, guest) = await DiskAtAsync(c, 'b', 4);
        await using var _ = guest;
        await c.RelocateAsync('a', "c", "hybrid", 4_000_000); // pre-copy under way while the guest writes at b
        await c.WaitPhaseAsync('a', "serving");
        await guest.WriteAndFlushAsync(40);

        await c.KillAsync('b'); // which blocks were written since the last invalidation dies with it
        await guest.DisconnectAsync();
        await c.StartAsync('b');
        await c.WaitUpAsync('a', 3);
        await guest.ConnectAsync(c.NbdUri('b', "vm"));
        await guest.ReadAndCheckAsync(20);
        await guest.WriteAndFlushAsync(40);
        await guest.MigrateAsync(c.NbdUri('c', "vm"));
        await guest.ReadAndCheckAsync(20); // before the handover, reads at c pass through to b
        await guest.WriteAndFlushAsync(40);
        await c.FinishAndVerifyAsync('a', owner: 'c', source: 'b', guest, epoch: 2);
    }
}
