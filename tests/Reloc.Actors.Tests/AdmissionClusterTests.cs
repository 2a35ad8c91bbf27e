using Akka.Actor;
using Reloc.Actors.Site;
using Reloc.Testing;
using Xunit;
using static Reloc.Actors.Coordinator.RelocationProtocol;
using static Reloc.Actors.Site.SiteProtocol;

namespace Reloc.Actors.Tests;

/// <summary>A drain through the admission queue in a real two-site cluster: five disks of site-a under a limit of two.
/// The coordinator's list, read all along, never shows more than two running; a queued disk is written at site-a while
/// it waits; one queued is cancelled and stays at site-a untouched; every other disk ends owned by site-b with the bytes
/// written at site-a (a distinct pattern each, one write into a hole).</summary>
public sealed class AdmissionClusterTests : IAsyncLifetime
{
    private const int Limit = 2, Disks = 5, Size = 4 << 20;
    private readonly InProcessSites _sites = new(2, "reloc-admission-test-", _ => $"""
        reloc.coordinator.max-concurrent-relocations-per-site = {Limit}
        reloc.coordinator.reconcile-interval = 500ms
        """);
    private SiteNode A => _sites.Nodes[0];
    private SiteNode B => _sites.Nodes[1];

    public Task InitializeAsync() => _sites.InitializeAsync();

    public Task DisposeAsync() => _sites.DisposeAsync();

    [Fact]
    public async Task A_drain_runs_at_most_the_limit_at_once_and_moves_every_disk_byte_for_byte()
    {
        var expected = new byte[Disks][];
        for (int i = 0; i < Disks; i++)
        {
            // Data in the first MiB, holes after it; then a guest's write into a hole, over NBD at site-a.
            expected[i] = new byte[Size];
            Tool.RandomBytes(1 << 20, 40 + i).CopyTo(expected[i], 0);
            var seed = Path.Combine(_sites.Dir, $"d{i}-seed.img");
            await using (var f = File.Create(seed)) { f.Write(expected[i], 0, 1 << 20); f.SetLength(Size); }
            var created = Assert.IsType<DiskInfo>(await A.Site.Ask<object>(new CreateDisk($"d{i}", 0, seed), TimeSpan.FromSeconds(20)));
            await Tool.CheckAsync("qemu-io", "-f", "raw", created.NbdUri, "-c", $"write -P {0x50 + i} 3M 64k");
            expected[i].AsSpan(3 << 20, 64 << 10).Fill((byte)(0x50 + i));
        }

        // Watch the coordinator's list while the drain runs: its truth about what runs and what waits.
        using var stop = new CancellationTokenSource();
        int maxRunning = 0, maxQueued = 0;
        var queuedAtSource = false;
        var watch = Task.Run(async () =>
        {
            using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(20));
            while (!stop.IsCancellationRequested)
            {
                var list = Assert.IsType<RelocationList>(await B.Coordinator.Ask<object>(new GetRelocations(), TimeSpan.FromSeconds(20))).Relocations;
                maxRunning = Math.Max(maxRunning, list.Count(r => r.Phase != QueuedPhase));
                maxQueued = Math.Max(maxQueued, list.Count(r => r.Phase == QueuedPhase));
                if (!queuedAtSource) queuedAtSource = (await ListAsync(A)).Disks.Any(d => d.Queued is { ToSite: "site-b" });
                try { await timer.WaitForNextTickAsync(stop.Token); } catch (OperationCanceledException) { }
            }
        });

        // A cap per relocation keeps each running long enough for the queue to matter (4 MiB at 4 MB/s: about 1 s each).
        var drain = Assert.IsType<DrainAccepted>(await A.Coordinator.Ask<object>(new DrainSite("site-a", "site-b", RateBytesPerSecond: 4_000_000), TimeSpan.FromSeconds(30)));
        Assert.Empty(drain.Skipped);
        Assert.Equal(Enumerable.Range(0, Disks).Select(i => $"d{i}"), drain.Relocations.Select(r => r.Disk).Order());
        Assert.Equal(Disks - Limit, drain.Relocations.Count(r => r.Phase == QueuedPhase));

