using Microsoft.Extensions.Hosting;

namespace Reloc.Actors.Site;

/// <summary>
/// The site host's lifetime: it leaves signals alone. The generic host's console and systemd lifetimes stop
/// the host on SIGTERM by themselves, which leaves the cluster before the NBD clients are drained and races
/// the node's own stop (it then looked removed from the cluster: exit 3). The process that runs the node
/// owns its signals and stops it with <see cref="SiteNode.DisposeAsync"/>; systemd hears of readiness and
/// stopping from <see cref="SiteNode.NotifyReady"/> and DisposeAsync.
/// </summary>
internal sealed class NodeLifetime : IHostLifetime
{
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
