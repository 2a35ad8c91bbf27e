using System.Net;
using System.Net.Http.Json;
using System.Net.ServerSentEvents;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Reloc.Management;

/// <summary>The console's side of the management API (<see cref="ManagementApi"/>): typed calls over HTTP.
/// A refusal throws <see cref="ManagementException"/> with the node's reason; no node at the address throws
/// <see cref="NodeUnreachableException"/>.</summary>
public sealed class ManagementClient : IDisposable
{
    private readonly HttpClient _http;

    /// <param name="address">HOST:PORT of any site node's management endpoint (plain HTTP), or its URL (http:// or https://).</param>
    /// <param name="timeout">For one request; streams (<see cref="WatchAsync"/>, <see cref="EventsAsync"/>) are not limited.</param>
    /// <param name="options">Credentials and the CA to trust; null: none.</param>
    public ManagementClient(string address, TimeSpan timeout, ManagementClientOptions? options = null)
    {
        var baseUri = ParseBase(address);
        Address = baseUri.Scheme == Uri.UriSchemeHttps ? baseUri.GetLeftPart(UriPartial.Authority) : $"{baseUri.Host.Trim('[', ']')}:{baseUri.Port}";
        RequestTimeout = timeout;
        var handler = new SocketsHttpHandler { ConnectTimeout = timeout };
        options?.Apply(handler);
        _http = new HttpClient(handler)
        {
            BaseAddress = baseUri,
            Timeout = Timeout.InfiniteTimeSpan, // per call below: a stream is open for as long as it is followed
        };
        if (options?.Token is { Length: > 0 } token)
            _http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
    }

    /// <summary>http(s)://HOST:PORT as given, or HOST:PORT as http://HOST:PORT.</summary>
    public static Uri ParseBase(string address)
    {
        if (address.Contains("://", StringComparison.Ordinal))
        {
            if (!Uri.TryCreate(address, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)
                || uri.AbsolutePath is not ("/" or ""))
                throw new ManagementException($"node URL '{address}': expected http://HOST:PORT or https://HOST:PORT");
            return new Uri(uri.GetLeftPart(UriPartial.Authority));
        }
        var (host, port) = ParseAddress(address);
        return new Uri($"http://{(host.Contains(':') ? $"[{host}]" : host)}:{port}");
    }

    public string Address { get; }
    public TimeSpan RequestTimeout { get; }

