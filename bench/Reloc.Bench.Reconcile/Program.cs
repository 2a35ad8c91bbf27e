using System.Diagnostics;
using Akka.Actor;
using Reloc.Actors;
using Reloc.Actors.Coordinator;
using Reloc.Actors.Site;

// The coordinator's reconcile round over its pure core (CoordinatorCore + Reconciler), no cluster: for each number of
// disks, three sites' disk lists (every disk owned by one site; RELOCATING of them under way, post-copy: outgoing at
// their source, incoming and writable at their destination), the round judged ROUNDS times after a first round that
// adopts the relocations. Per round: the core's time (median of ROUNDS), bytes allocated, the size of the three lists
// as the node's serializer writes them for remoting (what crosses the network per round), and the time to write and
// read them back. One TSV row per disk count on stdout (after a warm-up pass over the same counts).
// usage: reloc-bench-reconcile [--disks 10,100,300,1000,3000,10000] [--relocating 100] [--rounds 50]
var disks = Arg("--disks", "10,100,300,1000,3000,10000").Split(',').Select(int.Parse).ToArray();
var relocating = int.Parse(Arg("--relocating", "100"));
var rounds = int.Parse(Arg("--rounds", "50"));
string[] sites = ["site-a", "site-b", "site-c"];

using var system = ActorSystem.Create("bench", RelocConfig.Node(RelocConfig.Sqlite(":memory:")));
var serialization = system.Serialization;
Console.WriteLine("disks\trelocating\tcore_us_p50\tcore_us_min\talloc_KiB\tlist_bytes\tserialize_us_p50\tdeserialize_us_p50\tsteps");
// A first pass warms the code (tiered JIT) with the same sizes; only the second pass is printed.
foreach (var (n, print) in disks.Select(n => (n, false)).Concat(disks.Select(n => (n, true))))
{
    var lists = Lists(n, Math.Min(relocating, n));
    var core = new CoordinatorCore(TimeSpan.FromSeconds(2), () => Guid.NewGuid().ToString("N"));
    var now = DateTime.UtcNow;
    Round(core, lists, ref now); // the first round adopts the relocations under way
    var times = new List<double>();
    long alloc = 0, steps = 0;
    for (var i = 0; i < rounds; i++)
    {
        var before = GC.GetAllocatedBytesForCurrentThread();
        var start = Stopwatch.GetTimestamp();
        steps += Round(core, lists, ref now);
        times.Add(Stopwatch.GetElapsedTime(start).TotalMicroseconds);
        alloc += GC.GetAllocatedBytesForCurrentThread() - before;
    }
    long bytes = 0;
    var ser = new List<double>();
    var de = new List<double>();
    for (var i = 0; i < Math.Max(5, rounds / 5); i++)
    {
        bytes = 0;
        double s = 0, d = 0;
        foreach (var list in lists)
        {
            var serializer = (Akka.Serialization.SerializerWithStringManifest)serialization.FindSerializerFor(list);
            var t0 = Stopwatch.GetTimestamp();
            var wire = serializer.ToBinary(list);
            var t1 = Stopwatch.GetTimestamp();
            _ = serializer.FromBinary(wire, serializer.Manifest(list));
            s += Stopwatch.GetElapsedTime(t0, t1).TotalMicroseconds;
            d += Stopwatch.GetElapsedTime(t1).TotalMicroseconds;
            bytes += wire.Length;
        }
        ser.Add(s);
        de.Add(d);
    }
    if (print) Console.WriteLine($"{n}\t{Math.Min(relocating, n)}\t{Median(times):F0}\t{times.Min():F0}\t{alloc / rounds / 1024.0:F0}\t{bytes}\t{Median(ser):F0}\t{Median(de):F0}\t{steps / (double)rounds:F1}");
}
return;

// One round as the shell runs it: the tick asks, the answers are judged. Returns the steps it sent.
int Round(CoordinatorCore core, IReadOnlyList<SiteProtocol.DiskList> lists, ref DateTime now)
{
    now += TimeSpan.FromSeconds(2);
    var asked = now;
    core.Handle(new CoordinatorInput.Tick(now, sites));
    now += TimeSpan.FromMilliseconds(5);
    return core.Handle(new CoordinatorInput.Observed(lists, asked, now)).Count(d => d is CoordinatorDecision.SendToSite);
}

IReadOnlyList<SiteProtocol.DiskList> Lists(int n, int moving)
{
    var bySite = sites.ToDictionary(s => s, _ => new List<SiteProtocol.DiskInfo>());
    for (var i = 0; i < n; i++)
    {
        var name = $"vm{i:D5}";
        var from = sites[i % 3];
        var uri = $"nbd://127.0.0.1:{10811 + i % 3}/{name}";
        if (i < moving)
        {
            var to = sites[(i + 1) % 3];
            var id = $"r{i:D5}";
            bySite[from].Add(new SiteProtocol.DiskInfo(name, 32L << 20, from, 1, SiteDisk.Fenced, uri, to, 32L << 20, 0, false, false, id));
            bySite[to].Add(new SiteProtocol.DiskInfo(name, 32L << 20, to, 2, SiteDisk.Incoming, $"nbd://127.0.0.1:{10811 + (i + 1) % 3}/{name}", from, 16L << 20, 0, true, false, id));
        }
        else bySite[from].Add(new SiteProtocol.DiskInfo(name, 1L << 30, from, 1, SiteDisk.Owned, uri));
    }
    return sites.Select(s => new SiteProtocol.DiskList(s, bySite[s])).ToList();
}

static double Median(List<double> v) => v.Order().ElementAt(v.Count / 2);

string Arg(string name, string fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
}
