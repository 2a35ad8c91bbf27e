using System.Text.Json;
using Akka.Configuration;

namespace Reloc.Node;

/// <summary>
/// Site settings from the environment, over the configuration file: one unit file and one site.conf serve
/// every site, each instance's differences in its own environment file (deploy/reloc-node@.service). The
/// effect of HOCON's optional substitutions (<c>name = ${?RELOC_SITE_NAME}</c>), done here because HOCON
/// cannot split RELOC_SEEDS into a list and a site's name is also its cluster role. An unset or empty
/// variable leaves the file's value. Documented in hocon/reloc.conf.
/// </summary>
internal static class EnvironmentConfig
{
    /// <summary>Each variable and the key it sets (RELOC_SITE_NAME and RELOC_SEEDS also do more, below).</summary>
    public static readonly IReadOnlyList<(string Variable, string Key)> Keys =
    [
        ("RELOC_SITE_NAME", "reloc.site.name"),
        ("RELOC_DATA_DIR", "reloc.site.data-dir"),
        ("RELOC_NBD_LISTEN", "reloc.site.nbd.listen"),
        ("RELOC_NBD_ADVERTISE", "reloc.site.nbd.advertise"),
        ("RELOC_CLUSTER_HOSTNAME", "akka.remote.dot-netty.tcp.hostname"),
        ("RELOC_CLUSTER_PORT", "akka.remote.dot-netty.tcp.port"),
        ("RELOC_CLUSTER_PUBLIC_HOSTNAME", "akka.remote.dot-netty.tcp.public-hostname"),
        ("RELOC_SEEDS", "akka.cluster.seed-nodes"),
        ("RELOC_MANAGEMENT_LISTEN", "reloc.management.listen"),
        ("RELOC_PERSISTENCE_PROVIDER", "reloc.persistence.provider"),
        ("RELOC_PERSISTENCE_CONNECTION_STRING", "reloc.persistence.connection-string"),
        ("RELOC_TLS_CERTIFICATES", "reloc.tls.certificates"),
    ];

    public static Config FromProcess() =>
        From(Keys.ToDictionary(k => k.Variable, k => Environment.GetEnvironmentVariable(k.Variable) ?? ""));

    /// <summary>The configuration the variables set (empty when none is set); invalid values are refused
    /// with the variable's name (<see cref="ArgumentException"/>).</summary>
    public static Config From(IReadOnlyDictionary<string, string> environment)
    {
        var lines = new List<string>();
        foreach (var (variable, key) in Keys)
        {
            if (!environment.TryGetValue(variable, out var raw) || string.IsNullOrWhiteSpace(raw)) continue;
            var value = raw.Trim();
            switch (variable)
            {
                case "RELOC_SITE_NAME":
                    lines.Add($"{key} = {Quote(value)}");
                    lines.Add($"akka.cluster.roles = [{Quote(value)}]"); // a site's role is its name
                    break;
                case "RELOC_CLUSTER_PORT":
                    if (!int.TryParse(value, out var port) || port is < 0 or > 65535)
                        throw new ArgumentException($"RELOC_CLUSTER_PORT = '{raw}': expected a TCP port (0-65535)");
                    lines.Add($"{key} = {port}");
                    break;
                case "RELOC_SEEDS":
                    lines.Add($"{key} = [{string.Join(", ", Seeds(value).Select(Quote))}]");
                    break;
                case "RELOC_PERSISTENCE_PROVIDER":
                    if (value is not ("sqlite" or "postgresql"))
                        throw new ArgumentException($"RELOC_PERSISTENCE_PROVIDER = '{raw}': expected sqlite or postgresql");
                    lines.Add($"{key} = {value}");
                    break;
                default:
                    lines.Add($"{key} = {Quote(value)}");
                    break;
            }
        }
        return lines.Count == 0 ? Config.Empty : ConfigurationFactory.ParseString(string.Join('\n', lines));
    }

    /// <summary>"a:4051, b:4051" → Akka addresses: HOST:PORT is a seed of this cluster's system
    /// (akka.tcp://reloc@HOST:PORT); a full akka.tcp:// address is taken as it is.</summary>
    public static IReadOnlyList<string> Seeds(string list)
    {
        var seeds = new List<string>();
        foreach (var item in list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (item.StartsWith("akka.tcp://", StringComparison.Ordinal))
            {
                seeds.Add(item);
                continue;
            }
            int colon = item.LastIndexOf(':');
            if (colon <= 0 || !int.TryParse(item[(colon + 1)..], out int port) || port is < 1 or > 65535 || item.Contains('/'))
                throw new ArgumentException($"RELOC_SEEDS: '{item}' is neither HOST:PORT nor akka.tcp://{Reloc.Actors.Site.SiteNode.SystemName}@HOST:PORT");
            seeds.Add($"akka.tcp://{Reloc.Actors.Site.SiteNode.SystemName}@{item}");
        }
        if (seeds.Count == 0) throw new ArgumentException($"RELOC_SEEDS = '{list}': no seed in it");
        return seeds;
    }

    // A HOCON quoted string is a JSON string.
    private static string Quote(string value) => JsonSerializer.Serialize(value);
}
