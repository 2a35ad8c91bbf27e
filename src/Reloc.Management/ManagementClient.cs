using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Reloc.Management;

/// <summary>The console's side of the management protocol: one connection, one request at a time.</summary>
public sealed class ManagementClient : IAsyncDisposable
{
    private readonly TcpClient _tcp;
    private readonly StreamReader _reader;
    private readonly StreamWriter _writer;

    private ManagementClient(TcpClient tcp)
    {
        _tcp = tcp;
        var stream = tcp.GetStream();
        _reader = new StreamReader(stream, new UTF8Encoding(false));
        _writer = new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true, NewLine = "\n" };
    }

    /// <summary>Connects to HOST:PORT; the exception names the address tried.</summary>
    public static async Task<ManagementClient> ConnectAsync(string address, TimeSpan timeout, CancellationToken ct = default)
    {
        var (host, port) = ParseAddress(address);
        var tcp = new TcpClient { NoDelay = true };
        try
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(timeout);
            await tcp.ConnectAsync(host, port, cts.Token);
            return new ManagementClient(tcp);
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException)
        {
            tcp.Dispose();
            throw new ManagementException($"cannot reach a reloc node at {host}:{port}: {(ex is OperationCanceledException ? "timed out" : ex.Message)}");
        }
    }

    public static (string Host, int Port) ParseAddress(string address)
    {
        int colon = address.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(address[(colon + 1)..], out int port) || port is <= 0 or > 65535)
            throw new ManagementException($"node address '{address}': expected HOST:PORT");
        return (address[..colon].Trim('[', ']'), port);
    }

    /// <summary>Sends one request; returns its result, or throws <see cref="ManagementException"/> with the node's reason.</summary>
    public async Task<JsonNode?> CallAsync(string command, JsonObject? args = null, CancellationToken ct = default)
    {
        await _writer.WriteLineAsync(ManagementWire.Encode(new ManagementWire.Request(command, args)).AsMemory(), ct);
        var line = await _reader.ReadLineAsync(ct) ?? throw new ManagementException("the node closed the connection");
        var reply = JsonSerializer.Deserialize<ManagementWire.Reply>(line, ManagementWire.Json)
                    ?? throw new ManagementException("the node sent an empty reply");
        if (!reply.Ok) throw new ManagementException(reply.Error ?? "refused");
        return reply.Result;
    }

    public ValueTask DisposeAsync()
    {
        _tcp.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>A request failed: unreachable node, or refused with a reason.</summary>
public sealed class ManagementException(string message) : Exception(message);
