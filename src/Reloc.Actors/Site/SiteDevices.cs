using Akka.Actor;
using Reloc.Actors.Disk;
using Reloc.Actors.Site.Core;
using Reloc.Actors.Source;
using Reloc.Actors.Telemetry;
using Reloc.Nbd.Client;
using Reloc.Nbd.Server;
using Reloc.Storage;

namespace Reloc.Actors.Site;

/// <summary>
/// The I/O side of <see cref="SiteActor"/>: the images it serves, their NBD exports (the guests' and, by
/// <see cref="SiteCore.PeerExport"/>, other sites'), and the disk actors of arriving disks. It decides nothing.
/// </summary>
/// <param name="peers">Warm connections to the other sites (reloc.site.peer-connections); null: none.</param>
internal sealed class SiteDevices(SiteSettings settings, ExportCatalog exports, DiskSettings diskSettings, IActorContext context, Action<string> clientsChanged,
    RelocTelemetry? telemetry = null, PeerConnections? peers = null)
    : IDisposable
{
    /// <param name="Owned">The export's device: the relocating disk behind the owned-disk layer (tracking, fence),
    /// which takes over as the site's owned disk once the arrival completes.</param>
    private sealed record Arrival(IActorRef Disk, RawImage Image, DiskState State, OwnedDisk Owned);

    private readonly CancellationTokenSource _systemGone = WhenGone(context.System);

    /// <summary>Fires when the actor system terminates (a downed node): guest requests waiting on a disk actor fail then.</summary>
    private static CancellationTokenSource WhenGone(ActorSystem system)
    {
        var gone = new CancellationTokenSource();
        system.RegisterOnTermination(() => gone.Cancel());
        return gone;
    }

    /// <summary>The source connections' log (connected, lost, retrying), through the node's loggers when it has them.</summary>
    private readonly Microsoft.Extensions.Logging.ILogger? _sourceLog =
        context.System.Settings.Setup.Get<MelLoggerSetup>().Value?.Loggers.CreateLogger(typeof(NbdBlockSource).FullName!);

    private readonly Dictionary<string, OwnedDisk> _owned = new(StringComparer.Ordinal);
    private readonly ImageBin _bin = new(settings.DataDir);
    private readonly Dictionary<string, Arrival> _arrivals = new(StringComparer.Ordinal);

    /// <summary>Creates an image (replacing an orphan of a create that crashed before it was registered): sparse of
    /// <paramref name="size"/> bytes, or a sparse copy of <paramref name="fromFile"/>. Durable when it returns; its size.</summary>
    public static long CreateImage(string path, long size, string? fromFile)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        if (File.Exists(path)) File.Delete(path);
        using var image = fromFile is null ? RawImage.Create(path, size) : RawImage.ImportSparse(fromFile, path);
        return image.Size;
    }

    /// <summary>The size of the disk a foreign NBD server exports at <paramref name="uri"/>.</summary>
    public static async Task<long> ProbeAsync(string uri)
    {
        await using var client = await NbdClient.ConnectAsync(NbdClientOptions.FromUri(uri));
        return client.Size;
    }

    public OwnedDisk? OwnedOf(string disk) => _owned.GetValueOrDefault(disk);

    public IActorRef? ArrivalOf(string disk) => _arrivals.GetValueOrDefault(disk)?.Disk;

    public ArrivalFacts? FactsOf(string disk) =>
        _arrivals.TryGetValue(disk, out var a) ? new ArrivalFacts(a.State.Recovered, a.State.IsOwner, a.State.Map.LocalBytes) : null;

    public IReadOnlyList<(long First, long Count)> DrainDirty(string disk) => _owned.TryGetValue(disk, out var o) ? o.DrainDirty() : [];

    /// <summary>Guest connections to the disk's export (not the peer export).</summary>
    public int GuestClientsOf(string disk) => exports.All.FirstOrDefault(e => e.Name == disk)?.Clients.Count ?? 0;

    /// <returns>null, or why the disk cannot be served.</returns>
    public string? ServeOwned(SiteDisk disk, bool fenced)
    {
        try
        {
            var owned = new OwnedDisk(RawImage.Open(disk.ImagePath, readOnly: false, diskSettings.FaultFsyncDelay));
            if (fenced) _ = owned.FenceAsync(); // nothing in flight yet: completes at once
            _owned[disk.Name] = owned;
            Export(new NbdExport(disk.Name, owned.ForGuests, $"disk {disk.Name} on site {settings.Name}"), disk.Name);
            exports.Add(PeerExportOf(disk.Name, owned));
            return null;
        }
        catch (Exception ex) when (ex is IOException or ArgumentException or UnauthorizedAccessException)
        {
            return $"its image {disk.ImagePath} cannot be opened: {ex.Message}";
        }
    }

    /// <returns>null, or why the disk cannot be served.</returns>
    public string? ServeArrival(SiteDisk disk, string persistenceId, ArrivalOptions options)
    {
        RawImage image;
        try { image = RawImage.Open(disk.ImagePath, readOnly: false, diskSettings.FaultFsyncDelay); }
        catch (Exception ex) when (ex is IOException or ArgumentException or UnauthorizedAccessException)
        {
            return $"its image {disk.ImagePath} cannot be opened: {ex.Message}";
        }
        var arrivalSettings = diskSettings with { RateBytesPerSecond = options.Rate, Prefetch = options.Prefetch };
        bool import = disk.Peer.Length == 0; // from a foreign server: nobody else owns it
        var state = new DiskState(disk.Size, arrivalSettings.BlockSize, owner: import);
        // Another site's peer export is fetched over TLS with this site's certificate when the site has TLS; an
        // import takes the operator's URI as it is (nbds://...?tls-certificates=DIR for a TLS server).
        var sourceOptions = NbdClientOptions.FromUri(disk.SourceUri!);
        if (!import) sourceOptions = settings.Tls.ForPeer(sourceOptions);
        // From the source site's pool when it has one: its connections are parked in the option phase, so the source
        // connections (misses, copy) cost one round trip now instead of TCP, TLS and the options' (see PeerConnectionPool).
        var source = NbdBlockSource.Factory(sourceOptions, disk.Size, pool: import ? null : peers?.For(sourceOptions), logger: _sourceLog);
        var metrics = telemetry?.Relocation.ForArrival(disk.Name, import ? "external" : disk.Peer, settings.Name);
        var actor = context.ActorOf(VirtualDiskActor.Supervised(VirtualDiskActor.Props(new DiskId(disk.Name), state, image, arrivalSettings, source, persistenceId, metrics), diskSettings),
            "disk-" + disk.Name + "-" + (disk.Journal.Length > 0 ? disk.Journal : "e" + disk.Epoch));
        // Post-copy: no background copy before the handover (the source still changes); hybrid pre-copies.
        if (!options.Hybrid) actor.Tell(new VirtualDiskProtocol.PausePrefetch());
        var owned = new OwnedDisk(image, new RelocatingDisk(image, state, actor, arrivalSettings, metrics, _systemGone.Token));
        _arrivals[disk.Name] = new Arrival(actor, image, state, owned);
        Export(new NbdExport(disk.Name, owned.ForGuests,
            import ? $"disk {disk.Name} imported to site {settings.Name}" : $"disk {disk.Name} arriving at site {settings.Name}"), disk.Name);
        return null;
    }

    /// <summary>The arrived disk's device is the site's owned disk now; other sites may fetch it.</summary>
    public void ArrivalJoinsOwned(string disk)
    {
        if (!_arrivals.TryGetValue(disk, out var a)) return;
        _owned[disk] = a.Owned;
        exports.Add(PeerExportOf(disk, a.Owned));
    }

    public void StopServing(string disk, string imagePath, bool deleteJournal)
    {
        RemoveExports(disk);
        if (_owned.Remove(disk, out var owned)) owned.Image.Dispose();
        if (_arrivals.Remove(disk, out var arrival))
        {
            if (deleteJournal) arrival.Disk.Tell(new VirtualDiskProtocol.DeleteJournal(ThenStop: true));
            else context.Stop(arrival.Disk);
            arrival.Image.Dispose(); // a fetch still landing fails on the closed handle, nothing else
        }
        _bin.Discard(imagePath);
    }

    /// <summary>Removes images a crash left set aside (<see cref="ImageBin"/>).</summary>
    public void SweepDiscarded() => _bin.Sweep();

    private NbdExport PeerExportOf(string disk, OwnedDisk owned) =>
        new(SiteCore.PeerExport(disk), owned, $"disk {disk} on site {settings.Name}, for other sites");

    /// <summary>Guest connections come and go on the data path; the site hears of it through its mailbox.</summary>
    private void Export(NbdExport export, string disk)
    {
        export.Clients.Changed += _ => clientsChanged(disk);
        exports.Add(export);
    }

    private void RemoveExports(string disk)
    {
        exports.Remove(disk);
        exports.Remove(SiteCore.PeerExport(disk));
    }

    public void Dispose()
    {
        foreach (var (name, owned) in _owned)
        {
            RemoveExports(name);
            owned.Image.Dispose();
        }
        foreach (var (name, arrival) in _arrivals)
        {
            RemoveExports(name);
            arrival.Image.Dispose(); // the disk actor (a child) is stopped with the site
        }
        _bin.Dispose();
    }
}
