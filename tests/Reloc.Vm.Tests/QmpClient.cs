using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Reloc.Vm.Tests;

/// <summary>
/// A minimal QMP client: JSON lines over a Unix socket QEMU connected to (the test listens, QEMU is the
/// client, so there is no socket file to poll for). One command at a time, matched by id; events are kept
/// with their arrival time and can be awaited, including ones that arrived before the wait began.
/// </summary>
public sealed class QmpClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly StreamReader _reader;
    private readonly Stream _stream;
    private readonly SemaphoreSlim _one = new(1, 1);
    private readonly List<QmpEvent> _events = [];
    private readonly Func<double> _clock;
    private TaskCompletionSource<JsonObject> _reply = NewReply();
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Task _pump;
    private long _id, _waitingFor;
    private Exception? _closed;

    private QmpClient(Socket socket, string name, Func<double> clock)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = new StreamReader(_stream, Encoding.UTF8);
        _clock = clock;
        Name = name;
        _pump = PumpAsync();
    }

    public string Name { get; }

    public IReadOnlyList<QmpEvent> Events { get { lock (_events) return _events.ToList(); } }

    /// <summary>Takes the connection QEMU made to <paramref name="listener"/>, reads the greeting and enters command mode.</summary>
    public static async Task<QmpClient> AcceptAsync(Socket listener, string name, Func<double> clock, CancellationToken ct)
    {
        var socket = await listener.AcceptAsync(ct);
        var client = new QmpClient(socket, name, clock);
        await client.ExecuteAsync("qmp_capabilities");
        return client;
    }

    private static TaskCompletionSource<JsonObject> NewReply() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private async Task PumpAsync()
    {
        try
        {
            while (await _reader.ReadLineAsync() is { } line)
            {
                if (string.IsNullOrWhiteSpace(line)) continue;
                var msg = JsonNode.Parse(line)!.AsObject();
                if (msg.ContainsKey("event"))
                {
                    var ev = new QmpEvent(_clock(), msg["event"]!.GetValue<string>(), msg["data"]?.ToJsonString() ?? "", msg["data"] as JsonObject);
                    TaskCompletionSource changed;
                    lock (_events)
                    {
                        _events.Add(ev);
                        changed = _changed;
                        _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
                    }
                    changed.TrySetResult();
                }
                else if (msg.ContainsKey("return") || msg.ContainsKey("error"))
                {
                    // A late reply to a command that timed out must not answer the next one.
                    if (msg["id"] is JsonValue id && id.TryGetValue<long>(out var n) && n == Interlocked.Read(ref _waitingFor))
                        _reply.TrySetResult(msg);
                }
                // else: the greeting
            }
            _closed = new IOException($"QMP connection to {Name} closed");
        }
        catch (Exception ex)
        {
            _closed = new IOException($"QMP connection to {Name} failed: {ex.Message}", ex);
        }
        _reply.TrySetException(_closed);
        lock (_events) _changed.TrySetResult();
    }

    /// <summary>Runs a command; returns its "return" value, or throws <see cref="QmpException"/> with QEMU's error.</summary>
    public async Task<JsonNode?> ExecuteAsync(string command, object? arguments = null, TimeSpan? timeout = null)
    {
        await _one.WaitAsync();
        try
        {
            if (_closed is not null) throw _closed;
            _reply = NewReply();
            var id = Interlocked.Increment(ref _id);
            Interlocked.Exchange(ref _waitingFor, id);
            var request = new JsonObject { ["execute"] = command, ["id"] = id };
            if (arguments is not null) request["arguments"] = JsonSerializer.SerializeToNode(arguments);
            var bytes = Encoding.UTF8.GetBytes(request.ToJsonString() + "\n");
            await _stream.WriteAsync(bytes);
            JsonObject reply;
            try
            {
                reply = await _reply.Task.WaitAsync(timeout ?? TimeSpan.FromSeconds(30));
            }
            catch (TimeoutException)
            {
                throw new TimeoutException($"{Name}: no reply to QMP {command} within {timeout ?? TimeSpan.FromSeconds(30)}");
            }
            if (reply["error"] is JsonObject error)
                throw new QmpException(command, $"{error["class"]}: {error["desc"]}");
            return reply["return"];
        }
        finally
        {
            _one.Release();
        }
    }

    /// <summary>The first event named <paramref name="name"/> matching <paramref name="match"/>, received at any time.</summary>
    public async Task<QmpEvent> WaitForEventAsync(string name, Func<QmpEvent, bool>? match, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        while (true)
        {
            Task changed;
            lock (_events)
            {
                var found = _events.FirstOrDefault(e => e.Name == name && (match?.Invoke(e) ?? true));
                if (found is not null) return found;
                if (_closed is not null) throw new IOException($"{Name}: QMP closed before event {name}: {_closed.Message}");
                changed = _changed.Task;
            }
            try { await changed.WaitAsync(cts.Token); }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"{Name}: no QMP event {name} within {timeout}; events so far: {string.Join(", ", Events.Select(e => e.ToString()))}");
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        try { _socket.Shutdown(SocketShutdown.Both); } catch (SocketException) { } catch (ObjectDisposedException) { }
        _stream.Dispose();
        await _pump.WaitAsync(TimeSpan.FromSeconds(5)).ContinueWith(_ => { });
    }
}

public sealed record QmpEvent(double At, string Name, string DataJson, JsonObject? Data)
{
    public string? Status => Data?["status"]?.GetValue<string>();
    public override string ToString() => $"{At:F3}s {Name} {DataJson}";
}

public sealed class QmpException(string command, string error) : Exception($"QMP {command} failed: {error}")
{
    public string Error { get; } = error;
}
