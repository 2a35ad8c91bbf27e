using System.Buffers;
using System.Diagnostics;
using System.Threading.RateLimiting;
using Akka.Actor;
using Akka.Event;
using Reloc.Actors.Source;
using Reloc.Storage;
using static Reloc.Actors.Disk.VirtualDiskProtocol;

namespace Reloc.Actors.Disk;

/// <summary>
/// Background copy on its own connections (prefetch-connections; each read to the least loaded). It keeps a window
/// of coalesced reads in flight, asking the disk for each piece of work (the disk owns the map and decides what is
/// missing, starting near recent misses, and which runs are holes at the source). It also answers the disk's scans of the source's holes
/// (BLOCK_STATUS), so they are never read. The window follows <see cref="WindowController"/>; an optional
/// rate cap (token bucket) applies on top. Reads are sized by the controller (a couple of milliseconds of the measured
/// rate, <see cref="ReadSizing"/>) and the window is kept in bytes, so a LAN gets few large reads and a WAN small ones
/// that a guest miss waits little behind. Failures are reported and retried after a backoff: they never
/// touch guest I/O.
/// </summary>
/// <remarks>
/// States:  Copying <--(Resume / backoff over)-- Paused
///          Copying --(NoWork and nothing in flight)--> Idle --(Kick timer)--> Copying
/// </remarks>
internal sealed class Prefetcher : ReceiveActor, IWithTimers
{
    /// <summary>A chunk landed, as runs of blocks: all-zero blocks are punched and reported Skipped.</summary>
    private sealed record ChunkDone(Work Work, ReadStamp Sent, long Bytes, TimeSpan Latency, IReadOnlyList<Landed> Parts, int Slot, int Lane);
    private sealed record ChunkFailed(Work Work, Exception Error, int Slot, int Lane);
    private sealed record Kick;
    /// <summary>Rate tokens for one chunk, granted (or not: the limiter was replaced) before any work is claimed.</summary>
    private sealed record Permit(bool Granted, int Slot);

    /// <summary>The background connections (prefetch-connections); scans use the first.</summary>
    private readonly IBlockSource[] _sources;
    /// <summary>Bytes of reads under way on each connection: a read goes to the least loaded.</summary>
    private readonly long[] _laneBytes;
    private readonly IBlockDevice _image;
    private readonly BlockMap _map;
    private readonly DiskSettings _settings;
    private readonly WindowController _window;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private RateLimiter? _limiter;
    /// <summary>Each read's share of the window (bytes asked for), by state: RequestWork sent (answered in order), read
    /// under way. Zero work counts its slot too, though nothing crosses the link: it is a bounded write here.</summary>
    private readonly Queue<int> _asked = new();
    private int _inFlight, _acquiring;
    private long _outstandingBytes;
    private int _tokenLimit = int.MaxValue;
    private bool _paused;
    private TimeSpan _backoff = TimeSpan.FromMilliseconds(200);

    /// <summary>Block status requests a scan keeps in flight.</summary>
    private const int ScanPiecesInFlight = 16;

    public ITimerScheduler Timers { get; set; } = null!;
    private long ChunkBlocks => Math.Max(1, _settings.PrefetchChunkBytes >> _map.BlockShift);
    private int Reads => _asked.Count + _inFlight + _acquiring;

    public Prefetcher(IBlockDevice image, BlockMap map, BlockSourceFactory sources, DiskSettings settings)
    {
        _image = image;
        _map = map;
        _settings = settings;
        _window = new WindowController(settings.PrefetchQueueTarget, settings.MaxPrefetchWindow,
            (int)(ChunkBlocks << map.BlockShift), settings.PrefetchInitialWindow,
            settings.ReadSizing,
            settings.PrefetchMissQueueTarget);
        _limiter = MakeLimiter(settings.RateBytesPerSecond);
        _sources = Enumerable.Range(0, settings.PrefetchConnections).Select(_ => sources(SourceLane.Background)).ToArray();
        _laneBytes = new long[_sources.Length];
        Copying();
    }

