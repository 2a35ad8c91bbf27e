using System.Buffers;
using Akka.Actor;
using Reloc.Actors.Disk;
using Reloc.Nbd.Client;
using Reloc.Nbd.Protocol;
using Reloc.Storage;
using Reloc.Testing;
using Xunit;

namespace Reloc.Actors.Tests;

/// <summary>
/// A destination that runs out of space after the handover (this site owns the disk, post-copy): the background copy
/// stalls without counting as here any block that did not land, the guest's writes that do not fit get NBD_ENOSPC
/// (never an acknowledgement), the disk never says it no longer needs its source, and once room frees the copy goes on
/// and completes. In one process, deterministic: the image is written through <see cref="FullAfter"/>, a device that
/// refuses (ENOSPC) any write past a byte budget. Ends with the image compared with what the guest wrote, byte for byte.
/// </summary>
public sealed class NoSpaceSpecs : Akka.TestKit.Xunit2.TestKit, IAsyncLifetime
{
    private const int Size = 8 << 20;
    private const int Block = 64 << 10;
    private RelocationHarness _h = null!;

    public NoSpaceSpecs() : base(RelocConfig.Node(RelocConfig.Sqlite(Path.Combine(Directory.CreateTempSubdirectory("reloc-nospace-db-").FullName, "reloc.db")))) { }

    public async Task InitializeAsync() => _h = await RelocationHarness.CreateAsync(Size);
    public async Task DisposeAsync() => await _h.DisposeAsync();

    /// <summary>Stores through <paramref name="inner"/> until <see cref="Room"/> bytes were written, then refuses every
    /// write (nothing of it written) as a full file system does. Punched holes take no room.</summary>
    private sealed class FullAfter(RawImage inner, long room) : IBlockDevice
    {
        private long _used;
        private volatile bool _full; // once full, a smaller write must not slip into what is left: full until Room is raised
        public long Room
        {
            get => Interlocked.Read(ref room);
            set
            {
                Interlocked.Exchange(ref room, value);
                _full = false;
            }
        }
        public long Refused;

        private void Take(long bytes)
        {
            if (!_full)
            {
                if (Interlocked.Add(ref _used, bytes) <= Room) return;
                Interlocked.Add(ref _used, -bytes);
            }
            _full = true;
            Interlocked.Increment(ref Refused);
            throw new BlockDeviceException(DeviceError.NoSpace, "no space left on device (test double)");
        }

        public long Size => inner.Size;
        public bool IsReadOnly => false;
        public bool TryRead(long offset, Span<byte> destination) => inner.TryRead(offset, destination);
        public ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken ct) => inner.ReadAsync(offset, destination, ct);
        public ValueTask FlushAsync(CancellationToken ct) => inner.FlushAsync(ct);
        public ValueTask CacheAsync(long offset, long length, CancellationToken ct) => inner.CacheAsync(offset, length, ct);
        public ValueTask<IReadOnlyList<Extent>> GetExtentsAsync(long offset, long length, int maxExtents, CancellationToken ct) =>
            inner.GetExtentsAsync(offset, length, maxExtents, ct);

        public ValueTask WriteAsync(long offset, in ReadOnlySequence<byte> data, WriteOptions options, CancellationToken ct)
        {
            Take(data.Length);
            return inner.WriteAsync(offset, data, options, ct);
        }

        public ValueTask TrimAsync(long offset, long length, WriteOptions options, CancellationToken ct) => inner.TrimAsync(offset, length, options, ct);

