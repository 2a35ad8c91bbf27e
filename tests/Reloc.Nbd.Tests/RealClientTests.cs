using Reloc.Nbd.Tests.Support;
using Reloc.Testing;
using Xunit;

namespace Reloc.Nbd.Tests;

/// <summary>The server driven by the clients hypervisors and tools really use.</summary>
public sealed class RealClientTests : IAsyncLifetime
{
    private const int Size = 32 << 20;
    private TestServer _server = null!;

    public async Task InitializeAsync() => _server = await TestServer.StartAsync(Size, roContent: Tool.RandomBytes(1 << 20, 7));
    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task Qemu_io_writes_patterns_zeroes_and_discards_and_reads_them_back()
    {
        var output = await Tool.CheckAsync("qemu-io", "-f", "raw", _server.Uri(),
            "-c", "write -P 0xab 1M 1M", "-c", "flush", "-c", "read -P 0xab 1M 1M",
            "-c", "write -P 0xcd -f 3M 64k", "-c", "read -P 0xcd 3M 64k",          // FUA write
            "-c", "write -z 4M 64k", "-c", "read -P 0 4M 64k",                      // WRITE_ZEROES, NO_HOLE
            "-c", "write -z -u 5M 1M", "-c", "read -P 0 5M 1M",                     // WRITE_ZEROES, may punch
            "-c", "discard 8M 1M", "-c", "read -P 0 8M 1M",
            "-c", "write -P 0x11 4095 3", "-c", "read -P 0x11 4095 3");              // unaligned
        Assert.DoesNotContain("Pattern verification failed", output);
        var image = File.ReadAllBytes(_server.ImagePath());
        Assert.All(image.AsSpan(1 << 20, 1 << 20).ToArray(), b => Assert.Equal(0xab, b));
        Assert.Equal(new byte[] { 0x11, 0x11, 0x11 }, image[4095..4098]);
    }

    [Fact]
    public async Task Nbdinfo_lists_exports_and_maps_allocation()
    {
        var list = await Tool.CheckAsync("nbdinfo", "--list", $"nbd://127.0.0.1:{_server.Port}");
        Assert.Contains("export=\"disk\"", list);
        Assert.Contains("export=\"ro\"", list);
        Assert.Contains("is_read_only: true", list);
        await Tool.CheckAsync("qemu-io", "-f", "raw", _server.Uri(), "-c", "write -P 1 2M 1M");
        var map = await Tool.CheckAsync("nbdinfo", "--map", _server.Uri());
        var lines = map.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToList();
        Assert.Contains(lines, l => l[0] == "2097152" && l[1] == "1048576" && l[2] == "0");
        Assert.Contains(lines, l => l[0] == "0" && l[3].StartsWith("hole"));
    }

    [Fact]
    public async Task Nbdcopy_round_trips_an_image_over_multiple_connections()
    {
        var src = Path.Combine(_server.Dir, "src.img");
        var data = Tool.RandomBytes(Size, 11);
        Array.Clear(data, 4 << 20, 4 << 20); // a zero run: exercises hole chunks and block status
        File.WriteAllBytes(src, data);
        await Tool.CheckAsync("nbdcopy", "--connections=4", src, _server.Uri());
        var back = Path.Combine(_server.Dir, "back.img");
        await Tool.CheckAsync("nbdcopy", "--connections=4", _server.Uri(), back);
        Assert.Equal(Tool.Sha256(src), Tool.Sha256(back));
        Assert.Equal(Tool.Sha256(src), Tool.Sha256(_server.ImagePath()));
    }

    [Fact]
    public async Task Qemu_img_convert_and_compare()
    {
        var src = Path.Combine(_server.Dir, "src.img");
        File.WriteAllBytes(src, Tool.RandomBytes(Size, 12));
        await Tool.CheckAsync("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", src, _server.Uri());
        var cmp = await Tool.CheckAsync("qemu-img", "compare", "-f", "raw", "-F", "raw", _server.Uri(), src);
        Assert.Contains("Images are identical", cmp);
        var info = await Tool.CheckAsync("qemu-img", "info", "--output=json", _server.Uri("ro"));
        Assert.Contains("\"virtual-size\": 1048576", info);
    }

    [Fact]
    public async Task Nbdsh_uses_structured_replies_block_status_fast_zero_cache_and_fua()
    {
        var script = string.Join('\n',
            "import nbd",
            "assert h.can_df() and h.can_fast_zero() and h.can_cache() and h.can_multi_conn()",
            "assert h.get_structured_replies_negotiated()",
            "h.pwrite(b'\\x42' * 65536, 0, nbd.CMD_FLAG_FUA)",
            "assert h.pread(65536, 0) == b'\\x42' * 65536",
            "h.zero(65536, 65536, nbd.CMD_FLAG_FAST_ZERO)",
            "assert h.pread(65536, 65536) == bytes(65536)",
            "h.cache(1 << 20, 0)",
            "h.trim(1 << 20, 1 << 20)",
            "ext = []",
            "h.block_status(4 << 20, 0, lambda ctx, off, e, err: ext.extend(e) or 0)",
            "assert ext[0] == 65536 and ext[1] == 0, ext",
            "chunks = []",
            "h.pread_structured(8192, 0, lambda buf, off, st, err: chunks.append(st) or 0)",
            "assert chunks == [nbd.READ_DATA], chunks",
            "h.set_strict_mode(0)  # let the server, not libnbd, judge the out-of-range read",
            "try:",
            "    h.pread(10, h.get_size() - 5)",
            "    raise SystemExit('read past the end succeeded')",
            "except nbd.Error as e:",
            "    assert e.errnum == 22 and 'command failed' in str(e), e",
            "h.flush()",
            "print('ok')");
        var r = await Tool.RunAsync("nbdsh", ["--base-allocation", "-u", _server.Uri(), "-c", script]);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("ok", r.StdOut);
    }

    [Fact]
    public async Task Fio_random_writes_verify_with_crc32c()
    {
        var r = await Tool.RunAsync("fio", "--name=verify", "--ioengine=nbd", $"--uri={_server.Uri()}",
            "--rw=randwrite", "--bs=4k", "--iodepth=16", "--size=16m", "--verify=crc32c", "--do_verify=1",
            "--verify_fatal=1", "--output-format=json");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("\"error\" : 0", r.StdOut);
    }

    [Fact]
    public async Task Unix_socket_serves_the_same_exports()
    {
        await Tool.CheckAsync("qemu-io", "-f", "raw", _server.UnixUri(), "-c", "write -P 0x77 0 64k");
        var info = await Tool.CheckAsync("nbdinfo", "--size", _server.UnixUri());
        Assert.Equal(Size.ToString(), info.Trim());
        await Tool.CheckAsync("qemu-io", "-f", "raw", _server.Uri(), "-c", "read -P 0x77 0 64k");
    }

    [Fact]
    public async Task Read_only_export_refuses_writes_to_real_clients()
    {
        var r = await Tool.RunAsync("qemu-io", "-f", "raw", _server.Uri("ro"), "-c", "write -P 1 0 4k");
        Assert.True(r.ExitCode != 0 || (r.StdOut + r.StdErr).Contains("ermission") || (r.StdOut + r.StdErr).Contains("read-only"), r.ToString());
        var before = Tool.Sha256(_server.ImagePath("ro"));
        await Tool.CheckAsync("nbdcopy", _server.Uri("ro"), Path.Combine(_server.Dir, "ro-copy.img"));
        Assert.Equal(before, Tool.Sha256(Path.Combine(_server.Dir, "ro-copy.img")));
    }
}
