using System.Buffers;
using Akka.Actor;
using Reloc.Actors.Source;
using Reloc.Storage;
using static Reloc.Actors.Disk.VirtualDiskProtocol;

namespace Reloc.Actors.Disk;

/// <summary>
/// On-demand fetches for guest misses, on a connection of their own (a priority lane): a miss never
/// waits behind background copy in our queues. Fetches run concurrently; each one reads the blocks
/// from the source, writes them into the image (or punches a hole for zeros) and only then reports
/// <see cref="Landed"/> to the disk, which is what lets the disk set the bits.
/// </summary>
internal sealed class BlockFetcher : ReceiveActor
{
    private readonly IBlockSource _source;
    private readonly IBlockDevice _image;
    private readonly BlockMap _map;
    private readonly DiskSettings _settings;
    private readonly CancellationTokenSource _stopping = new();

    public BlockFetcher(IBlockDevice image, BlockMap map, BlockSourceFactory sources, DiskSettings settings)
    {
        _image = image;
        _map = map;
        _settings = settings;
        _source = sources(SourceLane.Misses);
        Receive<Fetch>(f => FetchAsync(f.First, f.Count).PipeTo(Context.Parent));
        Receive<ReadThrough>(m => ReadThroughAsync(m).PipeTo(Sender));
    }

    /// <summary>Reads from the source for a guest, landing nothing (the disk is not ours yet).</summary>
    private async Task<object> ReadThroughAsync(ReadThrough m)
    {
        try
        {
            var data = new byte[m.Length];
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            timeout.CancelAfter(_settings.MissTimeout);
            await _source.ReadAsync(m.Offset, data, timeout.Token);
            return new ThroughData(data);
        }
        catch (Exception ex)
        {
            return new Failed($"read from the source failed: {ex.Message}");
        }
    }

    public static Props Props(IBlockDevice image, BlockMap map, BlockSourceFactory sources, DiskSettings settings) =>
        Akka.Actor.Props.Create(() => new BlockFetcher(image, map, sources, settings));

    private async Task<object> FetchAsync(long first, long count)
    {
        long offset = first << _map.BlockShift;
        int length = (int)Math.Min(count << _map.BlockShift, _map.DiskSize - offset);
        var buffer = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            timeout.CancelAfter(_settings.MissTimeout);
            await _source.ReadAsync(offset, buffer.AsMemory(0, length), timeout.Token);
            await LandAsync(_image, offset, buffer.AsMemory(0, length));
            return new Landed(first, count, LandKind.Fetched, length);
        }
        catch (Exception ex)
        {
            return FetchFailed.Of(first, count, ex);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Writes fetched data into the image; all-zero data becomes a hole instead.</summary>
    internal static async Task LandAsync(IBlockDevice image, long offset, ReadOnlyMemory<byte> data)
    {
        if (data.Span.IndexOfAnyExcept((byte)0) < 0)
            await image.WriteZeroesAsync(offset, data.Length, WriteOptions.None, CancellationToken.None);
        else
            await image.WriteAsync(offset, new ReadOnlySequence<byte>(data), WriteOptions.None, CancellationToken.None);
    }

    protected override void PostStop()
    {
        _stopping.Cancel();
        // Closing a source connection is a DISC and a socket close; bounded so a dead peer cannot hang shutdown.
        _source.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(5));
        _stopping.Dispose();
    }
}
