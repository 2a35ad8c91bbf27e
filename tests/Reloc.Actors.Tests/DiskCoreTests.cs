using Reloc.Actors.Disk;
using Reloc.Storage;
using Xunit;
using static Reloc.Actors.Disk.DiskDecision;
using P = Reloc.Actors.Disk.VirtualDiskProtocol;

namespace Reloc.Actors.Tests;

/// <summary>The relocating disk's decisions as tables: a sequence of inputs to a <see cref="DiskCore"/> over a
/// disk of four blocks, the decisions it took (in order, written short) and the block map it leaves.</summary>
public sealed class DiskCoreTests
{
    private const int Block = 4096;
    private static readonly DateTime T0 = new(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);

    /// <summary>Drives a core and writes its decisions short: "fetch 0+1", "g:ready", "persist L0+1 I1+1 O2 C", ...</summary>
    public sealed class Disk
    {
        private readonly List<Persist> _persists = [];
        private readonly List<StartSync> _syncs = [];

        public Disk(bool owner, int snapshotEvery = 500, Func<DiskSettings, DiskSettings>? tune = null)
        {
            var settings = new DiskSettings
            {
                BlockSize = Block, MissTimeout = TimeSpan.FromSeconds(30), PersistInterval = TimeSpan.FromSeconds(1), SnapshotEvery = snapshotEvery,
            };
            Core = new DiskCore("vm", new DiskState(4 * Block, Block, owner), (tune ?? (x => x))(settings).Validate());
            Do(new DiskInput.Recovered(T0));
        }

        public DiskCore Core { get; }
        public List<string> Said { get; } = [];
        public string Map => Show(Core.State.Map);

        public void Do(DiskInput input)
        {
            foreach (var d in Core.Handle(input))
            {
                if (d is Persist p) _persists.Add(p);
                if (d is StartSync s) _syncs.Add(s);
                if (Short(d) is { } text) Said.Add(text);
            }
        }

        public void Scanned(params (long, long)[] zeros) => Do(new DiskInput.SourceZero(1, zeros));
        public void Work(string who = "p", long max = 4) => Do(new DiskInput.RequestWork(max, who));
        public void Land(long first, long count, LandKind kind = LandKind.Fetched) => Do(new DiskInput.Landed(first, count, kind, count * Block));
        public void Invalidate(long first, long count, string who = "s") => Do(new DiskInput.Invalidate(1, [(first, count)], who));
        public void Read(long block, string who = "g") => Do(new DiskInput.EnsureLocal(block * Block, Block, who, T0));
        public void Write(long offset, long length, string who = "g", int at = 0) => Do(new DiskInput.PrepareWrite(offset, length, who, T0.AddSeconds(at)));
        public void Flush(string who = "f") => Do(new DiskInput.Sync(who, T0));
        public void Tick(int seconds) => Do(new DiskInput.Tick(T0.AddSeconds(seconds)));
        /// <summary>The image could not take the fetched blocks (ENOSPC).</summary>
        public void Full(long first, long count) => Do(new DiskInput.FetchFailed(first, count, "no space left on device", NoSpace: true));

        /// <summary>The journal write decided first and not fed back yet is done.</summary>
        public void Persisted()
        {
            var p = _persists[0];
            _persists.RemoveAt(0);
            Do(new DiskInput.Persisted(p.Then));
        }

        public void Synced()
        {
            var s = _syncs[0];
            _syncs.RemoveAt(0);
            Do(new DiskInput.DataSynced(s.Id));
        }

        private static string Show(BlockMap map) =>
            string.Concat(Enumerable.Range(0, (int)map.BlockCount).Select(b => map[b] switch { BlockState.Local => 'L', BlockState.Fetching => 'F', _ => 'R' }));

        private static string Runs(IEnumerable<(long First, long Count)> runs) => string.Join(",", runs.Select(r => $"{r.First}+{r.Count}"));

