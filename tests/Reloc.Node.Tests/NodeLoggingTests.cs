using System.Text.Json;
using System.Text.RegularExpressions;
using Reloc.Testing;
using Xunit;

namespace Reloc.Node.Tests;

/// <summary>A site process's output: stdout holds only its ready line (scripts wait for it); every log line,
/// Akka's included, is on stderr as one line of text or one JSON object, with its level and category.</summary>
public sealed class NodeLoggingTests
{
    [Theory]
    [InlineData("json")]
    [InlineData("text")]
    public async Task Logs_go_to_stderr_one_event_per_line_and_stdout_keeps_the_ready_line(string format)
    {
        await using var cluster = new SiteCluster();
        var node = NodeProcess.Start("--config", cluster.ConfigPath('a'), "--log-format", format);
        await using (node)
        {
            var ready = await node.WaitForLineAsync(l => l.StartsWith("reloc-node: site site-a ", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
            await cluster.WaitUpAsync('a', 1);
            await node.SignalAsync("TERM");
            Assert.Equal(0, await node.WaitForExitAsync(TimeSpan.FromSeconds(60)));
            Assert.Equal([ready], node.Lines);

            var lines = (await node.StdErr).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            var events = lines.Select(l => Parse(format, l)).ToList();
            // Information from Akka's actors flows by default (the coordinator's singleton starting, the cluster forming) ...
            Assert.Contains(events, e => e is { Level: "Information", Category: "Akka.Cluster.Tools.Singleton.ClusterSingletonManager" });
            Assert.Contains(events, e => e is { Level: "Information", Category: "Akka" } && e.Message.Contains("JOINING itself"));
            // ... and the node's own version is the member's app-version.
            Assert.Contains(events, e => e.Message.Contains("version [" + Reloc.Actors.Site.SiteNode.AppVersion(Reloc.Actors.Site.SiteNode.Version) + "]"));
        }
    }

    private sealed record Event(string Level, string Category, string Message);

    private static readonly Dictionary<string, string> TextLevels = new()
    {
        ["trce"] = "Trace", ["dbug"] = "Debug", ["info"] = "Information", ["warn"] = "Warning", ["fail"] = "Error", ["crit"] = "Critical",
    };

    private static Event Parse(string format, string line)
    {
        if (format == "json")
        {
            using var doc = JsonDocument.Parse(line); // throws on a line that is not one JSON object
            var e = doc.RootElement;
            return new Event(e.GetProperty("LogLevel").GetString()!, e.GetProperty("Category").GetString()!, e.GetProperty("Message").GetString()!);
        }
        // 2026-12-06T13:25:40.135Z info: Akka[0] [remoting (akka://reloc)] Starting remoting
        var m = Regex.Match(line, @"^\d{4}-\d\d-\d\dT[\d:.]+Z (\w{4}): ([\w.]+)\[\d+\] (.*)$");
        Assert.True(m.Success, $"not a log line: {line}");
        return new Event(TextLevels[m.Groups[1].Value], m.Groups[2].Value, m.Groups[3].Value);
    }
}
