using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Reloc.Nbd.Protocol;
using Reloc.Storage;

namespace Reloc.Nbd.Client;

/// <summary>Backoff between reconnection attempts: <see cref="InitialDelay"/>, doubling up to <see cref="MaxDelay"/>.</summary>
public sealed record ReconnectOptions
{
    public TimeSpan InitialDelay { get; init; } = TimeSpan.FromMilliseconds(100);
    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromSeconds(10);

    public ReconnectOptions Validate()
    {
        if (InitialDelay <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(InitialDelay));
        if (MaxDelay < InitialDelay) throw new ArgumentOutOfRangeException(nameof(MaxDelay), "must be at least InitialDelay");
        return this;
    }
}

/// <summary>
/// An <see cref="NbdClient"/> that comes back: a supervisor task (awaited by <see cref="DisposeAsync"/>)
/// connects, waits for the connection to close, and reconnects with exponential backoff. Reads and
/// block status are idempotent, so a call that loses its connection is retried on the next one; the
/// caller's token bounds how long it waits. Writes are not replayed: take the current connection with
/// <see cref="GetClientAsync"/> and decide.
/// </summary>
public sealed class ReconnectingNbdClient : IAsyncDisposable
{
    private readonly NbdClientOptions _options;
    private readonly ReconnectOptions _reconnect;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _supervisor;
    // The connection callers use: pending while (re)connecting, then the live client. Whoever first sees
    // its client dead swaps in a pending one (compare-and-swap), which the supervisor then fills.
    private TaskCompletionSource<NbdClient> _current = NewSlot();
    private int _connections;
    private int _waiting;
    /// <summary>While a caller waits for a connection, the next attempt comes at most this long after the last.</summary>
    private static readonly TimeSpan WantedRetry = TimeSpan.FromMilliseconds(500);
    private int _disposed;
    private NbdClient? _first;
    private readonly PeerConnectionPool? _pool;
    private readonly long _made = Stopwatch.GetTimestamp();

    /// <param name="first">A connection to the same server, already negotiated, to use as the first one instead
    /// of connecting (a connection opened before it was needed); this client owns it from now on.</param>
    /// <param name="pool">Where connections come from (a parked one finished for <paramref name="options"/>' export, else a
    /// new one): it must connect to the same server exactly as <paramref name="options"/> say. Null: each is new.</param>
    public ReconnectingNbdClient(NbdClientOptions options, ReconnectOptions? reconnect = null, ILogger? logger = null, NbdClient? first = null,
        PeerConnectionPool? pool = null)
    {
        _options = options.Validate();
        if (pool is not null && pool.Endpoint != (options with { Export = "" }))
            throw new ArgumentException($"the pool connects to {pool.Endpoint}, not as {options} asks", nameof(pool));
        _pool = pool;
        _reconnect = (reconnect ?? new ReconnectOptions()).Validate();
        _log = logger ?? NullLogger.Instance;
        _first = first;
        _supervisor = Task.Run(SuperviseAsync);
    }

    /// <summary>Creates the client and waits for its first connection (retrying with backoff until
    /// <paramref name="ct"/> gives up).</summary>
    public static async Task<ReconnectingNbdClient> ConnectAsync(NbdClientOptions options, ReconnectOptions? reconnect = null,
        ILogger? logger = null, CancellationToken ct = default)
    {
        var client = new ReconnectingNbdClient(options, reconnect, logger);
        try
        {
            await client.GetClientAsync(ct);
            return client;
        }
        catch
        {
            await client.DisposeAsync();
            throw;
        }
    }

    /// <summary>Connections made so far (1 after the first connect, 2 after the first reconnect...).</summary>
    public int Connections => Volatile.Read(ref _connections);

    /// <summary>Why the last connection attempt or connection failed; null if none has.</summary>
    public Exception? LastError { get; private set; }

    public bool IsConnected
    {
        get
        {
            var slot = Volatile.Read(ref _current);
            return slot.Task.IsCompletedSuccessfully && slot.Task.Result.IsConnected;
        }
    }

    /// <summary>The live connection, waiting for a reconnect if there is none right now.</summary>
    /// <exception cref="ObjectDisposedException">This client was disposed.</exception>
    public async Task<NbdClient> GetClientAsync(CancellationToken ct = default)
    {
        while (true)
        {
            var slot = Volatile.Read(ref _current);
            NbdClient client;
            if (slot.Task.IsCompleted) client = await slot.Task;
            else
            {
                Interlocked.Increment(ref _waiting); // shortens the supervisor's backoff: see WaitBackoffAsync
                try { client = await slot.Task.WaitAsync(ct); }
                finally { Interlocked.Decrement(ref _waiting); }
            }
            if (client.IsConnected) return client;
            Interlocked.CompareExchange(ref _current, NewSlot(), slot);
        }
    }