        private static string? Short(DiskDecision d) => d switch
        {
            Reply r => $"{r.To}:" + r.Message switch
            {
                P.Ready => "ready",
                P.Failed => "failed",
                P.WriteGranted g => $"granted {Runs(g.Reserved)}".TrimEnd(),
                P.Invalidated => "invalidated",
                P.OwnershipConfirmed o => $"owned e{o.Epoch}",
                P.StaleEpoch => "stale",
                P.Work w => $"work {w.First}+{w.Count}{(w.Zero ? " zero" : "")}",
                P.NoWork => "nowork",
                var m => m.GetType().Name,
            },
            StartFetch f => $"fetch {f.First}+{f.Count}",
            ForwardReadThrough => "through",
            ScanSource s => $"scan {s.Scan} {Runs(s.Ranges)}",
            StartSync s => $"sync {s.Id}",
            Persist p => "persist " + string.Join(" ", p.Events.Select(e => e switch
            {
                DiskEvents.BlocksLanded l => $"L{l.First}+{l.Count}",
                DiskEvents.BlocksInvalidated i => $"I{i.First}+{i.Count}",
                DiskEvents.OwnershipTaken o => $"O{o.Epoch}",
                _ => "C",
            })),
            SaveSnapshot s => $"snapshot {Show(BlockMap.FromSnapshot(s.Snapshot.Map))}",
            Publish { Message: P.RelocationFinished } => "finished",
            Publish { Message: P.WriteHeldForHandover } => "held",
            Publish { Message: P.ArrivalStalled } => "stalled",
            StopChildren => "stop",
            Log { Event: not DiskCoreEvent.None } l => $"event {l.Event}",
            _ => null,
        };
    }

