using System.Net;
using Reloc.Actors.Site;
using Reloc.Nbd.Server;
using Reloc.Storage;
using Reloc.Testing;
using Xunit;

namespace Reloc.Actors.Tests;

/// <summary>The source side of a handover: write tracking and the fence, through real NBD clients.</summary>
public sealed class OwnedDiskTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("reloc-owned-test-").FullName;
    private OwnedDisk _disk = null!;
    private NbdServer _server = null!;
    private string _uri = "";

    public Task InitializeAsync()
    {
        _disk = new OwnedDisk(RawImage.Create(Path.Combine(_dir, "vm1.img"), 4 << 20));
        _server = new NbdServer(new ExportCatalog([new NbdExport("vm1", _disk), new NbdExport("guest", _disk.ForGuests)]));
        _uri = $"nbd://127.0.0.1:{((IPEndPoint)_server.ListenTcp(new IPEndPoint(IPAddress.Loopback, 0))).Port}/vm1";
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _disk.Image.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Tracks_written_blocks_as_runs_between_drains()
    {
        _disk.StartTracking(65536);
        await Tool.CheckAsync("qemu-io", "-f", "raw", _uri, "-c", "write -P 1 0 100k", "-c", "write -z 1M 64k", "-c", "discard 2M 4k");
        Assert.Equal([(0L, 2L), (16L, 1L), (32L, 1L)], _disk.DrainDirty());
        Assert.Empty(_disk.DrainDirty());
        await Tool.CheckAsync("qemu-io", "-f", "raw", _uri, "-c", "write -P 2 3M 1");
        Assert.Equal([(48L, 1L)], _disk.DrainDirty());
    }

    [Fact]
    public async Task Fenced_disk_refuses_writes_with_eperm_but_serves_reads_and_flush()
    {
        await Tool.CheckAsync("qemu-io", "-f", "raw", _uri, "-c", "write -P 7 0 64k");
        await _disk.FenceAsync();
        var write = await Tool.RunAsync("qemu-io", "-f", "raw", _uri, "-c", "write -P 8 0 64k");
        Assert.Contains("Operation not permitted", write.StdOut + write.StdErr);
        await Tool.CheckAsync("qemu-io", "-f", "raw", _uri, "-c", "read -P 7 0 64k", "-c", "flush");
        _disk.Unfence();
        await Tool.CheckAsync("qemu-io", "-f", "raw", _uri, "-c", "write -P 9 0 64k", "-c", "read -P 9 0 64k");
    }

    /// <summary>F15: once fenced, another site owns the disk and may have acknowledged writes this copy never sees:
    /// a guest (a QEMU migrating to this site) must not read it. Other sites' fetchers (the export above) still do.</summary>
    [Fact]
    public async Task Fenced_disk_refuses_its_guests_reads_but_keeps_their_flush()
    {
        var guest = _uri.Replace("/vm1", "/guest");
        await Tool.CheckAsync("qemu-io", "-f", "raw", guest, "-c", "write -P 7 0 64k", "-c", "read -P 7 0 64k");
        await _disk.FenceAsync();
        var read = await Tool.RunAsync("qemu-io", "-f", "raw", guest, "-c", "read -P 7 0 64k");
        Assert.Contains("Operation not permitted", read.StdOut + read.StdErr);
        await Tool.CheckAsync("qemu-io", "-f", "raw", guest, "-c", "flush");
        await Tool.CheckAsync("qemu-io", "-f", "raw", _uri, "-c", "read -P 7 0 64k");
        _disk.Unfence();
        await Tool.CheckAsync("qemu-io", "-f", "raw", guest, "-c", "read -P 7 0 64k");
    }

    [Fact]
    public async Task Fence_completes_only_after_writes_admitted_before_it()
    {
        _disk.StartTracking(65536);
        // A FUA write is in flight (its fdatasync runs on the pool) when the fence goes up.
        await using var client = await Reloc.Nbd.Client.NbdClient.ConnectAsync(Reloc.Nbd.Client.NbdClientOptions.FromUri(_uri));
        var writes = Enumerable.Range(0, 32).Select(i => client.WriteAsync(i * 65536L, new byte[65536], fua: true)).ToList();
        await Task.WhenAny(writes);
        await _disk.FenceAsync();
        var outcomes = await Task.WhenAll(writes.Select(async w => { try { await w; return true; } catch (Reloc.Nbd.Client.NbdClientException) { return false; } }));
        // Every write that succeeded is in the final dirty set drained after the fence.
        var dirty = _disk.DrainDirty().SelectMany(r => Enumerable.Range((int)r.First, (int)r.Count)).ToHashSet();
        for (int i = 0; i < outcomes.Length; i++)
            if (outcomes[i]) Assert.Contains(i, dirty);
    }
}
