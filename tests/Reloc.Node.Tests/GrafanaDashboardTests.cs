using Reloc.Testing;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Xunit;

namespace Reloc.Node.Tests;

/// <summary>
/// deploy/grafana/reloc-dashboard.json is well-formed and importable as is: every panel queries the
/// <c>datasource</c> template variable. <see cref="PrometheusTests"/> checks its metric names against
/// what the nodes really export.
/// </summary>
public sealed partial class GrafanaDashboardTests
{
    public static string DashboardPath => Path.Combine(SiteCluster.RepoRoot(), "deploy", "grafana", "reloc-dashboard.json");

    public static JsonObject Dashboard() => JsonNode.Parse(File.ReadAllText(DashboardPath))!.AsObject();

    /// <summary>The PromQL of every panel's queries.</summary>
    public static IEnumerable<string> PanelExpressions() =>
        Dashboard()["panels"]!.AsArray().SelectMany(p => p!["targets"]?.AsArray() ?? []).Select(t => (string)t!["expr"]!);

    /// <summary>Panel queries and template variable queries (Grafana's label_values(metric, label)).</summary>
    public static IEnumerable<string> Expressions() =>
        PanelExpressions().Concat(Dashboard()["templating"]!["list"]!.AsArray()
            .Where(v => (string?)v!["type"] == "query").Select(v => (string)v!["definition"]!));

    /// <summary>The metric names the expressions select.</summary>
    public static IReadOnlySet<string> MetricNames() => Expressions().SelectMany(MetricNamesIn).ToHashSet();

    private static readonly HashSet<string> Keywords = ["by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"];

    /// <summary>
    /// What is left of an expression once strings, label matchers, ranges and grouping clauses are taken
    /// out, minus function names (followed by a parenthesis) and keywords: its metric names.
    /// </summary>
    public static IEnumerable<string> MetricNamesIn(string promql)
    {
        var bare = Strings().Replace(promql, "");
        bare = Matchers().Replace(bare, " ");
        bare = Ranges().Replace(bare, " ");
        bare = Grouping().Replace(bare, " ");
        bare = LabelValuesLabel().Replace(bare, "$1)"); // label_values(metric, label): the label is no metric
        return Identifiers().Matches(bare)
            .Where(m => !bare[(m.Index + m.Length)..].TrimStart().StartsWith('(') && !Keywords.Contains(m.Value))
            .Select(m => m.Value);
    }

    [Fact]
    public void The_dashboard_is_well_formed_and_queries_the_datasource_variable()
    {
        var dashboard = Dashboard();
        Assert.True((int)dashboard["schemaVersion"]! >= 39);
        var variables = dashboard["templating"]!["list"]!.AsArray();
        Assert.Contains(variables, v => (string?)v!["name"] == "datasource" && (string?)v["type"] == "datasource" && (string?)v["query"] == "prometheus");

        var panels = dashboard["panels"]!.AsArray().Where(p => (string?)p!["type"] != "row").ToList();
        Assert.NotEmpty(panels);
        Assert.Equal(panels.Count, panels.Select(p => (int)p!["id"]!).Distinct().Count());
        foreach (var panel in panels)
        {
            var title = (string?)panel!["title"];
            Assert.Equal("${datasource}", (string?)panel["datasource"]?["uid"]);
            var targets = panel["targets"]!.AsArray();
            Assert.True(targets.Count > 0, $"panel {title} has no query");
            foreach (var target in targets)
            {
                Assert.Equal("${datasource}", (string?)target!["datasource"]?["uid"]);
                Assert.False(string.IsNullOrWhiteSpace((string?)target["expr"]), $"panel {title} has an empty query");
            }
        }

        var names = MetricNames();
        Assert.NotEmpty(names);
        // Reloc's own meters and the .NET runtime's: what a node's /metrics serves.
        Assert.All(names, n => Assert.Matches("^(reloc|dotnet)_[a-z0-9_]+$", n));
    }

    [Fact]
    public void Metric_names_are_found_in_promql()
    {
        Assert.Equal(["reloc_relocation_miss_duration_seconds_bucket"],
            MetricNamesIn("histogram_quantile(0.99, sum by (le, disk) (rate(reloc_relocation_miss_duration_seconds_bucket{disk=~\"$disk\",to=\"a b\"}[$__rate_interval])))"));
        Assert.Equal(["reloc_relocation_bytes_local_bytes", "reloc_relocation_bytes_total_bytes"],
            MetricNamesIn("max by (disk) (reloc_relocation_bytes_local_bytes) / on (disk) group_left max by (disk) (reloc_relocation_bytes_total_bytes) > 0"));
        Assert.Equal(["reloc_cluster_members"], MetricNamesIn("label_values(reloc_cluster_members, site)"));
    }

    [GeneratedRegex("\"(?:[^\"\\\\]|\\\\.)*\"")] private static partial Regex Strings();
    [GeneratedRegex(@"\{[^}]*\}")] private static partial Regex Matchers();
    [GeneratedRegex(@"\[[^\]]*\]")] private static partial Regex Ranges();
    [GeneratedRegex(@"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")] private static partial Regex Grouping();
    [GeneratedRegex(@"(\blabel_values\s*\([^,()]*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)")] private static partial Regex LabelValuesLabel();
    [GeneratedRegex(@"(?<![\w$.])[a-zA-Z_:][a-zA-Z0-9_:]*")] private static partial Regex Identifiers();
}