    public static (string Host, int Port) ParseAddress(string address)
    {
        int colon = address.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(address[(colon + 1)..], out int port) || port is <= 0 or > 65535)
            throw new ManagementException($"node address '{address}': expected HOST:PORT");
        return (address[..colon].Trim('[', ']'), port);
    }

    private static ManagementJson J => ManagementJson.Default;

    public Task<ClusterView> ClusterAsync(CancellationToken ct = default) => GetAsync(ManagementApi.Cluster, J.ClusterView, ct);

    /// <param name="member">A member's address (akka.tcp://reloc@HOST:PORT) or its site name.</param>
    public Task<MemberChange> LeaveAsync(string member, CancellationToken ct = default) =>
        PostAsync(ManagementApi.Member(member, "leave"), null, J.MemberChange, ct);

    public Task<MemberChange> DownAsync(string member, CancellationToken ct = default) =>
        PostAsync(ManagementApi.Member(member, "down"), null, J.MemberChange, ct);

    public Task<DiskListView> DisksAsync(CancellationToken ct = default) => GetAsync(ManagementApi.Disks, J.DiskListView, ct);

    public Task<DiskView> DiskAsync(string name, CancellationToken ct = default) => GetAsync(ManagementApi.Disk(name), J.DiskView, ct);

    /// <summary>Creating a disk from a large image can take long: no request timeout.</summary>
    public Task<DiskCopy> CreateDiskAsync(CreateDiskRequest request, CancellationToken ct = default) =>
        PostAsync(ManagementApi.Disks, JsonContent.Create(request, J.CreateDiskRequest), J.DiskCopy, ct, Timeout.InfiniteTimeSpan);

    /// <param name="force">Delete even while guests are connected (their connections then fail every request).</param>
    public Task<DiskDeleted> DeleteDiskAsync(string name, CancellationToken ct = default, bool force = false) =>
        SendAsync(new HttpRequestMessage(HttpMethod.Delete, ManagementApi.Disk(name) + (force ? "?force=true" : "")), J.DiskDeleted, ct);

    public Task<RelocationAccepted> RelocateAsync(RelocateRequest request, CancellationToken ct = default) =>
        PostAsync(ManagementApi.Relocations, JsonContent.Create(request, J.RelocateRequest), J.RelocationAccepted, ct);

    /// <summary>Relocate every disk <paramref name="site"/> owns now, through the admission queue.</summary>
    public Task<DrainView> DrainAsync(string site, DrainRequest request, CancellationToken ct = default) =>
        PostAsync(ManagementApi.SiteDrain(site), JsonContent.Create(request, J.DrainRequest), J.DrainView, ct);

    public async Task<IReadOnlyList<RelocationView>> RelocationsAsync(CancellationToken ct = default) =>
        await GetAsync(ManagementApi.Relocations, J.ListRelocationView, ct);

    public Task<RelocationStatusView> RelocationAsync(string disk, CancellationToken ct = default) =>
        GetAsync(ManagementApi.Relocation(disk), J.RelocationStatusView, ct);

    public Task<RelocationView> SetRateAsync(string disk, long rate, CancellationToken ct = default) =>
        PostAsync(ManagementApi.RelocationAction(disk, "rate"), JsonContent.Create(new RateRequest(rate), J.RateRequest), J.RelocationView, ct);

    public Task<RelocationView> SetWeightAsync(string disk, int weight, CancellationToken ct = default) =>
        PostAsync(ManagementApi.RelocationAction(disk, "weight"), JsonContent.Create(new WeightRequest(weight), J.WeightRequest), J.RelocationView, ct);

    public Task<LinkListView> LinksAsync(CancellationToken ct = default) => GetAsync(ManagementApi.Links, J.LinkListView, ct);

    public Task<LinkView> SetLinkAsync(string siteA, string siteB, long bandwidth, CancellationToken ct = default) =>
        SendAsync(new HttpRequestMessage(HttpMethod.Put, ManagementApi.Link(siteA, siteB)) { Content = JsonContent.Create(new LinkRequest(bandwidth), J.LinkRequest) },
            J.LinkView, ct);

    public Task<RelocationView> HandoverAsync(string disk, CancellationToken ct = default) =>
        PostAsync(ManagementApi.RelocationAction(disk, "handover"), null, J.RelocationView, ct);

    /// <summary>A cancel waits for the sites to undo their steps: up to a minute.</summary>
    public Task<RelocationCancelled> CancelAsync(string disk, CancellationToken ct = default) =>
        PostAsync(ManagementApi.RelocationAction(disk, "cancel"), null, J.RelocationCancelled, ct, TimeSpan.FromSeconds(70));

    /// <summary>The relocation events this node recorded after <paramref name="after"/> (a Seq), oldest first, at most <paramref name="limit"/>;
    /// with <paramref name="newest"/> (and no <paramref name="after"/>) the newest <paramref name="limit"/>.</summary>
    public Task<EventListView> EventsAsync(long? after = null, int limit = 100, bool newest = false, CancellationToken ct = default) =>
        GetAsync($"{ManagementApi.Events}?limit={limit}{(after is { } a ? $"&after={a}" : "")}{(newest ? "&newest=true" : "")}", J.EventListView, ct);

    /// <summary>Follows the cluster's relocation events (server-sent events): those after <paramref name="after"/> first, then
    /// each new one as it happens, until cancelled.</summary>
    public async IAsyncEnumerable<RelocationEventView> FollowEventsAsync(long? after = null, [EnumeratorCancellation] CancellationToken ct = default)
    {
        await foreach (var item in StreamAsync($"{ManagementApi.Events}?follow=true{(after is { } a ? $"&after={a}" : "")}", ct))
            if (item.EventType == ManagementApi.SseRelocationEvent && JsonSerializer.Deserialize(item.Data, J.RelocationEventView) is { } e)
                yield return e;
    }

    /// <summary>The newest <paramref name="limit"/> changes asked of the cluster's APIs (allowed or refused), oldest first.</summary>
    public Task<AuditListView> AuditAsync(int limit = 50, CancellationToken ct = default) =>
        GetAsync($"{ManagementApi.Audit}?limit={limit}", J.AuditListView, ct);

    public Task<DiskHistoryView> DiskHistoryAsync(string disk, CancellationToken ct = default) =>
        GetAsync(ManagementApi.DiskHistory(disk), J.DiskHistoryView, ct);

    /// <summary>
    /// Follows a relocation's progress stream (server-sent events): one sample per look (about two a second)
    /// until the relocation is no longer listed, then its <see cref="ProgressDone"/>. Ends when the node ends
    /// the stream; a broken stream throws (the caller may follow again).
    /// </summary>
    public async IAsyncEnumerable<object> WatchAsync(string disk, TimeSpan? interval = null, [EnumeratorCancellation] CancellationToken ct = default)
    {
        var path = ManagementApi.RelocationProgress(disk) + (interval is { } i ? $"?intervalMs={(int)i.TotalMilliseconds}" : "");
        await foreach (var item in StreamAsync(path, ct))
        {
            object? value = item.EventType switch
            {
                ManagementApi.SseProgress => JsonSerializer.Deserialize(item.Data, J.ProgressSample),
                ManagementApi.SseDone => JsonSerializer.Deserialize(item.Data, J.ProgressDone),
                ManagementApi.SseProblem => throw new ManagementException(JsonSerializer.Deserialize(item.Data, J.Problem)?.Detail ?? "the progress stream failed"),
                _ => null, // a newer node's event kind: not ours to show
            };
            if (value is not null) yield return value;
            if (value is ProgressDone) yield break;
        }
    }

    /// <summary>Opens a server-sent event stream and yields its events (event type, JSON data).</summary>
    public async IAsyncEnumerable<SseItem<string>> StreamAsync(string path, [EnumeratorCancellation] CancellationToken ct = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Accept.ParseAdd("text/event-stream");
        using var response = await CallAsync(request, HttpCompletionOption.ResponseHeadersRead, Timeout.InfiniteTimeSpan, ct);
        await using var stream = await response.Content.ReadAsStreamAsync(ct);
        await foreach (var item in SseParser.Create(stream).EnumerateAsync(ct))
            yield return item;
    }

    /// <summary>GET of a JSON resource by path (for resources without a typed call here, e.g. history).</summary>
    public async Task<T> GetAsync<T>(string path, JsonTypeInfo<T> type, CancellationToken ct = default) =>
        await SendAsync(new HttpRequestMessage(HttpMethod.Get, path), type, ct);

    private Task<T> PostAsync<T>(string path, HttpContent? body, JsonTypeInfo<T> type, CancellationToken ct, TimeSpan? timeout = null) =>
        SendAsync(new HttpRequestMessage(HttpMethod.Post, path) { Content = body }, type, ct, timeout);

    private async Task<T> SendAsync<T>(HttpRequestMessage request, JsonTypeInfo<T> type, CancellationToken ct, TimeSpan? timeout = null)
    {
        using (request)
        using (var response = await CallAsync(request, HttpCompletionOption.ResponseContentRead, timeout ?? RequestTimeout, ct))
            return await response.Content.ReadFromJsonAsync(type, ct) ?? throw new ManagementException($"{request.RequestUri}: the node sent an empty answer");
    }

    /// <summary>Sends; a problem answer becomes a <see cref="ManagementException"/> with its detail.</summary>
    private async Task<HttpResponseMessage> CallAsync(HttpRequestMessage request, HttpCompletionOption completion, TimeSpan timeout, CancellationToken ct)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        if (timeout != Timeout.InfiniteTimeSpan) cts.CancelAfter(timeout);
        HttpResponseMessage response;
        try { response = await _http.SendAsync(request, completion, cts.Token); }
        catch (HttpRequestException ex) when (ex.HttpRequestError == HttpRequestError.SecureConnectionError)
        {
            throw new ManagementException($"TLS with {Address} failed: {ex.InnerException?.Message ?? ex.Message} " +
                                          "(an https node needs --ca-cert for a private CA; a plain http node needs http://)");
        }
        catch (HttpRequestException ex) when (ex.InnerException is SocketException || ex.HttpRequestError == HttpRequestError.ConnectionError)
        {
            throw new NodeUnreachableException($"cannot reach a reloc node at {Address}: {ex.InnerException?.Message ?? ex.Message}");
        }
        catch (HttpRequestException ex) when (ex.HttpRequestError is HttpRequestError.InvalidResponse or HttpRequestError.ResponseEnded)
        {
            throw new ManagementException($"{Address} did not answer as HTTP: {ex.Message} (an https node needs https://)");
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new ManagementException($"{request.Method} {request.RequestUri}: the node did not answer within {timeout.TotalSeconds:0} s");
        }
        if (response.IsSuccessStatusCode) return response;
        using (response)
        {
            Problem? problem = null;
            try { problem = await response.Content.ReadFromJsonAsync(J.Problem, ct); }
            catch (Exception ex) when (ex is JsonException or NotSupportedException) { } // not a problem document: say the status
            var what = $"{request.Method} {(request.RequestUri is { IsAbsoluteUri: true } uri ? uri.PathAndQuery : request.RequestUri)}";
            throw response.StatusCode switch
            {
                // The node's answer to these says little (no body, or its status text): say what to do instead.
                HttpStatusCode.Unauthorized => new ManagementException($"not authenticated: {what} needs credentials the node accepts " +
                    "(--token-file, $RELOC_TOKEN_FILE, $RELOC_TOKEN or --client-cert)", response.StatusCode),
                HttpStatusCode.Forbidden => new ManagementException($"not allowed: {what} needs the operator role; these credentials have only the viewer role",
                    response.StatusCode),
                _ => new ManagementException(problem?.Detail ?? problem?.Title ?? $"{what}: HTTP {(int)response.StatusCode} {response.ReasonPhrase}",
                    response.StatusCode),
            };
        }
    }

    public void Dispose() => _http.Dispose();
}

