using Akka.Configuration;
using Akka.Configuration.Hocon;
using Reloc.Wan;

namespace Reloc.Actors.Coordinator;

/// <summary>Validated link budgets (reloc.links in reference.conf): the bandwidth each site pair's relocations share,
/// in bytes per second, per direction. A pair not listed has no budget.</summary>
public sealed record LinkSettings(IReadOnlyDictionary<LinkPair, long> Budgets)
{
    public static LinkSettings None { get; } = new(new Dictionary<LinkPair, long>());

    /// <summary><c>reloc.links = [ { sites = [site-a, site-b], bandwidth = 100MB/s } ]</c>; the bandwidth in the
    /// units of <c>reloc relocation rate</c> (MB/s, MiB/s, Mbit/s ...). Throws on anything it cannot take, at start.</summary>
    public static LinkSettings From(Config config)
    {
        var values = config.HasPath("reloc.links") ? config.GetValue("reloc.links")?.GetArray() ?? [] : [];
        var budgets = new Dictionary<LinkPair, long>();
        for (int i = 0; i < values.Count; i++)
        {
            if (values[i].IsEmpty) continue; // "links = [ ]": the parser gives one empty element
            var key = $"reloc.links[{i}]";
            var link = new Config(new HoconRoot(values[i]));
            var sites = link.GetStringList("sites", []);
            if (sites.Count != 2 || sites.Any(string.IsNullOrWhiteSpace) || sites[0] == sites[1])
                throw new ArgumentException($"{key}.sites: two different site names are needed, e.g. sites = [site-a, site-b]");
            var text = link.GetString("bandwidth", "");
            long bandwidth;
            try { bandwidth = Units.ParseRate(text); }
            catch (FormatException ex) { throw new ArgumentException($"{key}.bandwidth: {ex.Message}", ex); }
            if (bandwidth <= 0) throw new ArgumentException($"{key}.bandwidth: a budget must be above 0 (leave the pair out for none)");
            var pair = new LinkPair(sites[0], sites[1]);
            if (!budgets.TryAdd(pair, bandwidth)) throw new ArgumentException($"{key}: {pair} is listed twice");
        }
        return new LinkSettings(budgets);
    }
}
