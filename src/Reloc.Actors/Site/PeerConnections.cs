using Microsoft.Extensions.Logging;
using Reloc.Actors.Security;
using Reloc.Nbd.Client;

namespace Reloc.Actors.Site;

/// <summary>
/// A <see cref="PeerConnectionPool"/> per other site that is up (reloc.site.peer-connections): a relocation's source
/// connections to that site come out of it (<see cref="For"/>), finished in one round trip. Kept in step with the
/// cluster by <see cref="PeerWatcher"/>; owned by the <see cref="SiteNode"/>, which disposes it after the actor system.
/// </summary>
public sealed class PeerConnections(PeerConnectionSettings settings, SiteTlsSettings tls, ILoggerFactory? loggers = null) : IAsyncDisposable
{
    private readonly object _gate = new();
    private readonly Dictionary<string, PeerConnectionPool> _pools = new(StringComparer.Ordinal);
    private readonly List<Task> _closing = []; // pools of sites gone, being disposed
    private bool _disposed;

    /// <summary>How this site connects to a peer whose NBD server is at <paramref name="baseUri"/> (scheme://host:port): exactly
    /// as a relocation's source connection does (<see cref="SiteTlsSettings.ForPeer"/>), without the export.</summary>
    public NbdClientOptions EndpointOf(string baseUri) => tls.ForPeer(NbdClientOptions.FromUri(baseUri.TrimEnd('/') + "/")) with { Export = "" };

    /// <summary>The pool whose connections are what <paramref name="options"/> (a source connection, with its export) asks
    /// for, or null (no pool for that peer, or pools are off).</summary>
    public PeerConnectionPool? For(NbdClientOptions options)
    {
        var endpoint = options with { Export = "" };
        lock (_gate) return _pools.Values.FirstOrDefault(p => p.Endpoint == endpoint);
    }

    /// <summary>The peers pooled now, and where.</summary>
    public IReadOnlyDictionary<string, NbdClientOptions> Pooled
    {
        get { lock (_gate) return _pools.ToDictionary(p => p.Key, p => p.Value.Endpoint); }
    }

    /// <summary>Keeps one pool per site of <paramref name="peers"/> (site → its NBD base URI) and closes the others
    /// (<see cref="Changes"/> decides).</summary>
    public void Keep(IReadOnlyDictionary<string, string> peers)
    {
        if (!settings.Enabled) return;
        lock (_gate)
        {
            if (_disposed) return;
            _closing.RemoveAll(t => t.IsCompleted);
            var wanted = peers.ToDictionary(p => p.Key, p => EndpointOf(p.Value), StringComparer.Ordinal);
            var (close, open) = Changes(_pools.ToDictionary(p => p.Key, p => p.Value.Endpoint), wanted);
            foreach (var site in close)
            {
                _closing.Add(_pools[site].DisposeAsync().AsTask());
                _pools.Remove(site);
            }
            foreach (var site in open)
                _pools[site] = new PeerConnectionPool(wanted[site], settings.Pool, loggers?.CreateLogger($"Reloc.PeerConnections.{site}"));
        }
    }

    /// <summary>Which pools to close (their site is gone, or its address changed) and which to open.</summary>
    public static (IReadOnlyList<string> Close, IReadOnlyList<string> Open) Changes(
        IReadOnlyDictionary<string, NbdClientOptions> current, IReadOnlyDictionary<string, NbdClientOptions> wanted)
    {
        var close = current.Where(c => !wanted.TryGetValue(c.Key, out var w) || w != c.Value).Select(c => c.Key).Order(StringComparer.Ordinal).ToList();
        var open = wanted.Where(w => !current.TryGetValue(w.Key, out var c) || c != w.Value).Select(w => w.Key).Order(StringComparer.Ordinal).ToList();
        return (close, open);
    }

    public async ValueTask DisposeAsync()
    {
        List<Task> all;
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            all = [.. _closing, .. _pools.Values.Select(p => p.DisposeAsync().AsTask())];
            _pools.Clear();
        }
        await Task.WhenAll(all);
    }
}