/// <summary>
/// How the console authenticates and whom it trusts: <paramref name="Token"/> a bearer token (viewer or operator, per the
/// node's tokens file); <paramref name="CaCert"/> a PEM CA to trust for an https node (instead of the system's);
/// <paramref name="ClientCert"/>/<paramref name="ClientKey"/> a PEM certificate and key for certificate authentication.
/// </summary>
public sealed record ManagementClientOptions(string? Token = null, string? CaCert = null, string? ClientCert = null, string? ClientKey = null)
{
    public void Apply(SocketsHttpHandler handler)
    {
        if (CaCert is not null)
        {
            X509Certificate2 ca;
            try { ca = X509CertificateLoader.LoadCertificateFromFile(CaCert); }
            catch (Exception ex) when (ex is CryptographicException or IOException) { throw new ManagementException($"--ca-cert {CaCert}: {ex.Message}"); }
            // Only this CA (and the host name still checked): a private CA need not be in the system's store.
            handler.SslOptions.CertificateChainPolicy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                CustomTrustStore = { ca },
                RevocationMode = X509RevocationMode.NoCheck,
            };
        }
        if (ClientCert is not null || ClientKey is not null)
        {
            if (ClientCert is null || ClientKey is null) throw new ManagementException("--client-cert and --client-key go together");
            try { handler.SslOptions.ClientCertificates = [X509Certificate2.CreateFromPemFile(ClientCert, ClientKey)]; }
            catch (Exception ex) when (ex is CryptographicException or IOException) { throw new ManagementException($"--client-cert {ClientCert}: {ex.Message}"); }
        }
    }
}

/// <summary>A request failed: refused with a reason (the node's problem detail), or the node did not answer.</summary>
public class ManagementException(string message, HttpStatusCode? status = null) : Exception(message)
{
    /// <summary>The HTTP status of the node's refusal (404 unknown, 409 conflict, ...); null when it sent none.</summary>
    public HttpStatusCode? Status { get; } = status;
}

/// <summary>No node answered at the address tried (connection refused, no route, timed out connecting).</summary>
public sealed class NodeUnreachableException(string message) : ManagementException(message);
