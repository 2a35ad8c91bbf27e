using Akka.Actor;
using Reloc.Actors.Site;
using Reloc.Testing;
using Xunit;
using static Reloc.Actors.Coordinator.RelocationProtocol;
using static Reloc.Actors.Site.SiteProtocol;

namespace Reloc.Actors.Tests;

/// <summary>The admission queue survives its coordinator: three sites, a drain between the two that do not run the
/// coordinator under a limit of one, then the coordinator's node leaves. The new coordinator finds the relocation under
/// way and the queue at the source, keeps to the limit, and every disk arrives byte for byte.</summary>
public sealed class AdmissionFailoverTests : IAsyncLifetime
{
    private const int Disks = 3, Size = 2 << 20, Data = 512 << 10;
    private readonly InProcessSites _sites = new(3, "reloc-admission-failover-", _ => """
        reloc.coordinator.max-concurrent-relocations-per-site = 1
        reloc.coordinator.reconcile-interval = 500ms
        """);

    public Task InitializeAsync() => _sites.InitializeAsync();

    public Task DisposeAsync() => _sites.DisposeAsync();

    [Fact]
    public async Task A_coordinator_that_takes_over_rebuilds_the_queue_from_the_sites()
    {
        // The coordinator runs on the oldest member; drain between the other two.
        var coordinatorNode = _sites.Nodes[_sites.CoordinatorIndex()];
        var others = _sites.Nodes.Where(n => n != coordinatorNode).ToList();
        var (from, to) = (others[0], others[1]);

        var expected = new byte[Disks][];
        for (int i = 0; i < Disks; i++)
        {
            expected[i] = new byte[Size];
            Tool.RandomBytes(Data, 70 + i).CopyTo(expected[i], 0);
            var seed = Path.Combine(_sites.Dir, $"f{i}-seed.img");
            await using (var f = File.Create(seed)) { f.Write(expected[i], 0, Data); f.SetLength(Size); }
            var created = Assert.IsType<DiskInfo>(await from.Site.Ask<object>(new CreateDisk($"f{i}", 0, seed), TimeSpan.FromSeconds(20)));
            await Tool.CheckAsync("qemu-io", "-f", "raw", created.NbdUri, "-c", $"write -P {0x60 + i} 1M 4k"); // into a hole
            expected[i].AsSpan(1 << 20, 4096).Fill((byte)(0x60 + i));
        }

        // About 2 s each (512 KiB at 256 kB/s): the queue is still there when the coordinator's node leaves.
        var drain = Assert.IsType<DrainAccepted>(await from.Coordinator.Ask<object>(
            new DrainSite(from.Settings.Name, to.Settings.Name, RateBytesPerSecond: 256_000), TimeSpan.FromSeconds(30)));
        Assert.Equal(Disks - 1, drain.Relocations.Count(r => r.Phase == QueuedPhase));
        Assert.Equal(Disks - 1, (await ListAsync(from)).Disks.Count(d => d.Queued is not null)); // kept at the source

        await coordinatorNode.DisposeAsync(); // leaves gracefully: the singleton moves to the next oldest
        _sites.Nodes.Remove(coordinatorNode);

        int maxRunning = 0, sawQueued = 0;
        await InProcessSites.AwaitAsync(async () =>
        {
            try
            {
                var list = Assert.IsType<RelocationList>(await from.Coordinator.Ask<object>(new GetRelocations(), TimeSpan.FromSeconds(2))).Relocations;
                maxRunning = Math.Max(maxRunning, list.Count(r => r.Phase != QueuedPhase));
                sawQueued = Math.Max(sawQueued, list.Count(r => r.Phase == QueuedPhase));
            }
            catch (AskTimeoutException) { } // the singleton is moving
            return (await ListAsync(to)).Disks.Count(d => d.Phase == "owned" && d.Epoch == 2) == Disks && (await ListAsync(from)).Disks.Count == 0;
        });
        Assert.True(maxRunning <= 1, $"the new coordinator ran {maxRunning} at once under a limit of 1");
        Assert.True(sawQueued >= 1, "the new coordinator never showed the queue it took over");

        foreach (var moved in (await ListAsync(to)).Disks)
        {
            var copy = Path.Combine(_sites.Dir, moved.Name + "-moved.img");
            await Tool.CheckAsync("nbdcopy", moved.NbdUri, copy);
            var bytes = await File.ReadAllBytesAsync(copy);
            Assert.True(expected[int.Parse(moved.Name[1..])].AsSpan().SequenceEqual(bytes), $"{moved.Name} differs at {to.Settings.Name}");
        }
    }

    private static async Task<DiskList> ListAsync(SiteNode node) =>
        Assert.IsType<DiskList>(await node.Site.Ask<object>(new ListDisks(), TimeSpan.FromSeconds(20)));
}
