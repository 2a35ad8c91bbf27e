using System.CommandLine;
using System.Runtime.InteropServices;
using System.Threading.Channels;
using Akka.Configuration;
using Microsoft.Extensions.Logging;
using Reloc.Actors.Site;
using Reloc.Nbd;

namespace Reloc.Node;

/// <summary><c>reloc-node --config hocon/site-a.conf</c>: run one site of the cluster until SIGTERM,
/// then drain NBD clients and leave the cluster gracefully.</summary>
internal static class SiteCommand
{
    public static void AddTo(RootCommand root)
    {
        var config = new Option<string?>("--config") { Description = "site configuration (HOCON), e.g. hocon/site-a.conf" };
        var logLevel = new Option<LogLevel>("--log-level")
        {
            Description = "least level logged on stderr (Akka's included: akka.loglevel follows it)",
            DefaultValueFactory = _ => LogLevel.Information,
        };
        var logFormat = new Option<LogFormat>("--log-format")
        {
            Description = "log lines on stderr: text (one line per event) or json (one JSON object per line)",
            DefaultValueFactory = _ => LogFormat.Text,
        };
        root.Options.Add(config);
        root.Options.Add(logLevel);
        root.Options.Add(logFormat);
        root.SetAction((r, ct) => r.GetValue(config) is { } path
            ? RunAsync(path, r.GetValue(logLevel), r.GetValue(logFormat))
            : Task.FromResult(Usage()));
    }

    /// <summary>SIGTERM is this command's (StopSignal): NBD clients drain first, then the node leaves the cluster
    /// (SiteNode.DisposeAsync). Akka's own hook would start leaving at once, and the node would look removed (exit 3).</summary>
    private static readonly Config OwnSignals = ConfigurationFactory.ParseString("akka.coordinated-shutdown.run-by-clr-shutdown-hook = off");

    private static int Usage()
    {
        Console.Error.WriteLine("reloc-node: give --config FILE to run a site, or a command (serve, proxy, wanlink); --help lists them");
        return 2;
    }

    /// <summary>The site's configuration: the RELOC_* environment variables (<see cref="EnvironmentConfig"/>) over
    /// the site file, with reloc.conf from the same folder (when there) as its fallback.</summary>
    public static Config Load(string path) => EnvironmentConfig.FromProcess().WithFallback(LoadFile(path));

