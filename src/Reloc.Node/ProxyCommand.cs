using System.CommandLine;
using System.Net.Sockets;
using System.Text.Json;
using Akka.Actor;
using Microsoft.Extensions.Logging;
using Reloc.Actors;
using Reloc.Actors.Disk;
using Reloc.Actors.Source;
using Reloc.Nbd.Client;
using Reloc.Nbd;
using Reloc.Nbd.Server;
using Reloc.Nbd.Tls;
using Reloc.Storage;
using Reloc.Wan;

namespace Reloc.Node;

/// <summary>
/// <c>reloc-node proxy</c>: serve a disk here at once while relocating it from any NBD source
/// (another site, nbdkit, qemu-nbd). Progress goes to stdout as one JSON object per line; run it again
/// with the same state directory and it resumes.
/// </summary>
internal static class ProxyCommand
{
    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static Command Create()
    {
        var listen = new Option<string>("--listen") { Description = "TCP address to serve on (HOST:PORT)", DefaultValueFactory = _ => "127.0.0.1:10809" };
        var export = new Option<string>("--export") { Description = "NAME=IMAGE: the export and its local image (created sparse at the source's size if missing)", Required = true };
        var source = new Option<string>("--source")
        {
            Description = "where the disk is now: nbd://HOST:PORT/EXPORT, nbd+unix:///EXPORT?socket=PATH, or over TLS "
                          + "nbds://HOST:PORT/EXPORT?tls-certificates=DIR (DIR: ca-cert.pem, optionally client-cert.pem and client-key.pem)",
            Required = true,
        };
        var stateDir = new Option<string>("--state-dir") { Description = "directory for the relocation's durable state (SQLite)", Required = true };
        var prefetch = new Option<string>("--prefetch") { Description = "background copy: on or off", DefaultValueFactory = _ => "on" };
        var rate = new Option<string?>("--rate") { Description = "cap on background copy, e.g. 40MB/s (default: none)" };
        var blockSize = new Option<string>("--block-size") { Description = "relocation block size, e.g. 64KiB or 4KiB", DefaultValueFactory = _ => "64KiB" };
        var missTimeout = new Option<string>("--miss-timeout") { Description = "how long a guest read waits for an unreachable source before EIO", DefaultValueFactory = _ => "30s" };
        var logLevel = new Option<LogLevel>("--log-level") { Description = "log level on stderr", DefaultValueFactory = _ => LogLevel.Warning };
        var command = new Command("proxy", "Serve a disk here while relocating it from an NBD source")
            { listen, export, source, stateDir, prefetch, rate, blockSize, missTimeout, logLevel };
        var tls = new TlsCli();
        tls.AddTo(command);
        command.SetAction((r, ct) => RunAsync(r.GetValue(listen)!, r.GetValue(export)!, r.GetValue(source)!, r.GetValue(stateDir)!,
            r.GetValue(prefetch)!, r.GetValue(rate), r.GetValue(blockSize)!, r.GetValue(missTimeout)!, r.GetValue(logLevel), () => tls.Settings(r)));
        return command;
    }

    private static async Task<int> RunAsync(string listen, string exportSpec, string sourceUri, string stateDir,
        string prefetch, string? rate, string blockSize, string missTimeout, LogLevel level, Func<NbdTlsSettings> tlsSettings)
    {
        using var loggers = HostSupport.Loggers(level);
        RawImage? image = null;
        ActorSystem? system = null;
        NbdClient? probe = null;
        Task<NbdWarmUpReport?> warmUp = Task.FromResult<NbdWarmUpReport?>(null);
        try
        {
            var tls = tlsSettings();
            var (name, imagePath, _) = HostSupport.ParseExport(exportSpec);
            var endPoint = HostSupport.ParseEndPoint(listen);
            if (prefetch is not ("on" or "off")) throw new ArgumentException($"--prefetch '{prefetch}': expected on or off");
            var sourceOptions = NbdClientOptions.FromUri(sourceUri);
            Directory.CreateDirectory(stateDir);
            // Alongside the source's handshake and the journal's start; awaited before the server listens.
            // TLS too when the guests' side or the source's is TLS.
            var warmTls = tls.Enabled || sourceOptions.Tls == NbdClientTlsMode.Require;
            warmUp = Task.Run<NbdWarmUpReport?>(async () => await NbdWarmUp.TryRunAsync(stateDir, warmTls, NbdWarmUp.DefaultTimeout));
            var settings = RelocConfig.DiskSettings(RelocConfig.Reference) with
            {
                BlockSize = (int)Units.ParseSize(blockSize),
                Prefetch = prefetch == "on",
                RateBytesPerSecond = rate is null ? 0 : Units.ParseRate(rate),
                MissTimeout = Units.ParseDuration(missTimeout),
            };
            settings.Validate();

            // The first connection to the source learns its size and then serves the guest's first misses: opened
            // before the journal and the server start, it is ready when the first guest read comes.
            probe = await NbdClient.ConnectAsync(sourceOptions);
            long size = probe.Size;
            var manifest = RelocationManifest.LoadOrCreate(Path.Combine(stateDir, "relocation.json"),
                new RelocationManifest(name, sourceUri, size, settings.BlockSize));
            image = File.Exists(imagePath) ? RawImage.Open(imagePath, readOnly: false) : RawImage.Create(imagePath, size);
            if (image.Size != size)
                throw new ArgumentException($"image {imagePath} is {image.Size} bytes but the source is {size}: refusing to relocate into it");

            RelocConfig.UseWriteAheadLog(Path.Combine(stateDir, "reloc.db"));
            system = RelocConfig.CreateSystem("reloc", RelocConfig.Node(RelocConfig.Sqlite(Path.Combine(stateDir, "reloc.db"))));
            var state = new DiskState(size, manifest.BlockSize);
            var disk = system.ActorOf(VirtualDiskActor.Props(new DiskId(name), state, image, settings,
                NbdBlockSource.Factory(sourceOptions, size, first: probe)), "disk-" + name);
            probe = null; // the disk's fetcher owns it (if the disk is complete already, it stays idle until exit)
            var device = new RelocatingDisk(image, state, disk, settings);

            using var stop = new StopSignal();
            await WarmMissPathAsync(device, loggers);
            if (await warmUp is { Failure: not null } warm)
                loggers.CreateLogger("Reloc.Node").LogWarning("NBD warm-up did not finish ({Report}): the first client may be slower", warm);
            await using var server = new NbdServer(new ExportCatalog([new NbdExport(name, device, $"relocating from {sourceUri}")]),
                new NbdServerSettings { Tls = tls }, loggers);
            var tcp = server.ListenTcp(endPoint);
            Console.Error.WriteLine($"reloc-node proxy: serving {TlsCli.Scheme(tls)}://{tcp}/{name}, relocating from {sourceUri}");

            await ReportProgressAsync(system, disk, stop.Task);
            await stop.Task;
            await server.StopAsync(); // drains clients and flushes: data and bits durable
            await system.Terminate();
            return 0;
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or IOException or SocketException or UnauthorizedAccessException
                                       or InvalidDataException or System.Security.Cryptography.CryptographicException)
        {
            Console.Error.WriteLine($"reloc-node proxy: {ex.Message}");
            return 2;
        }
        finally
        {
            if (probe is not null) await probe.DisposeAsync();
            await warmUp; // never throws; its temporary image is gone before the state directory may be
            if (system is not null) await system.Terminate();
            image?.Dispose();
        }
    }