    public static TheoryData<string, bool, Action<Disk>, string, string> Cases => new()
    {
        // name | owner | inputs after recovery (which scans 0+4) | decisions, in order | block map
        {
            "zero runs, then an invalidation, then the copy: the written block is read", false, d =>
            {
                d.Scanned((0, 4));
                d.Work();
                d.Land(0, 4, LandKind.Skipped);
                d.Invalidate(1, 1);
                d.Persisted();
                d.Work();
            }, "scan 1 0+4 | p:work 0+4 zero | event HoleWritten | scan 2 1+1 | persist I1+1 | s:invalidated | p:work 1+1", "LFLL"
        },
        {
            "a fetch issued before an invalidation never lands", false, d =>
            {
                d.Scanned();
                d.Work();
                d.Invalidate(2, 1);
                d.Land(0, 4);
            }, "scan 1 0+4 | p:work 0+4 | persist I2+1", "LLRL"
        },
        {
            "the first window goes out before the scan answers", false, d =>
            {
                d.Work();
                d.Scanned((2, 2));
            }, "scan 1 0+4 | p:work 0+4", "FFFF"
        },
        {
            "a whole-block write reserves without fetching; a partial one fetches first", true, d =>
            {
                d.Scanned();
                d.Write(Block, Block);
                d.Write(2 * Block + 1, 10, "h");
                d.Land(2, 1);
                d.Do(new DiskInput.WriteDone([(1, 1)]));
            }, "scan 1 0+4 | g:granted 1+1 | fetch 2+1 | h:granted", "RLLR"
        },
        {
            "a fetch landing on a reserved block leaves it to the writer", true, d =>
            {
                d.Scanned();
                d.Write(0, 2 * Block);
                d.Land(0, 2);
            }, "scan 1 0+4 | g:granted 0+2", "FFRR"
        },
        {
            "a write before the handover is held, and granted once the ownership is durable", false, d =>
            {
                d.Scanned();
                d.Write(0, Block);
                d.Do(new DiskInput.TakeOwnership(2, [(3, 1)], "k"));
                d.Invalidate(1, 1);
                d.Persisted();
            }, "scan 1 0+4 | held | persist I3+1 O2 | s:stale | event Owned | k:owned e2 | g:granted 0+1", "FRRR"
        },
        {
            "held writes expire at the miss timeout", false, d =>
            {
                d.Scanned();
                d.Write(0, Block, "g");
                d.Write(Block, Block, "h", at: 20);
                d.Tick(31);
                d.Tick(51);
            }, "scan 1 0+4 | held | g:failed | event HeldWriteExpired | h:failed | event HeldWriteExpired", "RRRR"
        },
        {
            "a small read inside a missing block gets its bytes from the source first; the block lands after", true, d =>
            {
                d.Scanned();
                d.Do(new DiskInput.EnsureLocal(Block + 512, 1024, "g", T0));
                d.Land(1, 1);
                d.Read(1, "h");
            }, "scan 1 0+4 | through | fetch 1+1 | h:ready", "RLRR"
        },
        {
            "a small read of a block already being fetched waits for it: no second read", true, d =>
            {
                d.Scanned();
                d.Read(2);
                d.Do(new DiskInput.EnsureLocal(2 * Block + 512, 1024, "h", T0));
                d.Land(2, 1);
            }, "scan 1 0+4 | fetch 2+1 | g:ready | h:ready", "RRLR"
        },
        {
            "a small read of a block reserved by a writer waits for the write, never reads the source", true, d =>
            {
                d.Scanned();
                d.Write(0, Block, "w");
                d.Do(new DiskInput.EnsureLocal(512, 1024, "h", T0));
                d.Do(new DiskInput.WriteDone([(0, 1)]));
            }, "scan 1 0+4 | w:granted 0+1 | h:ready", "LRRR"
        },
        {
            "a small read across two missing blocks waits for both blocks", true, d =>
            {
                d.Scanned();
                d.Do(new DiskInput.EnsureLocal(Block - 512, 1024, "h", T0));
                d.Land(0, 2);
            }, "scan 1 0+4 | fetch 0+2 | h:ready", "LLRR"
        },
        {
            "a FLUSH is answered only after data and bits are durable", true, d =>
            {
                d.Scanned();
                d.Read(0);
                d.Land(0, 1);
                d.Flush();
                d.Synced();
                d.Persisted();
            }, "scan 1 0+4 | fetch 0+1 | g:ready | sync 1 | persist L0+1 | f:ready", "LRRR"
        },
        {
            "an invalidated landing is dropped from its batch", false, d =>
            {
                d.Scanned();
                d.Work();
                d.Land(0, 4);
                d.Flush();
                d.Invalidate(1, 2);
                d.Synced();
            }, "scan 1 0+4 | p:work 0+4 | sync 1 | persist I1+2 | persist L0+1 L3+1", "LRRL"
        },
        {
            "the last landing is persisted, then the completion", true, d =>
            {
                d.Scanned((0, 3));
                d.Work();
                d.Land(0, 3, LandKind.Skipped);
                d.Read(3);
                d.Land(3, 1);
                d.Synced();
                d.Persisted();
                d.Persisted();
            }, "scan 1 0+4 | p:work 0+3 zero | fetch 3+1 | g:ready | sync 1 | persist L0+3 L3+1 | persist C | stop | snapshot LLLL | finished", "LLLL"
        },
    };