    private static Config LoadFile(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"configuration {path} does not exist", path);
        var config = ConfigurationFactory.ParseString(File.ReadAllText(path));
        var common = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, "reloc.conf");
        if (File.Exists(common) && Path.GetFullPath(common) != Path.GetFullPath(path))
            config = config.WithFallback(ConfigurationFactory.ParseString(File.ReadAllText(common)));
        return config;
    }

    /// <summary>Fault campaigns only (reloc.site.fault-injection.remoting-black-hole = on): SIGUSR1 black-holes the
    /// node's cluster traffic, SIGUSR2 lifts it (raw Linux signal numbers, as <c>reloc-node wanlink</c> takes them). The
    /// signal handler only queues the wish; this loop, awaited at exit, carries them out in order.</summary>
    private static async Task ApplyBlackHolesAsync(ChannelReader<bool> wishes, SiteNode node)
    {
        await foreach (var on in wishes.ReadAllAsync())
        {
            try
            {
                var addresses = await node.BlackHoleRemotingAsync(on);
                Console.Error.WriteLine($"reloc-node: cluster traffic {(on ? "black-holed (SIGUSR1)" : "let through again (SIGUSR2)")}: {string.Join(", ", addresses)}");
            }
            catch (Exception ex)
            {
                Console.Error.WriteLine($"reloc-node: cluster black hole {(on ? "on" : "off")} failed: {ex.Message}");
            }
        }
    }

    private static async Task<int> RunAsync(string path, LogLevel level, LogFormat format)
    {
        // stdout carries the ready line only (scripts and tests wait for it). Akka writes its standard-out
        // logger's lines to Console.Out while its loggers start and stop, whatever akka.stdout-loglevel says:
        // this process's Console.Out is stderr from here on, and the ready line goes to the real stdout.
        var stdout = Console.Out;
        Console.SetOut(Console.Error);
        using var loggers = HostSupport.Loggers(level, format);
        // Fault injection's signals stay handled until the process ends, past the node's disposal (a downed node drains
        // its NBD clients first): a SIGUSR2 then must not take the default action, which ends the process.
        PosixSignalRegistration? holeOn = null, holeOff = null;
        var holeWishes = Channel.CreateBounded<bool>(new BoundedChannelOptions(4) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true });
        var holeLoop = Task.CompletedTask;
        var warmUp = Task.FromResult<NbdWarmUpReport?>(null);
        try
        {
            using var stop = new StopSignal();
            var config = OwnSignals.WithFallback(Load(path));
            var settings = SiteSettings.From(config.WithFallback(Reloc.Actors.RelocConfig.Reference));
            // Alongside the node's start (cluster join, journal recovery); done before the ready line. TLS too when the
            // site's NBD (guests, and its fetches from other sites) is.
            if (settings.WarmUp)
                warmUp = Task.Run<NbdWarmUpReport?>(async () => await NbdWarmUp.TryRunAsync(Path.GetTempPath(), settings.Tls.Enabled, settings.WarmUpTimeout));
            await using var node = SiteNode.Start(config, loggers);
            await node.WhenReadyAsync(TimeSpan.FromMinutes(5)); // the listen line means: every disk is served
            var log = loggers.CreateLogger("Reloc.Node");
            switch (await warmUp)
            {
                case null: log.LogInformation("NBD warm-up off (reloc.site.warm-up.enabled)"); break;
                case { Failure: not null } warm: log.LogWarning("NBD warm-up did not finish ({Report}): the first client may be slower", warm); break;
                case var warm: log.LogInformation("NBD warm-up: {Report}", warm); break;
            }
            if (settings.WarmUp)
            {
                // Needs the actor system (and its journal) up: after the ready wait, before the ready line.
                var clock = System.Diagnostics.Stopwatch.StartNew();
                if (await MissPathWarmUp.TryRunAsync(node.System, Path.GetTempPath(), settings.WarmUpTimeout) is { } why)
                    log.LogWarning("miss-path warm-up did not finish ({Reason}): the first relocation's first miss may be slower", why);
                else
                    log.LogInformation("miss-path warm-up: a relocating disk's guest misses run in {Ms:F0} ms", clock.Elapsed.TotalMilliseconds);
            }
            stdout.WriteLine($"reloc-node: site {node.Settings.Name} serving NBD on {node.NbdEndPoint} (advertised as {node.Settings.NbdAdvertise}), " +
                                  $"cluster address {Akka.Cluster.Cluster.Get(node.System).SelfAddress}, " +
                                  $"management {(node.Management is null ? "off" : node.Management.ToString())}");
            stdout.Flush();
            node.NotifyReady();
            if (node.Settings.FaultRemotingBlackHole)
            {
                holeLoop = ApplyBlackHolesAsync(holeWishes.Reader, node);
                holeOn = PosixSignalRegistration.Create((PosixSignal)10, ctx => { ctx.Cancel = true; holeWishes.Writer.TryWrite(true); });   // SIGUSR1
                holeOff = PosixSignalRegistration.Create((PosixSignal)12, ctx => { ctx.Cancel = true; holeWishes.Writer.TryWrite(false); }); // SIGUSR2
            }
            // A node the cluster downed (split-brain resolver, `reloc cluster down`) has shut its ActorSystem
            // down: exit non-zero so a supervisor (systemd) starts it afresh and it rejoins.
            if (await Task.WhenAny(stop.Task, node.System.WhenTerminated) == stop.Task || stop.Task.IsCompleted) return 0;
            Console.Error.WriteLine("reloc-node: this node was removed from the cluster; exiting so that it can be restarted");
            return 3;
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or IOException or ConfigurationException or System.Net.Sockets.SocketException)
        {
            Console.Error.WriteLine($"reloc-node: {ex.Message}");
            return 2;
        }
        finally
        {
            holeOn?.Dispose();
            holeOff?.Dispose();
            holeWishes.Writer.TryComplete();
            await holeLoop;
            await warmUp; // never throws; awaited on every path (a start-up that failed did not wait for it)
        }
    }
}
