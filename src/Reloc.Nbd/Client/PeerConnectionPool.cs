using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Reloc.Nbd.Client;

/// <summary>
/// Connections to one NBD server kept warm in the option phase (<see cref="NbdClient.ParkAsync"/>), so that a
/// connection to one of its exports costs one round trip (<see cref="TakeAsync"/>) instead of the TCP, greeting and
/// TLS round trips of a new one. Holds up to <see cref="PeerPoolSettings.Parked"/> connections, refills after a take,
/// renews them by age (<see cref="PeerPoolCore"/> decides). A take never fails because of the pool: a parked connection
/// that turns out closed is dropped and the next one, or a new connection, is used.
/// </summary>
/// <remarks>One task (awaited by <see cref="DisposeAsync"/>) makes the decisions; the opens and retirements it starts
/// are tracked and awaited there too.</remarks>
public sealed class PeerConnectionPool : IAsyncDisposable
{
    private readonly NbdClientOptions _endpoint;
    private readonly PeerPoolSettings _settings;
    private readonly ILogger _log;
    private readonly object _gate = new();
    private readonly List<NbdParkedConnection> _parked = [];
    private readonly List<Task> _work = []; // opens and retirements under way
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _wake = new(0, 1);
    private readonly Task _loop;
    private int _opening;
    private int _failures;
    private long _lastFailure;
    private int _disposed;
    private long _warm, _fresh, _discarded, _retired;

    /// <param name="endpoint">Where and how to connect (TLS, certificates: exactly as a new connection would); its Export is ignored.</param>
    public PeerConnectionPool(NbdClientOptions endpoint, PeerPoolSettings settings, ILogger? logger = null)
    {
        _endpoint = (endpoint with { Export = "" }).Validate();
        _settings = settings.Validate();
        _log = logger ?? NullLogger.Instance;
        _loop = Task.Run(RunAsync);
    }

    /// <summary>The server and options every connection of the pool uses (Export empty).</summary>
    public NbdClientOptions Endpoint => _endpoint;

    /// <summary>Takes served from a parked connection.</summary>
    public long Warm => Interlocked.Read(ref _warm);

    /// <summary>Takes that made a new connection (none parked, or every one tried had closed).</summary>
    public long Fresh => Interlocked.Read(ref _fresh);

    /// <summary>Parked connections found closed or failing when a take finished them.</summary>
    public long Discarded => Interlocked.Read(ref _discarded);

    /// <summary>Parked connections retired by age, or because the server closed them while parked.</summary>
    public long Retired => Interlocked.Read(ref _retired);

    /// <summary>Connections parked now.</summary>
    public int ParkedCount
    {
        get { lock (_gate) return _parked.Count; }
    }

    /// <summary>A connection to <paramref name="export"/> in the transmission phase: a parked one finished (one round
    /// trip), else a new one. Fails only as <see cref="NbdClient.ConnectAsync"/> does for a new connection.</summary>
    public async Task<NbdClient> TakeAsync(string export, CancellationToken ct = default)
    {
        while (Take() is { } parked)
        {
            Wake(); // refill
            var age = parked.Age;
            try
            {
                var started = Stopwatch.GetTimestamp();
                var client = await parked.FinishAsync(export, ct);
                Interlocked.Increment(ref _warm);
                _log.LogInformation("connection to {Export} at {Endpoint} finished from a parked one (parked {Age:0} ms) in {Finish:0.0} ms",
                    export, _endpoint, age.TotalMilliseconds, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                return client;
            }
            catch (NbdHandshakeException ex) when (ex.Reply is not null)
            {
                // The server answered: it refuses this export (unknown, policy). A new connection would hear the same.
                throw;
            }
            catch (Exception ex) when (!ct.IsCancellationRequested)
            {
                // Closed while parked (or broken): FinishAsync closed it; the next one, or a new connection, goes on.
                Interlocked.Increment(ref _discarded);
                _log.LogDebug("parked connection to {Endpoint} failed when finished for {Export} ({Reason}); trying another", _endpoint, export, ex.Message);
            }
        }
        Interlocked.Increment(ref _fresh);
        return await NbdClient.ConnectAsync(_endpoint with { Export = export }, ct);
    }

    private NbdParkedConnection? Take()
    {
        lock (_gate)
        {
            if (_disposed != 0) return null;
            int i = PeerPoolCore.PickForTake(View(), _settings);
            if (i < 0) return null;
            var parked = _parked[i];
            _parked.RemoveAt(i);
            return parked;
        }
    }

    private List<PeerPoolCore.Parked> View() => _parked.Select(p => new PeerPoolCore.Parked(p.Age, p.LooksClosed)).ToList();

    private void Wake()
    {
        try { _wake.Release(); }
        catch (SemaphoreFullException) { } // already due to look
        catch (ObjectDisposedException) { }
    }

    private async Task RunAsync()
    {
        var token = _stop.Token;
        try
        {
            while (!token.IsCancellationRequested)
            {
                PeerPoolCore.Decision decision;
                var retire = new List<NbdParkedConnection>();
                lock (_gate)
                {
                    _work.RemoveAll(t => t.IsCompleted);
                    var since = _failures == 0 ? TimeSpan.MaxValue : Stopwatch.GetElapsedTime(_lastFailure);
                    decision = PeerPoolCore.Decide(View(), _opening, _failures, since, _settings);
                    foreach (int i in decision.Retire.OrderDescending())
                    {
                        retire.Add(_parked[i]);
                        _parked.RemoveAt(i);
                    }
                    _opening += decision.Open;
                    for (int i = 0; i < decision.Open; i++) _work.Add(OpenOneAsync(token));
                }
                // Out of the lock (each writes NBD_OPT_ABORT); only this loop adds work, and DisposeAsync waits for it first.
                var retiring = retire.Select(r => r.DisposeAsync().AsTask()).ToList();
                lock (_gate) _work.AddRange(retiring);
                Interlocked.Add(ref _retired, retire.Count);
                await _wake.WaitAsync(decision.LookIn, token);
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            // Disposed.
        }
    }

    private async Task OpenOneAsync(CancellationToken token)
    {
        await Task.Yield(); // the caller holds the lock
        try
        {
            var parked = await NbdClient.ParkAsync(_endpoint, token);
            lock (_gate)
            {
                _parked.Add(parked); // swept by DisposeAsync even when it comes after the stop
                _failures = 0;
            }
        }
        catch (Exception ex)
        {
            if (!token.IsCancellationRequested)
            {
                lock (_gate)
                {
                    _failures++;
                    _lastFailure = Stopwatch.GetTimestamp();
                }
                _log.LogDebug("parking a connection to {Endpoint} failed: {Reason}", _endpoint, ex.Message);
            }
        }
        finally
        {
            lock (_gate) _opening--;
            Wake();
        }
    }

    /// <summary>Stops opening, waits for what is under way, and closes every parked connection (NBD_OPT_ABORT).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _stop.Cancel();
        await _loop;
        Task[] work;
        lock (_gate) work = [.. _work];
        await Task.WhenAll(work); // none throws: opens and retirements catch their own errors
        NbdParkedConnection[] parked;
        lock (_gate)
        {
            parked = [.. _parked];
            _parked.Clear();
        }
        foreach (var p in parked) await p.DisposeAsync();
        _stop.Dispose();
        _wake.Dispose();
    }

    public override string ToString() => $"pool of {_endpoint}";
}