        public ValueTask WriteZeroesAsync(long offset, long length, WriteOptions options, CancellationToken ct)
        {
            if (options.HasFlag(WriteOptions.NoHole)) Take(length);
            return inner.WriteZeroesAsync(offset, length, options, ct);
        }
    }

    [Fact]
    public async Task Out_of_space_after_the_handover_fails_safe_and_completes_once_room_frees()
    {
        FullAfter device = null!;
        Sys.EventStream.Subscribe(TestActor, typeof(VirtualDiskProtocol.ArrivalStalled));
        Sys.EventStream.Subscribe(TestActor, typeof(VirtualDiskProtocol.RelocationFinished));
        await _h.StartDestinationAsync(Sys, new DiskSettings { BlockSize = Block, MissTimeout = TimeSpan.FromSeconds(5) }, owner: true,
            device: image => device = new FullAfter(image, 2 << 20));
        await using var guest = await _h.ConnectGuestAsync();

        // The copy fills the 2 MiB there is, then stalls: the site hears why.
        var stalled = await ExpectMsgAsync<VirtualDiskProtocol.ArrivalStalled>(TimeSpan.FromSeconds(60));
        Sys.EventStream.Unsubscribe(TestActor, typeof(VirtualDiskProtocol.ArrivalStalled)); // a chunk failing late may say it again
        Assert.Contains("no space left", stalled.Reason);
        // Stalled, if not at once: a chunk whose write began before the device filled can land after the stall was
        // said, and a landing reads as room freed (the status says relocating) until the next read fails again.
        VirtualDiskProtocol.Status status = null!;
        await AwaitAssertAsync(async () =>
        {
            status = await _h.StatusAsync();
            Assert.Equal("stalled", status.State);
        }, TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(100));
        Assert.Contains("no space left", status.Stalled);
        Assert.InRange(status.LocalBytes, 1, Size - 1);
        // Every block counted as here holds the source's bytes: nothing that did not land is marked local.
        var image = File.ReadAllBytes(_h.DestImagePath);
        for (long b = 0; b < Size / Block; b++)
            if (_h.State.Map[b] == BlockState.Local)
                Assert.True(image.AsSpan((int)(b * Block), Block).SequenceEqual(_h.Content.AsSpan((int)(b * Block), Block)), $"block {b} is local but not the source's");

        // A guest write that does not fit is refused with ENOSPC, on a missing block and on a local one alike.
        var expected = (byte[])_h.Content.Clone();
        long missing = FirstBlock(BlockState.Remote) * Block, local = FirstBlock(BlockState.Local) * Block;
        foreach (var offset in new[] { missing, local })
        {
            var refused = await Assert.ThrowsAsync<NbdClientException>(() => guest.WriteAsync(offset, Tool.RandomBytes(Block, 7)));
            Assert.Equal(NbdError.NoSpc, refused.Error);
        }
        Assert.False((await _h.StatusAsync()).State == "complete");

        // Room frees: the copy goes on by itself, the guest writes again, and the disk completes.
        device.Room = long.MaxValue;
        var written = Tool.RandomBytes(3 * Block + 100, 8);
        await guest.WriteAsync(missing + 1000, written);
        written.CopyTo(expected, missing + 1000);
        await guest.FlushAsync();
        // A stall said again before the unsubscribe took effect may still be queued ahead of it.
        await FishForMessageAsync(m => m is VirtualDiskProtocol.RelocationFinished, TimeSpan.FromSeconds(90));
        await guest.FlushAsync();
        Assert.True(device.Refused > 0);
        Assert.Equal(Tool.Sha256Of(expected), Tool.Sha256Of(File.ReadAllBytes(_h.DestImagePath)));

        long FirstBlock(BlockState state)
        {
            for (long b = 0; b < Size / Block; b++) if (_h.State.Map[b] == state) return b;
            throw new InvalidOperationException($"no {state} block");
        }
    }
}

/// <summary>The kernel's ENOSPC on a real, small file system (a tmpfs).</summary>
public sealed class NoSpaceDeviceTests
{
    /// <summary>The kernel's ENOSPC (a real full file system) reaches callers as <see cref="DeviceError.NoSpace"/>, which the
    /// NBD server answers as NBD_ENOSPC.</summary>
    [TmpfsFact]
    public async Task A_full_file_system_is_a_no_space_device_error()
    {
        var dir = Directory.CreateTempSubdirectory("reloc-tmpfs-").FullName;
        try
        {
            await using (await Tmpfs.MountAsync(dir, 1 << 20))
            {
                using var image = RawImage.Create(Path.Combine(dir, "a.img"), 4 << 20);
                var data = new ReadOnlySequence<byte>(Tool.RandomBytes(2 << 20, 3));
                var ex = await Assert.ThrowsAsync<BlockDeviceException>(async () => await image.WriteAsync(0, data, WriteOptions.None, CancellationToken.None));
                Assert.Equal(DeviceError.NoSpace, ex.Error);
            }
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