    [Fact]
    public void Out_of_space_the_blocks_stay_missing_the_site_hears_once_and_the_copy_goes_on_when_blocks_land_again()
    {
        var disk = new Disk(owner: true);
        disk.Scanned();
        disk.Work();
        disk.Full(0, 4);
        Assert.Equal("scan 1 0+4 | p:work 0+4 | event NoSpace | stalled", string.Join(" | ", disk.Said));
        Assert.Equal("RRRR", disk.Map); // nothing that did not land counts as here
        Assert.Equal("stalled", StatusOf(disk).State);
        Assert.Contains("no space left", StatusOf(disk).Stalled);
        var (first, count) = Retry();
        disk.Full(first, count);
        Assert.Single(disk.Said); // every retry fails the same way: said once
        (first, count) = Retry();
        disk.Land(first, count);
        Assert.Equal("relocating", StatusOf(disk).State);
        Assert.Null(StatusOf(disk).Stalled);
        Assert.Equal(count, disk.Map.Count(c => c == 'L'));

        (long, long) Retry()
        {
            disk.Said.Clear();
            disk.Work();
            var run = System.Text.RegularExpressions.Regex.Match(disk.Said.Single(), @"^p:work (\d+)\+(\d+)$");
            Assert.True(run.Success, disk.Said.Single());
            return (long.Parse(run.Groups[1].Value), long.Parse(run.Groups[2].Value));
        }

        static P.Status StatusOf(Disk d) =>
            (P.Status)d.Core.Handle(new DiskInput.GetStatus("q")).OfType<Reply>().Single().Message;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Decides(string name, bool owner, Action<Disk> inputs, string decisions, string map)
    {
        _ = name;
        var disk = new Disk(owner);
        inputs(disk);
        Assert.Equal(decisions, string.Join(" | ", disk.Said));
        Assert.Equal(map, disk.Map);
    }

    [Theory]
    // name | before-scan on | first window (chunks of one block) | decisions | block map
    [InlineData("the first window goes out with the scan; the request after it waits for the scan's answer, which then classifies it",
        true, 2, "scan 1 0+4 | p:work 0+1 | p:work 1+1 | p:work 2+2 zero", "FFFF")]
    [InlineData("a window larger than the disk: everything is read, holes included (they land as zeros)",
        true, 8, "scan 1 0+4 | p:work 0+1 | p:work 1+1 | p:work 2+1 | p:work 3+1 zero", "FFFF")]
    [InlineData("off: nothing is handed out before the scan has answered",
        false, 2, "scan 1 0+4 | p:work 0+1 | p:work 1+1 | p:work 2+2 zero", "FFFF")]
    public void Background_work_before_the_first_scan_answers(string name, bool beforeScan, int window, string decisions, string map)
    {
        _ = name;
        var d = new Disk(owner: false, tune: s => s with { PrefetchChunkBytes = Block, PrefetchInitialWindow = window, PrefetchBeforeScan = beforeScan });
        d.Work(max: 1);
        d.Work(max: 1);
        d.Work(max: 1);
        var before = d.Said.Count;
        d.Scanned((2, 2));
        if (d.Map != map) d.Work(max: 1); // one more request when the scan's answer left blocks unclaimed
        Assert.Equal(decisions, string.Join(" | ", d.Said));
        Assert.Equal(map, d.Map);
        Assert.Equal(beforeScan ? Math.Min(window, 3) + 1 : 1, before); // the scan, then what went out before its answer
    }

    [Theory]
    [InlineData(1L << 30, 500)]      // 4 KiB map: snapshot-every as set
    [InlineData(64L << 30, 2048)]    // 256 KiB map
    [InlineData(1L << 40, 32768)]    // 4 MiB map: not written whole every 500 events
    public void A_large_disk_snapshots_its_map_less_often(long size, long events)
    {
        var core = new DiskCore("vm", new DiskState(size, 65536), new DiskSettings { SnapshotEvery = 500 });
        Assert.Equal(events, core.SnapshotAfter);
    }

    [Fact]
    public void A_snapshot_leaves_out_landings_not_synced()
    {
        var d = new Disk(owner: true, snapshotEvery: 1);
        d.Scanned();
        d.Read(0);
        d.Land(0, 1);
        d.Flush();
        d.Read(1);
        d.Land(1, 1); // lands while the first batch is synced: not durable yet
        d.Synced();
        d.Persisted();
        Assert.Equal("scan 1 0+4 | fetch 0+1 | g:ready | sync 1 | fetch 1+1 | g:ready | persist L0+1 | f:ready | snapshot LRRR", string.Join(" | ", d.Said));
        Assert.Equal("LLRR", d.Map);
    }

    [Fact]
    public void The_same_inputs_give_the_same_decisions()
    {
        string Run()
        {
            var d = new Disk(owner: false);
            d.Scanned((2, 1));
            d.Work();
            d.Work();
            d.Invalidate(0, 3);
            d.Land(0, 2);
            d.Do(new DiskInput.TakeOwnership(2, [(1, 1)], "k"));
            d.Persisted();
            d.Persisted();
            return string.Join(" | ", d.Said) + " " + d.Map;
        }
        Assert.Equal(Run(), Run());
    }
}
