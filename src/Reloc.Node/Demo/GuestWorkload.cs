using System.Diagnostics;
using System.Globalization;
using Reloc.Cli;
using Reloc.Nbd.Client;

namespace Reloc.Node.Demo;

/// <summary>
/// A guest-like NBD workload at queue depth 1: random 4 KiB reads and writes anywhere on the disk (its
/// holes included), a FLUSH after every fourth write, paced to a target rate. It keeps its own model of
/// the disk's content: the initial data plus every write the server acknowledged, checks every read
/// against it, and can move to another
/// connection between two requests (a VM migrating: the new connection opens first, the old one flushes
/// and closes at the switch-over).
/// </summary>
internal sealed class GuestWorkload
{
    public const int BlockSize = 4096;
    private const int WritesPerFlush = 4;

    private readonly byte[] _model;
    private readonly SparseDisk _disk;
    private readonly Random _rng;
    private readonly double _opsPerSecond;
    private readonly object _lock = new();
    private readonly List<double> _readsWhileRelocating = []; // at the destination, before every block is local
    private readonly List<double> _readsAfter = [];           // at the destination, after
    private readonly List<double> _readsAtSource = [];
    private NbdClient _client;
    private string _site;
    private (Func<Task> Action, TaskCompletionSource Done)? _move;
    private volatile bool _relocationComplete;
    private long _ops, _reads, _writes, _flushes, _mismatches, _writeBytes;
    private readonly Dictionary<string, long> _opsAt = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _holeWritesAt = new(StringComparer.Ordinal); // writes into blocks that were holes at the start

    /// <param name="disk">its initial content becomes the workload's model (and changes with every write).</param>
    public GuestWorkload(SparseDisk disk, NbdClient client, string site, double opsPerSecond, int seed)
    {
        _disk = disk;
        _model = disk.Model;
        _client = client;
        _site = site;
        _opsPerSecond = opsPerSecond;
        _rng = new Random(seed);
    }

    public string Site => _site;
    public string? Failure { get; private set; }
    public long Mismatches => Interlocked.Read(ref _mismatches);
    public long Ops => Interlocked.Read(ref _ops);
    public long Writes => Interlocked.Read(ref _writes);
    public long Flushes => Interlocked.Read(ref _flushes);
    public long Reads => Interlocked.Read(ref _reads);
    public long WriteBytes => Interlocked.Read(ref _writeBytes);
    public IReadOnlyDictionary<string, long> OpsAt { get { lock (_lock) return new Dictionary<string, long>(_opsAt); } }
    public IReadOnlyDictionary<string, long> HoleWritesAt { get { lock (_lock) return new Dictionary<string, long>(_holeWritesAt); } }

    /// <summary>From now on reads at the destination count as reads of a fully relocated disk.</summary>
    public void RelocationCompleted() => _relocationComplete = true;

    public (List<double> WhileRelocating, List<double> After, List<double> AtSource) ReadLatencies()
    {
        lock (_lock) return (_readsWhileRelocating.ToList(), _readsAfter.ToList(), _readsAtSource.ToList());
    }

