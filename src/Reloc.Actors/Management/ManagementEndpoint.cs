using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Akka.Actor;
using Akka.Cluster;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Reloc.Actors.Site;
using Reloc.Management;
using Reloc.Actors.Coordinator;
using static Reloc.Actors.Coordinator.RelocationProtocol;

namespace Reloc.Actors.Management;

/// <summary>
/// A site node's management endpoint (<see cref="ManagementWire"/>): what the <c>reloc</c> console talks
/// to, as Petabridge.Cmd's host is for <c>pbm</c>. Any node answers for the whole cluster: disk commands go
/// to the sites (the disks' authority), relocation commands to the migration coordinator.
/// </summary>
public sealed class ManagementEndpoint : IAsyncDisposable
{
    private const int MaxConnections = 32;
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan CreateTimeout = TimeSpan.FromMinutes(30); // a disk from a large image file

    private readonly ActorSystem _system;
    private readonly IActorRef _coordinator;
    private readonly ILogger _log;
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stopping = new();
    private readonly SemaphoreSlim _connections = new(MaxConnections, MaxConnections);
    private readonly List<Task> _running = [];
    private readonly Task _acceptLoop;

    private ManagementEndpoint(ActorSystem system, IActorRef coordinator, TcpListener listener, ILogger log)
    {
        _system = system;
        _coordinator = coordinator;
        _listener = listener;
        _log = log;
        _acceptLoop = AcceptAsync();
    }

    public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndpoint;

    /// <param name="coordinator">The migration coordinator (this node's singleton proxy).</param>
    public static ManagementEndpoint Start(ActorSystem system, IActorRef coordinator, IPEndPoint listen, ILoggerFactory? loggers = null)
    {
        var listener = new TcpListener(listen);
        listener.Start();
        return new ManagementEndpoint(system, coordinator, listener, (loggers ?? NullLoggerFactory.Instance).CreateLogger<ManagementEndpoint>());
    }

