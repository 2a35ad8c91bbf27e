using Akka.Actor;
using Akka.Cluster;
using Akka.Configuration;
using Akka.Remote;
using Akka.Remote.Transport;

namespace Reloc.Actors.Site;

/// <summary>
/// Fault injection, for fault campaigns only (reloc.site.fault-injection.remoting-black-hole = on), never in
/// production: cuts a node's cluster traffic as a black-holed WAN path would. The remoting then runs through
/// Akka.Remote's throttler adapter ("trttl", what the multi-node test kit's blackhole uses): while on, every
/// message to and from the members the node knows is dropped, both directions, and no connection is closed, so
/// the failure detectors and the split-brain resolver see what they would see of a real black hole.
/// </summary>
public sealed class RemotingBlackHole(ActorSystem system)
{
    private const string Adapter = ThrottleTransportAdapter.Scheme + ".";
    private readonly HashSet<Address> _cut = [];
    private readonly SemaphoreSlim _gate = new(1, 1);

    /// <summary>The node's configuration with the throttler adapter applied. Addresses then read akka.trttl.tcp://
    /// (akka.trttl.ssl.tcp:// with TLS): seed nodes written without it are rewritten, and every node of the cluster
    /// must run with the switch on.</summary>
    public static Config Configure(Config node)
    {
        var seeds = node.GetStringList("akka.cluster.seed-nodes", [])
            .Select(s => s.StartsWith("akka.", StringComparison.Ordinal) && !s.StartsWith("akka." + Adapter, StringComparison.Ordinal)
                ? "akka." + Adapter + s["akka.".Length..] : s)
            .Select(s => "\"" + s + "\"");
        return ConfigurationFactory.ParseString($"""
            akka.remote.dot-netty.tcp.applied-adapters = ["{ThrottleTransportAdapter.Scheme}"]
            akka.cluster.seed-nodes = [{string.Join(", ", seeds)}]
            """).WithFallback(node);
    }

    /// <summary>On: drops everything to and from every other member the node knows (reachable or not); off: lets
    /// traffic through again to those and to every address cut before. Returns the addresses set.</summary>
    public async Task<IReadOnlyList<Address>> SetAsync(bool on)
    {
        await _gate.WaitAsync();
        try
        {
            var cluster = Cluster.Get(system);
            var members = cluster.State.Members.Select(m => m.Address).Concat(cluster.State.Unreachable.Select(m => m.Address))
                .Where(a => a != cluster.SelfAddress);
            var addresses = (on ? members : members.Concat(_cut)).Distinct().ToList();
            ThrottleMode mode = on ? Blackhole.Instance : Unthrottled.Instance;
            var transport = ((IRemoteActorRefProvider)((ExtendedActorSystem)system).Provider).Transport;
            foreach (var address in addresses)
                if (!await transport.ManagementCommand(new SetThrottle(address, ThrottleTransportAdapter.Direction.Both, mode)))
                    throw new InvalidOperationException($"the remoting did not take the throttle command for {address}");
            if (on) _cut.UnionWith(addresses);
            else _cut.Clear();
            return addresses;
        }
        finally { _gate.Release(); }
    }
}