    /// <summary>Runs between two requests: <paramref name="action"/> may flush, close and swap connections (<see cref="SwitchTo"/>).</summary>
    public Task BetweenRequestsAsync(Func<Task> action)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock) _move = (action, done);
        return done.Task;
    }

    /// <summary>Only from inside <see cref="BetweenRequestsAsync"/>.</summary>
    public NbdClient SwitchTo(NbdClient client, string site)
    {
        var old = _client;
        _client = client;
        _site = site;
        return old;
    }

    public string StatusLine()
    {
        var (during, _, _) = ReadLatencies();
        var at = OpsAt;
        var parts = string.Join(", ", at.Select(kv => $"{kv.Value} at {kv.Key}"));
        var slow = during.Count == 0 ? "" : $"; reads at the destination while relocating: {during.Count}, median {Fmt.Ms(Percentile(during, 50))}";
        return $"guest at {_site}: {Ops} ops ({parts}), {Writes} writes ({HoleWritesAt.Values.Sum()} into holes), {Flushes} flushes, {Mismatches} read mismatches{slow}";
    }

    /// <summary>Runs until <paramref name="ct"/> is cancelled, which stops it between two requests (a request is
    /// never abandoned half-way, so the model always knows what the disk holds).</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        var pace = Stopwatch.StartNew();
        double next = 0;
        var buffer = new byte[BlockSize];
        long blocks = _model.Length / BlockSize;
        int writesSinceFlush = 0;
        try
        {
            while (!ct.IsCancellationRequested)
            {
                (Func<Task> Action, TaskCompletionSource Done)? move;
                lock (_lock)
                {
                    move = _move;
                    _move = null;
                }
                if (move is { } m)
                {
                    try
                    {
                        await m.Action();
                        m.Done.TrySetResult();
                    }
                    catch (Exception ex)
                    {
                        m.Done.TrySetException(ex);
                        throw;
                    }
                    writesSinceFlush = 0;
                    continue;
                }
                // Pacing: at most a short burst after a slow request, not the whole debt.
                next = Math.Max(next + 1.0 / _opsPerSecond, pace.Elapsed.TotalSeconds - 0.1);
                var wait = next - pace.Elapsed.TotalSeconds;
                if (wait > 0) await Task.Delay(TimeSpan.FromSeconds(wait), ct);

                long offset = _rng.NextInt64(blocks) * BlockSize;
                bool write = _rng.Next(2) == 0;
                var client = _client;
                if (write)
                {
                    _rng.NextBytes(buffer);
                    await client.WriteAsync(offset, buffer); // never cancelled half-way: a write the server may have applied would leave the model wrong
                    // Acknowledged: from now on the disk must hold it.
                    buffer.AsSpan().CopyTo(_model.AsSpan((int)offset, BlockSize));
                    Interlocked.Increment(ref _writes);
                    Interlocked.Add(ref _writeBytes, BlockSize);
                    if (_disk.WasHole(offset)) lock (_lock) _holeWritesAt[_site] = _holeWritesAt.GetValueOrDefault(_site) + 1;
                    if (++writesSinceFlush == WritesPerFlush)
                    {
                        await client.FlushAsync();
                        Interlocked.Increment(ref _flushes);
                        writesSinceFlush = 0;
                    }
                }
                else
                {
                    var started = Stopwatch.GetTimestamp();
                    await client.ReadAsync(offset, buffer);
                    double ms = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                    if (!buffer.AsSpan().SequenceEqual(_model.AsSpan((int)offset, BlockSize))) Interlocked.Increment(ref _mismatches);
                    Interlocked.Increment(ref _reads);
                    lock (_lock) (_site == SourceSite ? _readsAtSource : _relocationComplete ? _readsAfter : _readsWhileRelocating).Add(ms);
                }
                Interlocked.Increment(ref _ops);
                lock (_lock) _opsAt[_site] = _opsAt.GetValueOrDefault(_site) + 1;
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
        catch (Exception ex)
        {
            Failure = $"guest request at {_site} failed: {ex.Message}";
            throw;
        }
    }

    /// <summary>The site the workload started at (its reads there are local, not relocation reads).</summary>
    public string SourceSite { get; init; } = "";

    public static double Percentile(List<double> values, double p)
    {
        if (values.Count == 0) return double.NaN;
        var sorted = values.Order().ToList();
        var rank = (int)Math.Ceiling(p / 100 * sorted.Count) - 1;
        return sorted[Math.Clamp(rank, 0, sorted.Count - 1)];
    }

    public static string Describe(double ms) => double.IsNaN(ms) ? "-" : ms.ToString("0.00", CultureInfo.InvariantCulture) + " ms";
}
