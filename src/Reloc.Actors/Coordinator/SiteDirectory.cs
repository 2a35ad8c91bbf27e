using Akka.Actor;
using Akka.Cluster;
using Reloc.Actors.Site;

namespace Reloc.Actors.Coordinator;

/// <summary>The cluster's sites as the coordinator and the management endpoint see them: the roles of the members
/// that are Up, their site actors, and one ask to every site.</summary>
public static class SiteDirectory
{
    /// <summary>The sites of the members that are Up, in order (a member that left, or was removed, is no site).</summary>
    public static List<string> Sites(ActorSystem system) => Cluster.Get(system).State.Members
        .Where(m => m.Status == MemberStatus.Up).SelectMany(m => m.Roles).Distinct().Order().ToList();

    public static ActorSelection SiteOf(ActorSystem system, string site) => system.ActorSelection(SiteNode.SitePath(system, site));

    /// <summary>What every site answered to one ask: <see cref="Answered"/> holds whoever answered in time (a site that
    /// did not is unknown, not empty: <see cref="Missing"/>); <see cref="All"/> is null unless every site did.</summary>
    public sealed record Answers<T>(IReadOnlyList<T> Answered, IReadOnlyList<string> Missing)
    {
        public IReadOnlyList<T>? All => Missing.Count == 0 ? Answered : null;
    }

    /// <summary>Asks every site (<see cref="Sites"/>, now) at once, each with its own timeout. Never fails: a site
    /// whose ask fails (timeout, an unexpected reply) is <see cref="Answers{T}.Missing"/>.</summary>
    public static async Task<Answers<T>> AskEach<T>(ActorSystem system, object message, TimeSpan timeout)
    {
        var sites = Sites(system);
        var replies = await Task.WhenAll(sites.Select(async site =>
        {
            try { return (site, Reply: (object?)await SiteOf(system, site).Ask<T>(message, timeout)); }
            catch (Exception) { return (site, Reply: null); }
        }));
        return new Answers<T>(replies.Where(r => r.Reply is not null).Select(r => (T)r.Reply!).ToList(),
            replies.Where(r => r.Reply is null).Select(r => r.site).ToList());
    }

    /// <summary>Every site's disks (<see cref="AskEach{T}"/> of <see cref="SiteProtocol.ListDisks"/>).</summary>
    public static Task<Answers<SiteProtocol.DiskList>> ListDisks(ActorSystem system, TimeSpan timeout) =>
        AskEach<SiteProtocol.DiskList>(system, new SiteProtocol.ListDisks(), timeout);
}
