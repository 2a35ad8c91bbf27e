using System.Net;
using System.Net.Http.Json;
using System.Net.ServerSentEvents;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Reloc.Management;

/// <summary>The console's side of the management API (<see cref="ManagementApi"/>): typed calls over HTTP.
/// A refusal throws <see cref="ManagementException"/> with the node's reason; no node at the address throws
/// <see cref="NodeUnreachableException"/>.</summary>
public sealed class ManagementClient : IDisposable
{
    private readonly HttpClient _http;

    /// <param name="address">HOST:PORT of any site node's management endpoint.</param>
    /// <param name="timeout">For one request; streams (<see cref="WatchAsync"/>, <see cref="EventsAsync"/>) are not limited.</param>
    public ManagementClient(string address, TimeSpan timeout)
    {
        var (host, port) = ParseAddress(address);
        Address = $"{host}:{port}";
        RequestTimeout = timeout;
        var hostText = host.Contains(':') ? $"[{host}]" : host;
        _http = new HttpClient(new SocketsHttpHandler { ConnectTimeout = timeout })
        {
            BaseAddress = new Uri($"http://{hostText}:{port}"),
            Timeout = Timeout.InfiniteTimeSpan, // per call below: a stream is open for as long as it is followed
        };
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

    public async Task<IReadOnlyList<RelocationView>> RelocationsAsync(CancellationToken ct = default) =>
        await GetAsync(ManagementApi.Relocations, J.ListRelocationView, ct);

    public Task<RelocationStatusView> RelocationAsync(string disk, CancellationToken ct = default) =>
        GetAsync(ManagementApi.Relocation(disk), J.RelocationStatusView, ct);

    public Task<RelocationView> SetRateAsync(string disk, long rate, CancellationToken ct = default) =>
        PostAsync(ManagementApi.RelocationAction(disk, "rate"), JsonContent.Create(new RateRequest(rate), J.RateRequest), J.RelocationView, ct);

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
        catch (HttpRequestException ex) when (ex.InnerException is SocketException || ex.HttpRequestError == HttpRequestError.ConnectionError)
        {
            throw new NodeUnreachableException($"cannot reach a reloc node at {Address}: {ex.InnerException?.Message ?? ex.Message}");
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
            throw new ManagementException(problem?.Detail ?? problem?.Title ?? $"{request.Method} {request.RequestUri}: HTTP {(int)response.StatusCode} {response.ReasonPhrase}",
                response.StatusCode);
        }
    }

    public void Dispose() => _http.Dispose();
}

/// <summary>A request failed: refused with a reason (the node's problem detail), or the node did not answer.</summary>
public class ManagementException(string message, HttpStatusCode? status = null) : Exception(message)
{
    /// <summary>The HTTP status of the node's refusal (404 unknown, 409 conflict, ...); null when it sent none.</summary>
    public HttpStatusCode? Status { get; } = status;
}

/// <summary>No node answered at the address tried (connection refused, no route, timed out connecting).</summary>
public sealed class NodeUnreachableException(string message) : ManagementException(message);