    public static Props Props(IBlockDevice image, BlockMap map, BlockSourceFactory sources, DiskSettings settings) =>
        Akka.Actor.Props.Create(() => new Prefetcher(image, map, sources, settings));

    protected override void PreStart() => Fill();

    private void Copying()
    {
        Receive<Work>(w =>
        {
            int slot = _asked.Dequeue();
            _inFlight++;
            int lane = LeastLoadedLane();
            _laneBytes[lane] += slot;
            CopyAsync(w, _window.OnSend(DateTime.UtcNow), slot, lane).PipeTo(Self);
            Fill();
        });
        Receive<NoWork>(_ =>
        {
            _outstandingBytes -= _asked.Dequeue();
            // Nothing missing now; blocks can go missing again (a failed fetch), so look again later.
            if (_asked.Count == 0 && _inFlight == 0) Timers.StartSingleTimer("kick", new Kick(), TimeSpan.FromSeconds(1));
        });
        Receive<GuestMiss>(_ => _window.OnGuestMiss(DateTime.UtcNow));
        Receive<ChunkDone>(d =>
        {
            _inFlight--;
            _outstandingBytes -= d.Slot;
            _laneBytes[d.Lane] -= d.Slot;
            _backoff = TimeSpan.FromMilliseconds(200);
            // Zero work never crossed the link; reads cut short by guest misses (or asked at another size) count as
            // delivered bytes only.
            if (!d.Work.Zero) _window.OnCompletion(d.Sent, d.Bytes, d.Latency, d.Bytes == _window.ReadBytes, DateTime.UtcNow);
            foreach (var part in d.Parts) Context.Parent.Tell(part);
            Context.Parent.Tell(new PrefetchStats(_window.Window, _paused));
            Fill();
        });
        Receive<ChunkFailed>(f =>
        {
            _inFlight--;
            _outstandingBytes -= f.Slot;
            _laneBytes[f.Lane] -= f.Slot;
            _window.OnFailure();
            // A full image (ENOSPC) too: the chunk's blocks go back to missing, and the next try waits the longest backoff.
            Context.Parent.Tell(FetchFailed.Of(f.Work.First, f.Work.Count, f.Error));
            Timers.StartSingleTimer("kick", new Kick(), _backoff);
            _backoff = TimeSpan.FromTicks(Math.Min(_backoff.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
        });
        Receive<Kick>(_ => Fill());
        Common();
    }

    private void Common()
    {
        // The answer goes to the disk as it is; a scan overtaken by source writes is the disk's to judge.
        Receive<ScanZeros>(m => ScanAsync(m).PipeTo(Context.Parent));
        Receive<Permit>(p =>
        {
            _acquiring--;
            if (p.Granted && !_paused) Ask(p.Slot);
            else
            {
                _outstandingBytes -= p.Slot;
                Fill();
            }
        });
        Receive<SetRate>(r =>
        {
            _limiter?.Dispose();
            _limiter = MakeLimiter(r.BytesPerSecond);
        });
        Receive<PausePrefetch>(_ =>
        {
            _paused = true;
            Context.Parent.Tell(new PrefetchStats(_window.Window, _paused));
        });
        Receive<ResumePrefetch>(_ =>
        {
            _paused = false;
            Context.Parent.Tell(new PrefetchStats(_window.Window, _paused));
            Fill();
        });
    }

    private void Fill()
    {
        if (_paused || Timers.IsTimerActive("kick")) return;
        // Under a rate cap the tokens come first and the work second: blocks claimed for background copy
        // wait for nothing, so a guest miss on one of them never waits for the rate limiter.
        // The window is bytes; the read count is capped too (many short reads on a fragmented disk).
        while (_outstandingBytes < _window.WindowBytes && Reads < _settings.MaxPrefetchWindow)
        {
            // Whole blocks; under a rate cap no bigger than the bucket (a read takes its tokens at once).
            int slot = (int)Math.Max(_map.BlockSize, Math.Min(_window.ReadBytes, _limiter is null ? int.MaxValue : _tokenLimit) >> _map.BlockShift << _map.BlockShift);
            _outstandingBytes += slot;
            if (_limiter is null) Ask(slot);
            else
            {
                _acquiring++;
                AcquireAsync(_limiter, slot, _stopping.Token).PipeTo(Self);
            }
        }

        static async Task<Permit> AcquireAsync(RateLimiter limiter, int bytes, CancellationToken ct)
        {
            try
            {
                using var lease = await limiter.AcquireAsync(bytes, ct);
                return new Permit(lease.IsAcquired, bytes);
            }
            catch (Exception ex) when (ex is ObjectDisposedException or OperationCanceledException)
            {
                return new Permit(false, bytes); // replaced by SetRate, or stopping
            }
        }
    }

    private void Ask(int slot)
    {
        _asked.Enqueue(slot);
        Context.Parent.Tell(new RequestWork(slot >> _map.BlockShift));
    }

    private int LeastLoadedLane()
    {
        int best = 0;
        for (int i = 1; i < _laneBytes.Length; i++) if (_laneBytes[i] < _laneBytes[best]) best = i;
        return best;
    }

    private async Task<object> CopyAsync(Work w, ReadStamp sent, int slot, int lane)
    {
        long offset = w.First << _map.BlockShift;
        int length = w.Zero ? 0 : (int)Math.Min(w.Count << _map.BlockShift, _map.DiskSize - offset);
        var buffer = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            if (w.Zero)
            {
                long zeroLength = Math.Min(w.Count << _map.BlockShift, _map.DiskSize - offset);
                await _image.WriteZeroesAsync(offset, zeroLength, WriteOptions.None, CancellationToken.None);
                return new ChunkDone(w, sent, 0, TimeSpan.Zero, [new Landed(w.First, w.Count, LandKind.Skipped, zeroLength)], slot, lane);
            }
            var started = Stopwatch.GetTimestamp();
            await _sources[lane].ReadAsync(offset, buffer.AsMemory(0, length), _stopping.Token);
            var latency = Stopwatch.GetElapsedTime(started);
            return new ChunkDone(w, sent, length, latency, await LandByBlockAsync(w, offset, buffer.AsMemory(0, length)), slot, lane);
        }
        catch (Exception ex)
        {
            return new ChunkFailed(w, ex, slot, lane);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Writes a chunk as runs of whole blocks: data runs are written, all-zero runs punched
    /// (never stored, counted as skipped).</summary>
    private async Task<List<Landed>> LandByBlockAsync(Work w, long offset, ReadOnlyMemory<byte> data)
    {
        var parts = new List<Landed>();
        int bs = _map.BlockSize;
        int pos = 0;
        while (pos < data.Length)
        {
            bool zero = IsZero(data.Span.Slice(pos, Math.Min(bs, data.Length - pos)));
            int end = pos;
            while (end < data.Length && IsZero(data.Span.Slice(end, Math.Min(bs, data.Length - end))) == zero) end += bs;
            end = Math.Min(end, data.Length);
            if (zero) await _image.WriteZeroesAsync(offset + pos, end - pos, WriteOptions.None, CancellationToken.None);
            else await _image.WriteAsync(offset + pos, new ReadOnlySequence<byte>(data[pos..end]), WriteOptions.None, CancellationToken.None);
            parts.Add(new Landed(w.First + pos / bs, (end - pos + bs - 1) / bs, zero ? LandKind.Skipped : LandKind.Fetched, end - pos));
            pos = end;
        }
        return parts;

        static bool IsZero(ReadOnlySpan<byte> block) => block.IndexOfAnyExcept((byte)0) < 0;
    }

    /// <summary>Hole and zero extents of the source within the scan's ranges, as whole blocks (partial blocks are copied).
    /// The ranges go in 1 GiB pieces, <see cref="ScanPiecesInFlight"/> at a time on this connection: a sparse TiB is 1024
    /// pieces, which one after the other would cost 1024 round trips before the copy could start.</summary>
    private async Task<SourceZero> ScanAsync(ScanZeros scan)
    {
        const long piece = 1L << 30;
        var pieces = new List<(long Start, long End)>();
        foreach (var (firstBlock, blockCount) in scan.Ranges)
        {
            long rangeEnd = Math.Min((firstBlock + blockCount) << _map.BlockShift, _map.DiskSize);
            for (long offset = firstBlock << _map.BlockShift; offset < rangeEnd; offset += piece)
                pieces.Add((offset, Math.Min(offset + piece, rangeEnd)));
        }
        var found = new List<(long, long)>[pieces.Count];
        try
        {
            await Parallel.ForEachAsync(Enumerable.Range(0, pieces.Count),
                new ParallelOptions { MaxDegreeOfParallelism = ScanPiecesInFlight, CancellationToken = _stopping.Token },
                async (i, ct) => found[i] = await ScanPieceAsync(pieces[i].Start, pieces[i].End, ct));
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Without a map every block is simply read: slower on sparse disks, never wrong.
            _log.Warning("source block status unavailable ({0}); copying those blocks in full", ex.Message);
            return new SourceZero(scan.Scan, []);
        }
        return new SourceZero(scan.Scan, found.SelectMany(f => f).ToList());
    }

    /// <summary>Zero runs of one piece; none where the source cannot tell.</summary>
    private async Task<List<(long, long)>> ScanPieceAsync(long start, long end, CancellationToken ct)
    {
        var runs = new List<(long, long)>();
        long pos = start;
        while (pos < end)
        {
            var extents = await _sources[0].GetExtentsAsync(pos, end - pos, ct);
            if (extents is null || extents.Count == 0) return runs;
            foreach (var e in extents)
            {
                long extentEnd = Math.Min(pos + e.Length, end);
                if (e.Flags.HasFlag(ExtentFlags.Zero))
                {
                    long first = (pos + _map.BlockSize - 1) >> _map.BlockShift;
                    long last = extentEnd == _map.DiskSize ? _map.BlockCount : extentEnd >> _map.BlockShift;
                    if (last > first) runs.Add((first, last - first));
                }
                pos = extentEnd;
                if (pos >= end) break;
            }
        }
        return runs;
    }

    private RateLimiter? MakeLimiter(long bytesPerSecond)
    {
        if (bytesPerSecond <= 0) return null;
        // Tokens are bytes; the bucket holds one nominal chunk or 100 ms of rate, whichever is larger (reads are cut to it).
        _tokenLimit = (int)Math.Clamp(bytesPerSecond / 10, Math.Max(_settings.PrefetchChunkBytes, (int)(ChunkBlocks << _map.BlockShift)), int.MaxValue);
        return new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
        {
            TokenLimit = _tokenLimit,
            TokensPerPeriod = (int)Math.Clamp(bytesPerSecond / 50, 1, int.MaxValue),
            ReplenishmentPeriod = TimeSpan.FromMilliseconds(20),
            QueueLimit = (int)Math.Clamp((long)_settings.MaxPrefetchWindow * Math.Max(_settings.PrefetchChunkBytes, ChunkBlocks << _map.BlockShift), 1, int.MaxValue),
            QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
            AutoReplenishment = true,
        });
    }

    protected override void PostStop()
    {
        _stopping.Cancel();
        _limiter?.Dispose();
        Task.WhenAll(_sources.Select(s => s.DisposeAsync().AsTask())).Wait(TimeSpan.FromSeconds(5));
        _stopping.Dispose();
    }
}
