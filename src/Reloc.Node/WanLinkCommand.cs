using System.CommandLine;
using System.Runtime.InteropServices;
using System.Net.Sockets;
using Reloc.Wan;

namespace Reloc.Node;

/// <summary><c>reloc-node wanlink</c>: a TCP relay that behaves like a WAN path (delay, shared
/// bandwidth, bounded bottleneck queue), for benchmarks and demos on one machine. For fault campaigns,
/// SIGUSR1 makes the link a black hole (nothing crosses, nothing is closed) and SIGUSR2 ends it.</summary>
internal static class WanLinkCommand
{
    public static Command Create()
    {
        var listen = new Option<string>("--listen") { Description = "local address to accept on (HOST:PORT)", Required = true };
        var target = new Option<string>("--target") { Description = "address to relay to (HOST:PORT)", Required = true };
        var rtt = new Option<string>("--rtt") { Description = "round-trip delay added, e.g. 50ms", DefaultValueFactory = _ => "50ms" };
        var rate = new Option<string>("--rate") { Description = "bandwidth per direction, e.g. 40MB/s (0 = unlimited)", DefaultValueFactory = _ => "40MB/s" };
        var queue = new Option<string>("--queue") { Description = "bottleneck queue, as time at the rate (100ms) or bytes (4MiB)", DefaultValueFactory = _ => "100ms" };
        var command = new Command("wanlink", "Relay TCP through an emulated WAN link (SIGUSR1: black hole on, SIGUSR2: off)") { listen, target, rtt, rate, queue };
        command.SetAction((r, ct) => RunAsync(r.GetValue(listen)!, r.GetValue(target)!, r.GetValue(rtt)!, r.GetValue(rate)!, r.GetValue(queue)!));
        return command;
    }

    private static async Task<int> RunAsync(string listen, string target, string rtt, string rate, string queue)
    {
        try
        {
            var settings = WanLinkSettings.Parse($"rtt={rtt} rate={rate} queue={queue}");
            using var stop = new StopSignal();
            await using var link = await WanLink.StartAsync(HostSupport.ParseEndPoint(listen), HostSupport.ParseEndPoint(target), settings);
            // Raw Linux signal numbers (PosixSignal names only the portable ones).
            using var holeOn = PosixSignalRegistration.Create((PosixSignal)10, ctx => Hole(ctx, link, on: true));   // SIGUSR1
            using var holeOff = PosixSignalRegistration.Create((PosixSignal)12, ctx => Hole(ctx, link, on: false)); // SIGUSR2
            Console.Out.WriteLine($"reloc-node wanlink: {link.LocalEndPoint} -> {target} ({settings})");
            Console.Out.Flush();
            await stop.Task;
            return 0;
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or SocketException)
        {
            Console.Error.WriteLine($"reloc-node wanlink: {ex.Message}");
            return 2;
        }
    }

    private static void Hole(PosixSignalContext ctx, WanLink link, bool on)
    {
        ctx.Cancel = true;
        if (on) link.StartBlackHole();
        else link.EndBlackHole();
        Console.Out.WriteLine(on ? "reloc-node wanlink: black hole on (SIGUSR1)" : "reloc-node wanlink: black hole off (SIGUSR2)");
        Console.Out.Flush();
    }
}