    /// <summary>Reads the disk's first 4 KiB through the guest's path before the server listens: a miss (fetched over
    /// the source connection opened first) on a fresh disk, so the miss path is compiled and the block local before a
    /// guest's first read; the block would be copied anyway. Bounded: an unreachable source only delays the start.</summary>
    private static async Task WarmMissPathAsync(RelocatingDisk device, ILoggerFactory loggers)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            await device.ReadAsync(0, new byte[Math.Min(4096, device.Size)], timeout.Token);
        }
        catch (Exception ex) when (ex is OperationCanceledException or BlockDeviceException or IOException)
        {
            loggers.CreateLogger("Reloc.Node").LogWarning("warming the miss path did not finish ({Reason}): the first miss may be slower", ex.Message);
        }
    }

    /// <summary>One JSON line a second until the disk is complete (then a last line, at once) or we are stopped.</summary>
    private static async Task ReportProgressAsync(ActorSystem system, IActorRef disk, Task stopped)
    {
        var finished = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var watcher = system.ActorOf(Props.Create(() => new FinishWatcher(finished)));
        system.EventStream.Subscribe(watcher, typeof(VirtualDiskProtocol.RelocationFinished));
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        while (true)
        {
            VirtualDiskProtocol.Status status;
            try
            {
                status = await disk.Ask<VirtualDiskProtocol.Status>(new VirtualDiskProtocol.GetStatus(), TimeSpan.FromSeconds(10));
            }
            catch (AskTimeoutException)
            {
                // A slow journal start (recovery stashes the ask) is no reason to stop serving: ask again.
                Console.Error.WriteLine("reloc-node proxy: the disk did not report progress within 10 s; asking again");
                continue;
            }
            Console.Out.WriteLine(JsonSerializer.Serialize(new ProgressLine(status.Disk, status.State, status.LocalBytes, status.TotalBytes,
                status.FetchedBytes, status.SkippedBytes, status.WrittenBytes, status.OnDemandFetches, status.RateBps, status.PrefetchWindow), Json));
            Console.Out.Flush();
            if (status.State == "complete") return;
            var tick = timer.WaitForNextTickAsync().AsTask();
            if (await Task.WhenAny(tick, stopped, finished.Task) == stopped) return;
        }
    }

    private sealed class FinishWatcher : ReceiveActor
    {
        public FinishWatcher(TaskCompletionSource finished) =>
            Receive<VirtualDiskProtocol.RelocationFinished>(_ => finished.TrySetResult());
    }

    private sealed record ProgressLine(string Disk, string State, long LocalBytes, long TotalBytes, long FetchedBytes, long SkippedBytes,
        long WrittenBytes, long OnDemandFetches, long RateBps, int PrefetchWindow);
}

/// <summary>What a state directory was made for: resuming with another source size or block size would
/// misread every persisted bit, so that is refused.</summary>
internal sealed record RelocationManifest(string Disk, string Source, long Size, int BlockSize)
{
    public static RelocationManifest LoadOrCreate(string path, RelocationManifest wanted)
    {
        if (!File.Exists(path))
        {
            File.WriteAllText(path, JsonSerializer.Serialize(wanted));
            return wanted;
        }
        var existing = JsonSerializer.Deserialize<RelocationManifest>(File.ReadAllText(path))
            ?? throw new InvalidDataException($"{path} is empty");
        if (existing.Size != wanted.Size || existing.BlockSize != wanted.BlockSize || existing.Disk != wanted.Disk)
            throw new InvalidDataException($"{path} belongs to disk '{existing.Disk}' ({existing.Size} bytes, {existing.BlockSize}-byte blocks); " +
                                           $"this run asks for '{wanted.Disk}' ({wanted.Size} bytes, {wanted.BlockSize}-byte blocks)");
        return existing;
    }
}
