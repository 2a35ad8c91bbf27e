using System.Net;
using Akka.Actor;
using Reloc.Actors.Disk;
using Reloc.Actors.Source;
using Reloc.Actors.Telemetry;
using Reloc.Nbd.Client;
using Reloc.Nbd.Server;
using Reloc.Storage;
using Reloc.Testing;

namespace Reloc.Actors.Tests;

/// <summary>A real relocation in one process: a source NBD server over a random image, a destination
/// disk actor with its RelocatingDisk served by a second NBD server, and a guest NBD client on it.</summary>
public sealed class RelocationHarness : IAsyncDisposable
{
    private RelocationHarness(TestServer source, byte[] content, string dir)
    {
        Source = source;
        Content = content;
        Dir = dir;
    }

    public TestServer Source { get; private set; }
    public byte[] Content { get; }
    public string Dir { get; }
    public RawImage Image { get; private set; } = null!;
    public DiskState State { get; private set; } = null!;
    public IActorRef Disk { get; private set; } = ActorRefs.Nobody;
    public NbdServer Dest { get; private set; } = null!;
    public int DestPort { get; private set; }
    public string DestImagePath => Path.Combine(Dir, "dest.img");

    /// <summary>Source content: random, with a zero region at [size/2, size/2 + size/8) to be skipped.</summary>
    public static async Task<RelocationHarness> CreateAsync(int size, int seed = 1)
    {
        var content = Tool.RandomBytes(size, seed);
        Array.Clear(content, size / 2, size / 8);
        var source = await TestServer.StartAsync(size, content);
        return new RelocationHarness(source, content, Directory.CreateTempSubdirectory("reloc-reloc-test-").FullName);
    }

    public NbdClientOptions SourceOptions => NbdClientOptions.FromUri(Source.Uri());

    /// <summary>Starts (or resumes) the destination in <paramref name="system"/>.</summary>
    /// <param name="supervised">Under the backoff supervisor a site puts it under (<see cref="Disk"/> is the supervisor).</param>
    /// <param name="metrics">The arrival's instruments (as a site passes them), or none.</param>
    /// <param name="device">What the disk writes through instead of its image (a test double over it), or the image.</param>
    /// <param name="sources">A wrapper of the source connections the disk makes (a test double over them), or none.</param>
    public async Task StartDestinationAsync(ActorSystem system, DiskSettings settings, bool owner = true, NbdClientOptions? source = null, bool supervised = false,
        DiskMetrics? metrics = null, Func<RawImage, IBlockDevice>? device = null, Func<BlockSourceFactory, BlockSourceFactory>? sources = null)
    {
        Image = File.Exists(DestImagePath) ? RawImage.Open(DestImagePath, false) : RawImage.Create(DestImagePath, Content.Length);
        State = new DiskState(Content.Length, settings.BlockSize, owner);
        var dev = device?.Invoke(Image) ?? Image;
        var factory = NbdBlockSource.Factory(source ?? SourceOptions, Content.Length, new ReconnectOptions { InitialDelay = TimeSpan.FromMilliseconds(50), MaxDelay = TimeSpan.FromMilliseconds(500) });
        var props = VirtualDiskActor.Props(new DiskId("vm1"), State, dev, settings, sources?.Invoke(factory) ?? factory, metrics: metrics);
        Disk = system.ActorOf(supervised ? VirtualDiskActor.Supervised(props, settings) : props);
        Dest = new NbdServer(new ExportCatalog([new NbdExport("vm1", new RelocatingDisk(dev, State, Disk, settings, metrics))]));
        DestPort = ((IPEndPoint)Dest.ListenTcp(new IPEndPoint(IPAddress.Loopback, 0))).Port;
        await Task.CompletedTask;
    }

    public Task<NbdClient> ConnectGuestAsync() =>
        NbdClient.ConnectAsync(NbdClientOptions.FromUri($"nbd://127.0.0.1:{DestPort}/vm1"));

    public async Task<VirtualDiskProtocol.Status> StatusAsync() =>
        await Disk.Ask<VirtualDiskProtocol.Status>(new VirtualDiskProtocol.GetStatus(), TimeSpan.FromSeconds(10));

    public async Task StopDestinationAsync(ActorSystem system)
    {
        await Dest.DisposeAsync();
        await Disk.GracefulStop(TimeSpan.FromSeconds(10));
        Image.Dispose();
    }

    public async Task RestartSourceAsync()
    {
        Source = await TestServer.StartAsync(Content.Length, port: Source.Port, dir: Source.Dir);
    }

    public async ValueTask DisposeAsync()
    {
        await Dest.DisposeAsync();
        Image.Dispose();
        await Source.DisposeAsync();
        Directory.Delete(Dir, recursive: true);
    }
}
