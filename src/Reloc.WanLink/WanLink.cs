using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Reloc.Wan;

/// <summary>
/// A TCP relay that behaves like a WAN path between its clients and a target: per direction a
/// propagation delay and a rate-limited bottleneck with a bounded FIFO queue, shared by all connections
/// (two parallel transfers split the rate as on a real link). For benchmarks and demos on machines
/// without netem. Every accept loop and connection is a tracked task; <see cref="StopAsync"/> stops
/// listening, resets the relayed connections and returns once all of them are done.
/// </summary>
public sealed class WanLink : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly Bottleneck _toTarget;
    private readonly Bottleneck _toClient;
    private readonly Scheduler _scheduler = new();
    private readonly BlackHole _blackHole = new();
    private readonly ILogger _log;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<RelayedConnection, Task> _connections = new();
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly object _stopLock = new();
    private readonly Task _acceptLoop;
    private readonly CancellationTokenRegistration _stopOnCancel;
    private Task? _stop;
    private long _accepted;

    private WanLink(Socket listener, EndPoint target, WanLinkSettings settings, ILogger log, CancellationToken cancellationToken)
    {
        _listener = listener;
        Target = target;
        Settings = settings;
        LocalEndPoint = (IPEndPoint)listener.LocalEndPoint!;
        _toTarget = new Bottleneck(settings, WanDirection.ToTarget);
        _toClient = new Bottleneck(settings, WanDirection.ToClient);
        _log = log;
        // On the thread pool, whatever context the caller has (a UI or test framework's synchronization
        // context would otherwise run every relay continuation, and the link's timing would depend on it).
        _acceptLoop = Task.Run(AcceptLoopAsync);
        _stopOnCancel = cancellationToken.Register(() => StopAsync());
    }

    /// <summary>
    /// Listens on <paramref name="listen"/> (port 0 picks a free port, see <see cref="LocalEndPoint"/>) and
    /// relays every accepted connection to <paramref name="target"/> (an IP, DNS or Unix endpoint) through
    /// the emulated link. Cancelling <paramref name="cancellationToken"/> stops the link like
    /// <see cref="StopAsync"/>; <see cref="Completion"/> then completes.
    /// </summary>
    public static Task<WanLink> StartAsync(IPEndPoint listen, EndPoint target, WanLinkSettings settings, CancellationToken cancellationToken = default) =>
        StartAsync(listen, target, settings, null, cancellationToken);

    /// <inheritdoc cref="StartAsync(IPEndPoint, EndPoint, WanLinkSettings, CancellationToken)"/>
    public static Task<WanLink> StartAsync(IPEndPoint listen, EndPoint target, WanLinkSettings settings, ILoggerFactory? loggers, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(listen);
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(settings);
        cancellationToken.ThrowIfCancellationRequested();
        var listener = new Socket(listen.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            RelayedConnection.Tune(listener); // accepted sockets inherit the buffer sizes set before listen
            listener.Bind(listen);
            listener.Listen(512);
        }
        catch
        {
            listener.Dispose();
            throw;
        }
        var log = (loggers ?? NullLoggerFactory.Instance).CreateLogger<WanLink>();
        return Task.FromResult(new WanLink(listener, target, settings, log, cancellationToken));
    }

    /// <summary>Where the link listens, with the real port when 0 was asked for.</summary>
    public IPEndPoint LocalEndPoint { get; }

    public EndPoint Target { get; }

    /// <summary>The settings the link started with (<see cref="SetRate(long)"/> changes only the live rate).</summary>
    public WanLinkSettings Settings { get; }

    /// <summary>Connections being relayed now.</summary>
    public int ActiveConnections => _connections.Count;

    /// <summary>Connections accepted since the start.</summary>
    public long AcceptedConnections => Interlocked.Read(ref _accepted);

    /// <summary>Completes once the link has stopped (by <see cref="StopAsync"/> or the start token).</summary>
    public Task Completion => _stopped.Task;

    /// <summary>Sets the rate of both directions (bytes/s, 0 = unlimited) for every chunk admitted from now on;
    /// chunks already queued keep their schedule. A queue given as time follows the new rate.</summary>
    public void SetRate(long bytesPerSecond)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytesPerSecond);
        _toTarget.Rate = bytesPerSecond;
        _toClient.Rate = bytesPerSecond;
    }

    /// <summary>Sets the rate of one direction, as <see cref="SetRate(long)"/>.</summary>
    public void SetRate(WanDirection direction, long bytesPerSecond) => Of(direction).Rate = bytesPerSecond;

    public WanDirectionStats GetStats(WanDirection direction) => Of(direction).Stats();

    /// <summary>True while the link is a black hole (<see cref="StartBlackHole"/>).</summary>
    public bool IsBlackHoled => _blackHole.IsOn;

    /// <summary>From now until <see cref="EndBlackHole"/>, nothing crosses the link in either direction and new
    /// connections are not passed on, but nothing is closed or reset: the endpoints see a path that drops
    /// everything (for fault campaigns). Idempotent.</summary>
    public void StartBlackHole() => _blackHole.TurnOn();

    /// <summary>Ends the black hole: what was held crosses the link (with its delay), held connections go on. Idempotent.</summary>
    public void EndBlackHole() => _blackHole.TurnOff();

    /// <summary>A black hole for <paramref name="duration"/>; ended early (and the link passes traffic again) on cancellation.</summary>
    public async Task BlackHoleAsync(TimeSpan duration, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(duration, TimeSpan.Zero);
        StartBlackHole();
        try
        {
            await Task.Delay(duration, ct);
        }
        finally
        {
            EndBlackHole();
        }
    }

    /// <summary>Stops listening, resets every relayed connection and waits for all of the link's tasks.</summary>
    public Task StopAsync()
    {
        lock (_stopLock) return _stop ??= StopCoreAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        await _stopOnCancel.DisposeAsync();
        _stopping.Dispose();
    }

    private async Task StopCoreAsync()
    {
        await Task.Yield(); // out of the caller's lock (and of a token callback) before cancelling
        _stopping.Cancel();
        _listener.Dispose();
        await _acceptLoop;
        await Task.WhenAll(_connections.Values);
        await _scheduler.StopAsync();
        _stopped.TrySetResult();
    }

    private Bottleneck Of(WanDirection direction) => direction switch
    {
        WanDirection.ToTarget => _toTarget,
        WanDirection.ToClient => _toClient,
        _ => throw new ArgumentOutOfRangeException(nameof(direction)),
    };

    private async Task AcceptLoopAsync()
    {
        var stopping = _stopping.Token;
        while (!stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(stopping);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException || stopping.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException ex)
            {
                // e.g. EMFILE: one failed accept must not end the link.
                _log.LogWarning("accept failed: {Reason}", ex.Message);
                continue;
            }
            Interlocked.Increment(ref _accepted);
            if (client.AddressFamily != AddressFamily.Unix) client.NoDelay = true;
            var connection = new RelayedConnection(client, Target, _toTarget, _toClient, _scheduler, _blackHole, _log, stopping);
            // Registered before it runs, so its own removal can never come first.
            var registered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _connections[connection] = RelayAsync(connection, registered.Task);
            registered.SetResult();
        }
    }

    private async Task RelayAsync(RelayedConnection connection, Task registered)
    {
        await registered;
        try
        {
            await connection.RunAsync();
        }
        catch (Exception ex)
        {
            // RunAsync handles connection failures itself; anything else is a bug worth seeing, but it
            // must not take down the other connections or leave the stop waiting.
            _log.LogError(ex, "relaying a connection failed");
        }
        finally
        {
            _connections.TryRemove(connection, out _);
        }
    }
}