    public Task ReadAsync(long offset, Memory<byte> destination, CancellationToken ct = default) =>
        RetryAsync(async c =>
        {
            await c.ReadAsync(offset, destination, ct);
            return true;
        }, ct);

    public Task<IReadOnlyList<(long Offset, Extent Extent)>> BlockStatusAsync(long offset, uint length, CancellationToken ct = default) =>
        RetryAsync(c => c.BlockStatusAsync(offset, length, ct), ct);

    private async Task<T> RetryAsync<T>(Func<NbdClient, Task<T>> operation, CancellationToken ct)
    {
        while (true)
        {
            var client = await GetClientAsync(ct);
            try
            {
                return await operation(client);
            }
            catch (NbdConnectionLostException ex) when (!ct.IsCancellationRequested && Volatile.Read(ref _disposed) == 0)
            {
                _log.LogDebug("request on {Uri} lost its connection ({Reason}); retrying after reconnect", _options, ex.Message);
            }
            catch (NbdClientException ex) when (ex.Error == NbdError.Shutdown && !ct.IsCancellationRequested && Volatile.Read(ref _disposed) == 0)
            {
                // The server is going away and takes no more requests: retry on the connection that replaces this one.
                _log.LogDebug("{Uri} is shutting down; retrying after reconnect", _options);
                await client.Closed.WaitAsync(ct);
            }
        }
    }

    private async Task SuperviseAsync()
    {
        var token = _stop.Token;
        var delay = _reconnect.InitialDelay;
        try
        {
            while (true)
            {
                NbdClient client;
                try
                {
                    client = Interlocked.Exchange(ref _first, null)
                             ?? await (_pool?.TakeAsync(_options.Export, token) ?? NbdClient.ConnectAsync(_options, token));
                }
                catch (Exception ex) when (!token.IsCancellationRequested)
                {
                    LastError = ex;
                    _log.LogWarning("connecting to {Uri} failed ({Reason}); retrying in {Delay} ms", _options, ex.Message, delay.TotalMilliseconds);
                    await WaitBackoffAsync(delay, token);
                    delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, _reconnect.MaxDelay.Ticks));
                    continue;
                }
                delay = _reconnect.InitialDelay;
                var slot = Volatile.Read(ref _current);
                Interlocked.Increment(ref _connections);
                _log.LogInformation("connected to {Uri} (connection {Count}, {Elapsed:0} ms after this client was made)", _options, Connections,
                    Stopwatch.GetElapsedTime(_made).TotalMilliseconds);
                slot.TrySetResult(client);
                try
                {
                    await client.Closed.WaitAsync(token);
                }
                finally
                {
                    await client.DisposeAsync();
                }
                LastError = client.CloseReason;
                _log.LogWarning("connection to {Uri} lost: {Reason}", _options, client.CloseReason?.Message);
                Interlocked.CompareExchange(ref _current, NewSlot(), slot);
            }
        }
        catch (Exception) when (token.IsCancellationRequested)
        {
            // Disposed: whatever was under way (a connect, a backoff, a wait) ended because of it.
        }
        finally
        {
            // Callers waiting for a connection, now or later, learn that none will come.
            if (Interlocked.Exchange(ref _first, null) is { } unused) await unused.DisposeAsync();
            var disposed = Faulted(new ObjectDisposedException(nameof(ReconnectingNbdClient)));
            var last = Interlocked.Exchange(ref _current, disposed);
            if (last.TrySetException(new ObjectDisposedException(nameof(ReconnectingNbdClient)))) _ = last.Task.Exception;
        }
    }

    /// <summary>The backoff between attempts, cut to <see cref="WantedRetry"/> while a caller waits: a source that was
    /// away long enough for the backoff to reach seconds is back in use within half a second of its return when a
    /// guest read is waiting on it, instead of failing that read's timeout; with nobody waiting it stays long.</summary>
    private async Task WaitBackoffAsync(TimeSpan delay, CancellationToken token)
    {
        var step = TimeSpan.FromMilliseconds(100);
        for (var waited = TimeSpan.Zero; waited < delay; waited += step)
        {
            if (waited >= WantedRetry && Volatile.Read(ref _waiting) > 0) return;
            await Task.Delay(step < delay - waited ? step : delay - waited, token);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _stop.Cancel();
        await _supervisor;
        _stop.Dispose();
    }

    private static TaskCompletionSource<NbdClient> NewSlot() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static TaskCompletionSource<NbdClient> Faulted(Exception error)
    {
        var slot = NewSlot();
        slot.SetException(error);
        _ = slot.Task.Exception; // observed: nobody may ever wait on it, and that is not an error
        return slot;
    }
}
