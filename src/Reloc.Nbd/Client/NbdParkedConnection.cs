using System.Diagnostics;

namespace Reloc.Nbd.Client;

/// <summary>
/// A connection to an NBD server held in the option phase (<see cref="NbdClient.ParkAsync"/>): TCP, greeting, TLS and
/// STRUCTURED_REPLY are done; <see cref="FinishAsync"/> names the export (SET_META_CONTEXT and GO, one round trip
/// pipelined). The spec lets a client take its time between options, but servers bound the handshake (Reloc's
/// <c>HandshakeTimeout</c>, 10 s by default): whoever parks one retires it (<see cref="DisposeAsync"/>) well before.
/// </summary>
public sealed class NbdParkedConnection : IAsyncDisposable
{
    private NbdClient? _client;
    private readonly long _openedAt;

    internal NbdParkedConnection(NbdClient client, long openedAt)
    {
        _client = client;
        _openedAt = openedAt;
        Options = client.Options;
    }

    /// <summary>Where it is connected, and how (its Export is empty).</summary>
    public NbdClientOptions Options { get; }

    /// <summary>Since it began to connect (the server's handshake timeout counts from about then).</summary>
    public TimeSpan Age => Stopwatch.GetElapsedTime(_openedAt);

    /// <summary>The connection negotiated TLS.</summary>
    public bool IsTls => _client?.IsTls ?? false;

    /// <summary>The server agreed to structured replies while parking.</summary>
    public bool StructuredReplies => _client?.StructuredReplies ?? false;

    /// <summary>A cheap look (no I/O): the server has closed it, or it was finished or disposed. False is no promise:
    /// finishing can still fail.</summary>
    public bool LooksClosed => _client is not { } c || c.ParkedLooksClosed();

    /// <summary>Finishes the handshake for <paramref name="export"/> and hands the connection over (once); this object
    /// is spent either way. Fails as <see cref="NbdClient.ConnectAsync"/> does (a refused export, a closed connection,
    /// a timeout after <see cref="NbdClientOptions.ConnectTimeout"/>).</summary>
    public async Task<NbdClient> FinishAsync(string export, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(export);
        var client = Interlocked.Exchange(ref _client, null) ?? throw new ObjectDisposedException(nameof(NbdParkedConnection), "already finished or disposed");
        await client.FinishParkedAsync(export, ct);
        return client;
    }

    /// <summary>NBD_OPT_ABORT and close (nothing when finished).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _client, null) is { } client) await client.AbortParkedAsync();
    }

    public override string ToString() => $"parked connection to {Options}";
}
