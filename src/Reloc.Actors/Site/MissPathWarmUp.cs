using System.Net;
using Akka.Actor;
using Reloc.Actors.Disk;
using Reloc.Actors.Source;
using Reloc.Nbd.Client;
using Reloc.Nbd.Server;
using Reloc.Storage;

namespace Reloc.Actors.Site;

/// <summary>
/// Runs an arriving disk's guest-miss path once at a site's start, off every real disk: a throwaway disk actor (its
/// own journal, deleted at the end) over a temporary image fetches two 4 KiB misses through <see cref="RelocatingDisk"/>
/// from a private NBD server on loopback. The site's first relocation then meets compiled code (disk actor, block
/// fetcher, range-first landing, group commit) at its first guest miss, not the JIT: measured by
/// bench/first-contact-sites.sh. No real disk's statistics or journal see it.
/// </summary>
public static class MissPathWarmUp
{
    /// <returns>null, or why it did not finish (never throws; never runs past <paramref name="timeout"/>).</returns>
    public static async Task<string?> TryRunAsync(ActorSystem system, string directory, TimeSpan timeout)
    {
        var id = Guid.NewGuid().ToString("N");
        var sourcePath = Path.Combine(directory, $".reloc-warm-up-source-{id}.img");
        var targetPath = Path.Combine(directory, $".reloc-warm-up-target-{id}.img");
        using var bounded = new CancellationTokenSource(timeout);
        IActorRef? disk = null;
        try
        {
            var settings = RelocConfig.DiskSettings(system.Settings.Config) with { Prefetch = false, RateBytesPerSecond = 0 };
            long bytes = 4L * settings.BlockSize;
            using var source = RawImage.Create(sourcePath, bytes);
            using var target = RawImage.Create(targetPath, bytes);
            await using var server = new NbdServer(new ExportCatalog([new NbdExport("warm-up", source)]));
            var endPoint = (IPEndPoint)server.ListenTcp(new IPEndPoint(IPAddress.Loopback, 0));
            var options = new NbdClientOptions { Host = "127.0.0.1", Port = endPoint.Port, Export = "warm-up" };
            var state = new DiskState(bytes, settings.BlockSize);
            disk = system.ActorOf(VirtualDiskActor.Props(new DiskId("warm-up"), state, target, settings,
                NbdBlockSource.Factory(options.Validate(), bytes), "warm-up-" + id), "warm-up-disk-" + id);
            var device = new RelocatingDisk(target, state, disk, settings);
            var buffer = new byte[4096];
            await device.ReadAsync(0, buffer, bounded.Token);                       // a miss: its range first, then its block
            await device.ReadAsync(2L * settings.BlockSize + 4096, buffer, bounded.Token); // a second, in another block
            // Its journal goes with it, before the images do.
            await disk.GracefulStop(timeout, new VirtualDiskProtocol.DeleteJournal(ThenStop: true));
            disk = null;
            await server.StopAsync();
            return null;
        }
        catch (Exception ex)
        {
            return bounded.IsCancellationRequested ? $"timed out after {timeout}" : ex.Message;
        }
        finally
        {
            if (disk is not null) system.Stop(disk); // a failed run: its journal stays (an unused persistence id), only garbage
            File.Delete(sourcePath);
            File.Delete(targetPath);
        }
    }
}
