using System.Text.Json.Nodes;
using Reloc.Management;

namespace Reloc.Cli;

/// <summary>One command's connection to a node, opened at the first call (so a command line that is wrong
/// fails before anything is sent), and its output.</summary>
public sealed class Session : IAsyncDisposable
{
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(5);
    private ManagementClient? _client;

    public Session(string node, Output output, CancellationToken stopping)
    {
        try { ManagementClient.ParseAddress(node); }
        catch (ManagementException ex) { throw new UsageException(ex.Message); }
        Node = node;
        Out = output;
        Stopping = stopping;
    }

    public string Node { get; }
    public Output Out { get; }
    public CancellationToken Stopping { get; }

    public async Task<JsonNode?> CallAsync(string command, JsonObject? args = null)
    {
        if (_client is null)
        {
            try { _client = await ManagementClient.ConnectAsync(Node, ConnectTimeout, Stopping); }
            catch (ManagementException ex) when (!Stopping.IsCancellationRequested) { throw new UnreachableException(ex.Message); }
            Stopping.ThrowIfCancellationRequested();
        }
        return await _client.CallAsync(command, args, Stopping);
    }

    public async ValueTask DisposeAsync()
    {
        if (_client is not null) await _client.DisposeAsync();
    }
}