        // A second drain finds nothing left to take: every disk is relocating or queued.
        var again = Assert.IsType<DrainAccepted>(await A.Coordinator.Ask<object>(new DrainSite("site-a", "site-b"), TimeSpan.FromSeconds(30)));
        Assert.Empty(again.Relocations);
        Assert.Equal(Disks, again.Skipped.Count);

        // The last in line is cancelled: out of the queue, its disk where it was (owned at epoch 1, nothing queued).
        var last = drain.Relocations.Where(r => r.Phase == QueuedPhase).MaxBy(r => r.Position)!.Disk;
        Assert.Equal(new RelocationCancelled(last), await A.Coordinator.Ask<object>(new CancelRelocation(last), TimeSpan.FromSeconds(20)));
        // Its source forgets it (the Unqueue may arrive after the answer, from another node).
        await InProcessSites.AwaitAsync(async () => (await ListAsync(A)).Disks.Single(d => d.Name == last) is { Phase: "owned", Epoch: 1, Queued: null });
        Assert.DoesNotContain(Assert.IsType<RelocationList>(await A.Coordinator.Ask<object>(new GetRelocations(), TimeSpan.FromSeconds(20))).Relocations, r => r.Disk == last);
        // A disk that waits is served as before at its source: a guest's write there (into a hole) arrives with it.
        var waiting = drain.Relocations.First(r => r.Phase == QueuedPhase && r.Disk != last).Disk;
        var w = int.Parse(waiting[1..]);
        await Tool.CheckAsync("qemu-io", "-f", "raw", (await ListAsync(A)).Disks.Single(d => d.Name == waiting).NbdUri, "-c", "write -P 0x77 2M 4k");
        expected[w].AsSpan(2 << 20, 4096).Fill(0x77);

        await InProcessSites.AwaitAsync(async () => (await ListAsync(B)).Disks.Count(d => d.Phase == "owned" && d.Epoch == 2) == Disks - 1
                                                    && (await ListAsync(A)).Disks.Count == 1);
        await stop.CancelAsync();
        await watch;
        Assert.True(maxRunning == Limit, $"at most {Limit} relocations at once, and that many used; the coordinator showed {maxRunning}");
        Assert.True(maxQueued >= Disks - Limit - 1, $"the queue held {maxQueued}");
        Assert.True(queuedAtSource, "site-a never showed a queued relocation in its disk list");

        var stayed = Assert.Single((await ListAsync(A)).Disks);
        Assert.Equal((last, "owned", 1L, (QueuedRelocation?)null), (stayed.Name, stayed.Phase, stayed.Epoch, stayed.Queued));
        foreach (var moved in (await ListAsync(B)).Disks.Append(stayed))
        {
            var copy = Path.Combine(_sites.Dir, moved.Name + "-moved.img");
            await Tool.CheckAsync("nbdcopy", moved.NbdUri, copy);
            var i = int.Parse(moved.Name[1..]);
            var bytes = await File.ReadAllBytesAsync(copy);
            Assert.True(expected[i].AsSpan().SequenceEqual(bytes), $"{moved.Name} differs at site-b from what was written at site-a");
        }
        Assert.Empty(Assert.IsType<RelocationList>(await A.Coordinator.Ask<object>(new GetRelocations(), TimeSpan.FromSeconds(20))).Relocations);
    }

    [Fact]
    public async Task A_drain_into_itself_or_an_unknown_site_is_refused()
    {
        Assert.Contains("into itself", Assert.IsType<RelocationRefused>(await A.Coordinator.Ask<object>(new DrainSite("site-a", "site-a"), TimeSpan.FromSeconds(20))).Reason);
        Assert.Contains("unknown site 'site-x'", Assert.IsType<RelocationRefused>(await A.Coordinator.Ask<object>(new DrainSite("site-a", "site-x"), TimeSpan.FromSeconds(20))).Reason);
    }

    private static async Task<DiskList> ListAsync(SiteNode node) =>
        Assert.IsType<DiskList>(await node.Site.Ask<object>(new ListDisks(), TimeSpan.FromSeconds(20)));
}