    private async Task AcceptAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                await _connections.WaitAsync(_stopping.Token);
                client = await _listener.AcceptTcpClientAsync(_stopping.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException) { break; }
            var task = ServeAsync(client);
            lock (_running)
            {
                _running.RemoveAll(t => t.IsCompleted);
                _running.Add(task);
            }
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        try
        {
            using (client)
            {
                var stream = client.GetStream();
                using var reader = new StreamReader(stream, new UTF8Encoding(false), false, 4096);
                await using var writer = new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true, NewLine = "\n" };
                while (!_stopping.IsCancellationRequested)
                {
                    var line = await ReadLineAsync(reader, _stopping.Token);
                    if (line is null) break;
                    var reply = await HandleLineAsync(line);
                    await writer.WriteLineAsync(ManagementWire.Encode(reply).AsMemory(), _stopping.Token);
                }
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException or InvalidDataException)
        {
            _log.LogDebug("management connection closed: {Reason}", ex.Message);
        }
        finally
        {
            _connections.Release();
        }
    }

    /// <summary>One request line, bounded: a peer that sends a megabyte without a newline is cut off.</summary>
    private static async Task<string?> ReadLineAsync(StreamReader reader, CancellationToken ct)
    {
        var line = new StringBuilder();
        var one = new char[1];
        while (true)
        {
            int n = await reader.ReadAsync(one.AsMemory(), ct);
            if (n == 0) return line.Length == 0 ? null : line.ToString();
            if (one[0] == '\n') return line.ToString().TrimEnd('\r');
            if (line.Length >= ManagementWire.MaxLine) throw new InvalidDataException("request line too long");
            line.Append(one[0]);
        }
    }

    public async Task<ManagementWire.Reply> HandleLineAsync(string line)
    {
        ManagementWire.Request? request;
        try { request = JsonSerializer.Deserialize<ManagementWire.Request>(line, ManagementWire.Json); }
        catch (JsonException ex) { return new ManagementWire.Reply(false, Error: $"malformed request: {ex.Message}"); }
        if (request?.Command is null) return new ManagementWire.Reply(false, Error: "malformed request: no command");
        try
        {
            return new ManagementWire.Reply(true, await HandleAsync(request.Command, request.Args ?? []));
        }
        catch (ManagementException ex)
        {
            return new ManagementWire.Reply(false, Error: ex.Message);
        }
        catch (AskTimeoutException)
        {
            return new ManagementWire.Reply(false, Error: $"{request.Command}: the cluster did not answer within {AskTimeout.TotalSeconds:0} s (is the coordinator's node up?)");
        }
        catch (Exception ex) when (ex is FormatException or InvalidOperationException or JsonException or ArgumentException)
        {
            return new ManagementWire.Reply(false, Error: $"{request.Command}: {ex.Message}");
        }
    }

    private Task<JsonNode?> HandleAsync(string command, JsonObject args) => command switch
    {
        "cluster.show" => Result(ClusterShow()),
        "cluster.leave" => Result(ClusterChange(args, leave: true)),
        "cluster.down" => Result(ClusterChange(args, leave: false)),
        "disk.create" => DiskCreateAsync(args),
        "disk.list" => DiskListAsync(),
        "disk.show" => DiskShowAsync(Str(args, "name")),
        "disk.delete" => DiskDeleteAsync(Str(args, "name")),
        "relocate" => RelocateAsync(args),
        "relocation.list" => CoordinatorAsync<RelocationList>(new GetRelocations(), l => l.Relocations),
        "relocation.status" => CoordinatorAsync<RelocationStatus>(new GetRelocationStatus(Str(args, "disk")), s => s),
        "relocation.rate" => CoordinatorAsync<RelocationInfo>(new SetRelocationRate(Str(args, "disk"), Num(args, "rate")), i => i),
        "relocation.handover" => CoordinatorAsync<RelocationInfo>(new RequestHandover(Str(args, "disk")), i => i),
        "relocation.cancel" => CoordinatorAsync<RelocationCancelled>(new CancelRelocation(Str(args, "disk")), c => c, TimeSpan.FromSeconds(60)),
        _ => throw new ManagementException($"unknown command '{command}'"),
    };

    private static Task<JsonNode?> Result(object value) => Task.FromResult(Node(value));

    private static JsonNode? Node(object? value) => JsonSerializer.SerializeToNode(value, ManagementWire.Json);

    private static string Str(JsonObject args, string key) =>
        args[key]?.GetValue<string>() is { Length: > 0 } s ? s : throw new ManagementException($"missing argument '{key}'");

    private static long Num(JsonObject args, string key, long? fallback = null) =>
        args[key] is { } n ? n.GetValue<long>() : fallback ?? throw new ManagementException($"missing argument '{key}'");

    private object ClusterShow()
    {
        var cluster = Cluster.Get(_system);
        var state = cluster.State;
        var oldest = state.Members.Where(m => m.Status == MemberStatus.Up).OrderBy(m => m, Member.AgeOrdering).FirstOrDefault();
        return new
        {
            Self = cluster.SelfAddress.ToString(),
            Leader = state.Leader?.ToString(),
            Coordinator = oldest?.Address.ToString(),
            Members = state.Members.Select(m => new
            {
                Address = m.Address.ToString(),
                Status = m.Status.ToString(),
                Site = m.Roles.FirstOrDefault(),
                Reachable = !state.Unreachable.Contains(m),
            }).ToList(),
        };
    }

    private object ClusterChange(JsonObject args, bool leave)
    {
        var text = Str(args, "address");
        var cluster = Cluster.Get(_system);
        var member = cluster.State.Members.FirstOrDefault(m => m.Address.ToString() == text || m.Roles.Contains(text))
                     ?? throw new ManagementException($"no cluster member '{text}' (give its address or site name)");
        if (leave) cluster.Leave(member.Address);
        else cluster.Down(member.Address);
        return new { Address = member.Address.ToString(), Site = member.Roles.FirstOrDefault(), Action = leave ? "leaving" : "downed" };
    }

    private ActorSelection SiteOf(string site)
    {
        var sites = SiteDirectory.Sites(_system);
        if (!sites.Contains(site)) throw new ManagementException($"unknown site '{site}' (sites: {string.Join(", ", sites)})");
        return SiteDirectory.SiteOf(_system, site);
    }

    private async Task<JsonNode?> DiskCreateAsync(JsonObject args)
    {
        var name = Str(args, "name");
        var site = Str(args, "site");
        var from = args["from"]?.GetValue<string>();
        long size = Num(args, "size", from is null ? null : 0);
        if (from is null && size <= 0) throw new ManagementException($"disk size must be positive, not {size}");
        var all = await SiteDirectory.ListDisks(_system, AskTimeout);
        var existing = all.Answered.SelectMany(l => l.Disks).FirstOrDefault(d => d.Name == name);
        if (existing is not null) throw new ManagementException($"disk '{name}' already exists (on site {existing.Site})");
        var reply = await SiteOf(site).Ask<object>(new SiteProtocol.CreateDisk(name, size, from), CreateTimeout);
        return reply switch
        {
            SiteProtocol.DiskInfo info => Node(info),
            SiteProtocol.Refused r => throw new ManagementException(r.Reason),
            _ => throw new ManagementException($"unexpected reply {reply.GetType().Name}"),
        };
    }

    private async Task<JsonNode?> DiskListAsync()
    {
        var all = await SiteDirectory.ListDisks(_system, AskTimeout);
        return Node(new { Disks = all.Answered.SelectMany(l => l.Disks).OrderBy(d => d.Name).ThenBy(d => d.Site).ToList(), UnreachableSites = all.Missing });
    }

    private async Task<JsonNode?> DiskShowAsync(string name)
    {
        var all = await SiteDirectory.ListDisks(_system, AskTimeout);
        var copies = all.Answered.SelectMany(l => l.Disks).Where(d => d.Name == name).OrderBy(d => d.Site).ToList();
        if (copies.Count == 0)
            throw new ManagementException($"unknown disk '{name}'{(all.Missing.Count > 0 ? $" (sites not answering: {string.Join(", ", all.Missing)})" : "")}");
        var owner = Reconciler.OwnerOf(copies) ?? copies[0];
        RelocationInfo? relocation = null;
        try
        {
            var list = await _coordinator.Ask<RelocationList>(new GetRelocations(), AskTimeout);
            relocation = list.Relocations.FirstOrDefault(r => r.Disk == name);
        }
        catch (AskTimeoutException) { } // shown without relocation detail
        return Node(new
        {
            Name = name, owner.Size, Owner = owner.Site, owner.Epoch, owner.Phase, owner.LocalBytes, owner.NbdUri,
            Relocation = relocation, Copies = copies,
        });
    }

    private async Task<JsonNode?> DiskDeleteAsync(string name)
    {
        var all = await SiteDirectory.ListDisks(_system, AskTimeout);
        var copies = all.Answered.SelectMany(l => l.Disks).Where(d => d.Name == name).ToList();
        if (copies.Count == 0) throw new ManagementException($"unknown disk '{name}'");
        var owned = Reconciler.OwnerOf(copies) is { Phase: SiteDisk.Owned } owner ? owner
                    : throw new ManagementException($"disk '{name}' is relocating ({string.Join(", ", copies.Select(c => $"{c.Phase} at {c.Site}"))}): cancel or finish the relocation first");
        var reply = await SiteOf(owned.Site).Ask<object>(new SiteProtocol.DeleteDisk(name), AskTimeout);
        return reply switch
        {
            SiteProtocol.Deleted d => Node(new { d.Name, owned.Site }),
            SiteProtocol.Refused r => throw new ManagementException(r.Reason),
            _ => throw new ManagementException($"unexpected reply {reply.GetType().Name}"),
        };
    }

    private Task<JsonNode?> RelocateAsync(JsonObject args)
    {
        var mode = args["mode"]?.GetValue<string>() ?? "postcopy";
        if (mode is not ("postcopy" or "hybrid")) throw new ManagementException($"mode '{mode}': expected postcopy or hybrid");
        long rate = Num(args, "rate", 0);
        bool prefetch = args["prefetch"]?.GetValue<bool>() ?? true;
        return CoordinatorAsync<RelocationAccepted>(new Relocate(Str(args, "disk"), Str(args, "to"), mode == "hybrid", rate, prefetch), a => a);
    }

    private async Task<JsonNode?> CoordinatorAsync<T>(object message, Func<T, object> result, TimeSpan? timeout = null)
    {
        var reply = await _coordinator.Ask<object>(message, timeout ?? AskTimeout);
        return reply switch
        {
            T ok => Node(result(ok)),
            RelocationRefused r => throw new ManagementException(r.Reason),
            _ => throw new ManagementException($"unexpected reply {reply.GetType().Name}"),
        };
    }

    public async ValueTask DisposeAsync()
    {
        _stopping.Cancel();
        _listener.Stop();
        await _acceptLoop;
        Task[] running;
        lock (_running) running = _running.ToArray();
        await Task.WhenAll(running);
        _stopping.Dispose();
    }
}
