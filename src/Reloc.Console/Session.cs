using Reloc.Management;

namespace Reloc.Cli;

/// <summary>One command's client of a node's management API, and its output. The address is checked at
/// once (so a command line that is wrong fails before anything is sent).</summary>
public sealed class Session : IAsyncDisposable
{
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(30);
    private readonly ManagementClient _client;

    public Session(string node, Output output, CancellationToken stopping, ManagementClientOptions? options = null)
    {
        try { _client = new ManagementClient(node, RequestTimeout, options); }
        catch (ManagementException ex) { throw new UsageException(ex.Message); }
        Node = node;
        Out = output;
        Stopping = stopping;
    }

    public string Node { get; }
    public Output Out { get; }
    public CancellationToken Stopping { get; }

    /// <summary>Calls the node; no node at the address is <see cref="UnreachableException"/> (exit code 3).</summary>
    public async Task<T> CallAsync<T>(Func<ManagementClient, CancellationToken, Task<T>> call)
    {
        try { return await call(_client, Stopping); }
        catch (NodeUnreachableException ex) when (!Stopping.IsCancellationRequested) { throw new UnreachableException(ex.Message); }
    }

    /// <summary>Follows a stream; no node at the address is <see cref="UnreachableException"/>.</summary>
    public async IAsyncEnumerable<T> CallStream<T>(Func<ManagementClient, IAsyncEnumerable<T>> stream)
    {
        await using var items = stream(_client).GetAsyncEnumerator(Stopping);
        while (true)
        {
            try { if (!await items.MoveNextAsync()) yield break; }
            catch (NodeUnreachableException ex) when (!Stopping.IsCancellationRequested) { throw new UnreachableException(ex.Message); }
            yield return items.Current;
        }
    }

    public ManagementClient Client => _client;

    public ValueTask DisposeAsync()
    {
        _client.Dispose();
        return ValueTask.CompletedTask;
    }
}
