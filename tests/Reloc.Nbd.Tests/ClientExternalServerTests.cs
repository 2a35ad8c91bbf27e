using Reloc.Testing;
using System.Globalization;
using Reloc.Nbd.Client;
using Reloc.Nbd.Protocol;
using Reloc.Nbd.Tests.Support;
using Reloc.Storage;
using Xunit;

namespace Reloc.Nbd.Tests;

/// <summary>NbdClient against the servers it will meet outside this repository: qemu-nbd and nbdkit
/// (started on free ports, killed at the end).</summary>
public sealed class ClientExternalServerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("reloc-client-test-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A sparse raw image with random data at [1 MiB, 2 MiB) and [5 MiB, 5 MiB + 64 KiB).</summary>
    private string SparseImage(string name, long size)
    {
        var path = Path.Combine(_dir, name);
        using var f = new FileStream(path, FileMode.CreateNew);
        f.SetLength(size);
        f.Position = 1 << 20;
        f.Write(Tool.RandomBytes(1 << 20, 31));
        f.Position = 5 << 20;
        f.Write(Tool.RandomBytes(64 << 10, 32));
        return path;
    }

    private static byte[] FileBytes(string path, long offset, int count)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var b = new byte[count];
        f.Position = offset;
        f.ReadExactly(b);
        return b;
    }

    /// <summary>Reads, block status, writes, trim and zeroes, each compared with the image file.</summary>
    private static async Task RoundTripAsync(NbdClient c, string image)
    {
        // One read across hole, data, hole: a server may answer it in several chunks.
        var back = new byte[8 << 20];
        Array.Fill(back, (byte)0xee);
        await c.ReadAsync(0, back);
        Assert.True(FileBytes(image, 0, back.Length).AsSpan().SequenceEqual(back));

        var map = await c.BlockStatusAsync(0, 8 << 20);
        Assert.Equal(0, map[0].Offset);
        Assert.True(map[0].Extent.Flags.HasFlag(ExtentFlags.Hole | ExtentFlags.Zero), $"{map[0]}");
        Assert.Contains(map, e => e.Offset <= 1 << 20 && e.Offset + e.Extent.Length >= 2 << 20 && e.Extent.Flags == ExtentFlags.Data);
        Assert.Contains(map, e => e.Offset >= 2 << 20 && e.Offset < 5 << 20 && e.Extent.Flags.HasFlag(ExtentFlags.Hole));

        var data = Tool.RandomBytes(256 << 10, 33);
        await c.WriteAsync(3 << 20, data, fua: true);
        await c.FlushAsync();
        Assert.Equal(data, FileBytes(image, 3 << 20, data.Length));

        await c.TrimAsync(1 << 20, 64 << 10);
        await c.WriteZeroesAsync((1 << 20) + (128 << 10), 64 << 10, noHole: true);
        await c.FlushAsync();
        var range = new byte[256 << 10];
        await c.ReadAsync(1 << 20, range);
        Assert.True(range.AsSpan(0, 64 << 10).IndexOfAnyExcept((byte)0) < 0, "trimmed range reads as zeros");
        Assert.True(range.AsSpan(128 << 10, 64 << 10).IndexOfAnyExcept((byte)0) < 0, "zeroed range reads as zeros");
        Assert.Equal(range, FileBytes(image, 1 << 20, range.Length));
    }

    [Fact]
    public async Task Qemu_nbd_round_trips_maps_holes_and_reports_errors()
    {
        var image = SparseImage("q.img", 16 << 20);
        await using var server = await ExternalServer.StartQemuNbdAsync(image, "vm1", "--discard=unmap");
        await using var c = await NbdClient.ConnectAsync(server.Options("vm1"));
        Assert.True(c.StructuredReplies);
        Assert.True(c.CanBlockStatus);
        Assert.Equal(16 << 20, c.Size);
        await RoundTripAsync(c, image);

        var ex = await Assert.ThrowsAsync<NbdClientException>(() => c.ReadAsync(c.Size - 512, new byte[4096]));
        Assert.Equal(NbdError.Inval, ex.Error);
        await c.ReadAsync(0, new byte[512]); // still usable

        var refused = await Assert.ThrowsAsync<NbdHandshakeException>(() => NbdClient.ConnectAsync(server.Options("vm2")));
        Assert.Contains("'vm2'", refused.Message);
        Assert.Equal(OptionReplyType.ErrUnknown, refused.Reply);
    }

    [Fact]
    public async Task Qemu_nbd_answers_hundreds_of_concurrent_reads_each_with_its_own_data()
    {
        var data = Tool.RandomBytes(16 << 20, 34);
        var image = Path.Combine(_dir, "c.img");
        await File.WriteAllBytesAsync(image, data);
        await using var server = await ExternalServer.StartQemuNbdAsync(image, "c");
        await using var c = await NbdClient.ConnectAsync(server.Options("c") with { MaxInFlight = 64 });
        const int count = 256;
        var rng = new Random(35);
        var requests = Enumerable.Range(0, count).Select(_ => (Offset: (long)rng.Next(0, (16 << 20) - 65536), Buffer: new byte[rng.Next(1, 65536)])).ToArray();
        await Task.WhenAll(requests.Select(r => c.ReadAsync(r.Offset, r.Buffer)));
        foreach (var (offset, buffer) in requests)
            Assert.True(data.AsSpan((int)offset, buffer.Length).SequenceEqual(buffer), $"read at {offset}+{buffer.Length}");
    }

    [Fact]
    public async Task Nbdkit_file_plugin_round_trips_and_maps_holes()
    {
        var image = SparseImage("k.img", 16 << 20);
        await using var server = await ExternalServer.StartNbdkitAsync("file", $"file={image}");
        await using var c = await NbdClient.ConnectAsync(server.Options());
        Assert.True(c.CanBlockStatus);
        await RoundTripAsync(c, image);
    }

    [Fact]
    public async Task Nbdkit_sparse_random_reads_and_extents_agree_with_nbdcopy_and_nbdinfo()
    {
        const int size = 32 << 20;
        await using var server = await ExternalServer.StartNbdkitAsync("sparse-random", size.ToString(CultureInfo.InvariantCulture), "seed=36");
        var copy = Path.Combine(_dir, "copy.img");
        await Tool.CheckAsync("nbdcopy", server.Uri(), copy);
        var mapText = await Tool.CheckAsync("nbdinfo", "--map", server.Uri());

        await using var c = await NbdClient.ConnectAsync(server.Options());
        var back = new byte[size];
        await c.ReadAsync(0, back);
        Assert.True(File.ReadAllBytes(copy).AsSpan().SequenceEqual(back));

        // Walk the whole disk as a caller would: block status may cover less than asked.
        var ours = new List<(long Offset, Extent Extent)>();
        for (long at = 0; at < size;)
        {
            var part = await c.BlockStatusAsync(at, (uint)Math.Min(size - at, 16 << 20));
            ours.AddRange(part);
            at = part[^1].Offset + part[^1].Extent.Length;
        }
        var theirs = mapText.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Select(f => (long.Parse(f[0], CultureInfo.InvariantCulture), new Extent(long.Parse(f[1], CultureInfo.InvariantCulture), (ExtentFlags)uint.Parse(f[2], CultureInfo.InvariantCulture))));
        Assert.Equal(Merge(theirs), Merge(ours));
        Assert.Contains(ours, e => e.Extent.Flags.HasFlag(ExtentFlags.Hole));
        foreach (var (offset, extent) in ours.Where(e => e.Extent.Flags.HasFlag(ExtentFlags.Zero)))
            Assert.True(back.AsSpan((int)offset, (int)extent.Length).IndexOfAnyExcept((byte)0) < 0, $"zero extent at {offset}");
    }

    /// <summary>Adjacent extents of one kind joined: servers may cut the same map at different places.</summary>
    private static List<(long, Extent)> Merge(IEnumerable<(long Offset, Extent Extent)> extents)
    {
        var merged = new List<(long Offset, Extent Extent)>();
        foreach (var e in extents)
        {
            if (merged.Count > 0 && merged[^1].Extent.Flags == e.Extent.Flags && merged[^1].Offset + merged[^1].Extent.Length == e.Offset)
                merged[^1] = (merged[^1].Offset, merged[^1].Extent with { Length = merged[^1].Extent.Length + e.Extent.Length });
            else merged.Add(e);
        }
        return merged.Select(e => (e.Offset, e.Extent)).ToList();
    }

    [Fact]
    public async Task Nbdkit_without_structured_replies_gets_simple_replies_and_no_block_status()
    {
        await using var server = await ExternalServer.StartNbdkitAsync("--no-sr", "memory", "8M");
        await using var c = await NbdClient.ConnectAsync(server.Options());
        Assert.False(c.StructuredReplies);
        Assert.False(c.CanBlockStatus);
        var data = Tool.RandomBytes(100_000, 37);
        await c.WriteAsync(12345, data);
        var back = new byte[data.Length];
        await c.ReadAsync(12345, back);
        Assert.Equal(data, back);
        await Assert.ThrowsAsync<NotSupportedException>(() => c.BlockStatusAsync(0, 4096));
        var ex = await Assert.ThrowsAsync<NbdClientException>(() => c.ReadAsync(c.Size - 1, new byte[2]));
        Assert.Equal(NbdError.Inval, ex.Error);
    }

    [Fact]
    public async Task Killing_the_server_fails_pending_and_later_requests()
    {
        var control = Path.Combine(_dir, "pause.sock");
        await using var server = await ExternalServer.StartNbdkitAsync("--filter=pause", "memory", "8M", $"pause-control={control}");
        var c = await NbdClient.ConnectAsync(server.Options());
        await c.ReadAsync(0, new byte[4096]);
        await PauseControl.PauseAsync(control);
        var reads = Enumerable.Range(0, 16).Select(i => c.ReadAsync(i * 65536L, new byte[65536])).ToArray();
        Assert.All(reads, r => Assert.False(r.IsCompleted)); // held by the paused server

        await server.KillAsync();
        foreach (var r in reads)
        {
            var ex = await Assert.ThrowsAsync<NbdConnectionLostException>(() => r.WaitAsync(TimeSpan.FromSeconds(10)));
            Assert.IsAssignableFrom<IOException>(ex);
        }
        await c.Closed.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(c.IsConnected);
        Assert.Equal(0, c.InFlight);
        var later = c.ReadAsync(0, new byte[4096]);
        Assert.True(later.IsFaulted); // fails fast, without touching the network
        await Assert.ThrowsAsync<NbdConnectionLostException>(() => later);
        await c.DisposeAsync();
    }

    [Fact]
    public async Task A_cancelled_read_stops_waiting_and_its_buffer_is_never_written()
    {
        var control = Path.Combine(_dir, "pause.sock");
        // One server thread: requests are answered in the order they were sent.
        await using var server = await ExternalServer.StartNbdkitAsync("-t", "1", "--filter=pause", "memory", "8M", $"pause-control={control}");
        await using var c = await NbdClient.ConnectAsync(server.Options());
        var data = Tool.RandomBytes(65536, 38);
        await c.WriteAsync(0, data);

        await PauseControl.PauseAsync(control);
        var abandoned = new byte[65536];
        Array.Fill(abandoned, (byte)0xee);
        using var cts = new CancellationTokenSource();
        var cancelled = c.ReadAsync(0, abandoned, cts.Token);
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        Assert.Equal(1, c.InFlight); // still owed a reply by the server

        var back = new byte[65536];
        var next = c.ReadAsync(0, back);
        await PauseControl.ResumeAsync(control);
        await next;
        Assert.Equal(data, back);
        Assert.Equal(0, c.InFlight);
        Assert.All(abandoned, b => Assert.Equal(0xee, b));
    }

    [Fact]
    public async Task Reconnecting_client_reconnects_after_qemu_nbd_is_restarted_on_the_same_port()
    {
        var data = Tool.RandomBytes(1 << 20, 39);
        var image = Path.Combine(_dir, "r.img");
        await File.WriteAllBytesAsync(image, data);
        await using var server = await ExternalServer.StartQemuNbdAsync(image, "r");
        await using var rc = await ReconnectingNbdClient.ConnectAsync(server.Options("r"),
            new ReconnectOptions { InitialDelay = TimeSpan.FromMilliseconds(20), MaxDelay = TimeSpan.FromMilliseconds(200) });
        var back = new byte[4096];
        await rc.ReadAsync(4096, back);
        Assert.Equal(data.AsSpan(4096, 4096).ToArray(), back);

        await server.KillAsync();
        var big = new byte[512 << 10];
        var read = rc.ReadAsync(256 << 10, big); // lost or waiting: either way retried on the next connection
        await server.RestartAsync();
        await read.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.True(data.AsSpan(256 << 10, big.Length).SequenceEqual(big));
        Assert.Equal(2, rc.Connections);
    }
}
