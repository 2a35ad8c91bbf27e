using System.Text.Json;
using Reloc.Testing;
using Xunit;

namespace Reloc.Node.Tests;

/// <summary>`reloc-node proxy` as a process: relocating from nbdkit, qemu-nbd and our own serve, with
/// real guests writing through it, a kill -9 in the middle, and a source that goes away.</summary>
public sealed class ProxyCommandTests : IDisposable
{
    private const int Size = 32 << 20;
    private readonly string _dir = Directory.CreateTempSubdirectory("reloc-proxy-test-").FullName;
    private readonly byte[] _content;

    public ProxyCommandTests()
    {
        _content = Tool.RandomBytes(Size, 42);
        Array.Clear(_content, 16 << 20, 4 << 20); // a zero run the copy should skip
        File.WriteAllBytes(SourceImage, _content);
    }

    private string SourceImage => Path.Combine(_dir, "source.img");
    private string DestImage => Path.Combine(_dir, "dest.img");
    private string StateDir => Path.Combine(_dir, "state");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static int FreePort()
    {
        var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        l.Start();
        int port = ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    private NodeProcess StartProxy(string source, int port, params string[] extra) =>
        NodeProcess.Start(["proxy", "--listen", $"127.0.0.1:{port}", "--export", $"vm1={DestImage}", "--source", source,
            "--state-dir", StateDir, .. extra]);

    private static JsonElement Parse(string line) => JsonDocument.Parse(line).RootElement;
    private static bool IsComplete(string line) => line.Contains("\"state\":\"complete\"");

    [Fact]
    public async Task Relocates_from_nbdkit_while_a_guest_writes_and_ends_with_the_expected_bytes()
    {
        await using var source = await ExternalServer.StartNbdkitAsync("file", $"file={SourceImage}");
        int port = FreePort();
        await using var proxy = StartProxy(source.Uri(), port, "--rate", "8MB/s");
        var first = Parse(await proxy.WaitForLineAsync(_ => true, TimeSpan.FromSeconds(30)));
        foreach (var field in new[] { "disk", "state", "local_bytes", "total_bytes", "fetched_bytes", "skipped_bytes", "on_demand_fetches", "rate_bps" })
            Assert.True(first.TryGetProperty(field, out _), $"progress line lacks {field}");
        Assert.Equal(Size, first.GetProperty("total_bytes").GetInt64());

        var uri = $"nbd://127.0.0.1:{port}/vm1";
        await Tool.CheckAsync("qemu-io", "-f", "raw", uri,
            "-c", "write -P 0x5a 1M 64k",      // whole blocks: no fetch needed
            "-c", "write -P 0x6b 5000 100",     // part of a block: read-modify-write
            "-c", "write -P 0x7c 30M 4k",
            "-c", "flush",
            "-c", "read -P 0x5a 1M 64k", "-c", "read -P 0x6b 5000 100");
        var last = Parse(await proxy.WaitForLineAsync(IsComplete, TimeSpan.FromSeconds(60)));
        Assert.Equal(Size, last.GetProperty("local_bytes").GetInt64());
        Assert.True(last.GetProperty("skipped_bytes").GetInt64() >= 3 << 20, "the zero run was not skipped");
        Assert.True(last.GetProperty("on_demand_fetches").GetInt64() >= 1);

        // Still serving after completion, same connection semantics.
        await Tool.CheckAsync("qemu-io", "-f", "raw", uri, "-c", "read -P 0x7c 30M 4k");
        await proxy.SignalAsync("TERM");
        Assert.Equal(0, await proxy.WaitForExitAsync(TimeSpan.FromSeconds(30)));

        var expected = (byte[])_content.Clone();
        Array.Fill(expected, (byte)0x5a, 1 << 20, 65536);
        Array.Fill(expected, (byte)0x6b, 5000, 100);
        Array.Fill(expected, (byte)0x7c, 30 << 20, 4096);
        Assert.Equal(Tool.Sha256Of(expected), Tool.Sha256(DestImage));
    }

    [Fact]
    public async Task Relocates_from_qemu_nbd_under_a_fio_verify_workload()
    {
        await using var source = await ExternalServer.StartQemuNbdAsync(SourceImage, "disk");
        int port = FreePort();
        await using var proxy = StartProxy(source.Uri("disk"), port, "--rate", "16MB/s", "--block-size", "4KiB");
        await proxy.WaitForLineAsync(_ => true, TimeSpan.FromSeconds(30));
        var fio = await Tool.RunAsync("fio", "--name=guest", "--ioengine=nbd", $"--uri=nbd://127.0.0.1:{port}/vm1",
            "--rw=randwrite", "--bs=4k", "--iodepth=8", "--size=4m", "--offset=8m", "--verify=crc32c", "--verify_fatal=1", "--do_verify=1");
        Assert.True(fio.ExitCode == 0, fio.ToString());
        await proxy.WaitForLineAsync(IsComplete, TimeSpan.FromSeconds(60));
        await proxy.SignalAsync("TERM");
        Assert.Equal(0, await proxy.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        var dest = File.ReadAllBytes(DestImage);
        // Outside fio's region the disk is the source's; inside it, fio verified its own data.
        Assert.Equal(_content.AsSpan(0, 8 << 20).ToArray(), dest.AsSpan(0, 8 << 20).ToArray());
        Assert.Equal(_content.AsSpan(12 << 20).ToArray(), dest.AsSpan(12 << 20).ToArray());
    }

    [Fact]
    public async Task Kill_9_mid_way_then_resume_finishes_without_refetching_what_was_persisted()
    {
        int sourcePort = FreePort(), port = FreePort();
        await using var source = NodeProcess.Start("serve", "--listen", $"127.0.0.1:{sourcePort}", "--export", $"disk={SourceImage}:ro");
        await source.WaitForLineAsync(l => l.Contains("listening"), TimeSpan.FromSeconds(30));
        var sourceUri = $"nbd://127.0.0.1:{sourcePort}/disk";

        var proxy = StartProxy(sourceUri, port, "--rate", "6MB/s");
        await proxy.WaitForLineAsync(_ => true, TimeSpan.FromSeconds(30));
        await Tool.CheckAsync("qemu-io", "-f", "raw", $"nbd://127.0.0.1:{port}/vm1", "-c", "write -P 0x11 2M 100k", "-c", "flush");
        var beforeKill = Parse(await proxy.WaitForLineAsync(l => Parse(l).GetProperty("local_bytes").GetInt64() > Size / 2, TimeSpan.FromSeconds(60)));
        await proxy.SignalAsync("KILL");
        await proxy.WaitForExitAsync(TimeSpan.FromSeconds(30));
        await proxy.DisposeAsync();

        await using var resumed = StartProxy(sourceUri, port);
        var firstAfter = Parse(await resumed.WaitForLineAsync(_ => true, TimeSpan.FromSeconds(30)));
        // Bits are persisted at least every second: at most about a second of copying (6 MB/s) is lost.
        long lostAtMost = (6 << 20) + (2 << 20);
        Assert.True(firstAfter.GetProperty("local_bytes").GetInt64() >= beforeKill.GetProperty("local_bytes").GetInt64() - lostAtMost,
            $"resumed at {firstAfter.GetProperty("local_bytes")} after {beforeKill.GetProperty("local_bytes")} before the kill");
        var done = Parse(await resumed.WaitForLineAsync(IsComplete, TimeSpan.FromSeconds(60)));
        long landed = done.GetProperty("fetched_bytes").GetInt64() + done.GetProperty("skipped_bytes").GetInt64() + done.GetProperty("written_bytes").GetInt64();
        // Only what landed in the last second before the kill (not yet persisted) may land twice.
        Assert.InRange(landed, Size, Size + lostAtMost);
        await resumed.SignalAsync("TERM");
        Assert.Equal(0, await resumed.WaitForExitAsync(TimeSpan.FromSeconds(30)));

        var expected = (byte[])_content.Clone();
        Array.Fill(expected, (byte)0x11, 2 << 20, 100 * 1024);
        Assert.Equal(Tool.Sha256Of(expected), Tool.Sha256(DestImage));
    }

    [Fact]
    public async Task Source_loss_keeps_local_reads_working_fails_misses_cleanly_and_recovers()
    {
        int port = FreePort();
        var source = await ExternalServer.StartQemuNbdAsync(SourceImage, "disk");
        await using var _ = source;
        await using var proxy = StartProxy(source.Uri("disk"), port, "--prefetch", "off", "--miss-timeout", "2s");
        await proxy.WaitForLineAsync(_ => true, TimeSpan.FromSeconds(30));
        var uri = $"nbd://127.0.0.1:{port}/vm1";
        var firstMeg = Path.Combine(_dir, "first.bin");
        await Tool.CheckAsync("qemu-img", "dd", "-f", "raw", "-O", "raw", $"if={uri}", $"of={firstMeg}", "bs=1M", "count=1");

        await source.KillAsync();
        await Tool.CheckAsync("qemu-io", "-f", "raw", uri, "-c", "read 0 1M");            // local: still served
        var miss = await Tool.RunAsync("qemu-io", "-f", "raw", uri, "-c", "read 20M 64k"); // missing: EIO after the timeout
        Assert.Contains("Input/output error", miss.StdOut + miss.StdErr);

        await source.RestartAsync();
        var all = Path.Combine(_dir, "all.img");
        await Tool.CheckAsync("nbdcopy", uri, all);                                         // the fetcher reconnected
        Assert.Equal(Tool.Sha256(SourceImage), Tool.Sha256(all));
        Assert.Equal(_content.AsSpan(0, 1 << 20).ToArray(), File.ReadAllBytes(firstMeg));
    }

    [Fact]
    public async Task Bad_arguments_and_unreachable_sources_fail_with_a_clear_message()
    {
        await using var bad = NodeProcess.Start("proxy", "--export", $"vm1={DestImage}", "--source", "http://nope", "--state-dir", StateDir);
        Assert.Equal(2, await bad.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("reloc-node proxy:", await bad.StdErr);
        await using var down = NodeProcess.Start("proxy", "--export", $"vm1={DestImage}", "--source", $"nbd://127.0.0.1:{FreePort()}/x", "--state-dir", StateDir);
        Assert.Equal(2, await down.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("reloc-node proxy:", await down.StdErr);
    }
}
