using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Reloc.Nbd.Telemetry;
using Reloc.Nbd.Tls;

namespace Reloc.Nbd.Server;

/// <summary>
/// Accepts NBD clients on TCP and Unix sockets and serves the exports of an <see cref="ExportCatalog"/>.
/// Every accept loop and connection is a tracked task: <see cref="StopAsync"/> stops accepting, lets
/// each connection finish the requests it has in flight, flushes every export, and only then returns.
/// </summary>
public sealed class NbdServer : IAsyncDisposable
{
    private readonly ExportCatalog _catalog;
    private readonly NbdServerSettings _settings;
    private readonly ILogger _log;
    private readonly List<Socket> _listeners = [];
    private readonly List<Task> _acceptLoops = [];
    private readonly ConcurrentDictionary<NbdConnection, Task> _connections = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly NbdMetrics? _metrics;
    private readonly ServerTlsCredentials? _tls;
    private int _stopped;

    /// <param name="metrics">Where requests and connections are counted; null: nowhere.</param>
    public NbdServer(ExportCatalog catalog, NbdServerSettings? settings = null, ILoggerFactory? loggers = null, NbdMetrics? metrics = null)
    {
        _metrics = metrics;
        _catalog = catalog;
        _settings = (settings ?? new NbdServerSettings()).Validate();
        _log = (loggers ?? NullLoggerFactory.Instance).CreateLogger<NbdServer>();
        // Loaded now so that a broken certificates folder fails the start, not the first client.
        if (_settings.Tls.Enabled) _tls = new ServerTlsCredentials(_settings.Tls, _log);
    }

    public NbdServerSettings Settings => _settings;

    public ExportCatalog Catalog => _catalog;

    /// <summary>Where the server listens (with the real port when 0 was asked for).</summary>
    public IReadOnlyList<EndPoint> EndPoints => _listeners.Select(l => l.LocalEndPoint!).ToList();

    public EndPoint ListenTcp(IPEndPoint endPoint)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        return Listen(socket, endPoint);
    }

    public EndPoint ListenUnix(string path)
    {
        if (File.Exists(path)) File.Delete(path); // a stale socket file from an earlier run
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        return Listen(socket, new UnixDomainSocketEndPoint(path));
    }

    private EndPoint Listen(Socket socket, EndPoint endPoint)
    {
        try
        {
            socket.Bind(endPoint);
            socket.Listen(512);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        _listeners.Add(socket);
        _acceptLoops.Add(AcceptLoopAsync(socket));
        return socket.LocalEndPoint!;
    }

    private async Task AcceptLoopAsync(Socket listener)
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(_stopping.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException || _stopping.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException ex)
            {
                // e.g. EMFILE: log and keep accepting; one bad accept must not end the server.
                _log.LogWarning("accept failed: {Reason}", ex.Message);
                continue;
            }
            if (client.AddressFamily != AddressFamily.Unix) client.NoDelay = true;
            var peer = NbdPeer.FromEndPoint(client.RemoteEndPoint);
            var connection = new NbdConnection(new NetworkStream(client, ownsSocket: true), peer, _catalog, _settings, _log, _metrics, _tls);
            _connections[connection] = ServeAsync(connection);
        }
    }

    private async Task ServeAsync(NbdConnection connection)
    {
        await Task.Yield(); // leave the accept loop before the handshake starts
        try
        {
            await connection.RunAsync();
        }
        finally
        {
            await connection.DisposeAsync();
            _connections.TryRemove(connection, out _);
        }
    }

    /// <summary>Graceful stop: no new connections or requests, in-flight requests answered, exports flushed.</summary>
    public async Task StopAsync()
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 1) return;
        _stopping.Cancel();
        foreach (var l in _listeners) l.Dispose();
        await Task.WhenAll(_acceptLoops);
        foreach (var c in _connections.Keys) c.Stop();
        await Task.WhenAll(_connections.Values);
        foreach (var e in _catalog.All)
        {
            try { await e.Device.FlushAsync(CancellationToken.None); }
            catch (Exception ex) { _log.LogError(ex, "flushing export {Export} at shutdown failed", e.Name); }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _stopping.Dispose();
    }
}
