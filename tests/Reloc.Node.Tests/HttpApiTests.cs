using System.Text.Json;
using System.Text.Json.Nodes;
using Reloc.Testing;
using Xunit;

namespace Reloc.Node.Tests;

/// <summary>
/// The management API driven by a real HTTP client, <c>curl</c>, as an operator or a script would: create a
/// sparse disk, write into it, relocate it, follow its progress as server-sent events to the end, read the
/// history and the event stream back; refusals are RFC 7807 problems with the right status; health and the
/// OpenAPI document answer. The guest writes into holes before and after the relocation starts and at the
/// destination during the background copy; the test ends with the owner's image compared with what it flushed.
/// </summary>
public sealed class HttpApiTests
{
    private const int Size = 16 << 20;
    private const int Block = 64 << 10;

    private static IEnumerable<(long, int)> Blocks(int first, int count) =>
        Enumerable.Range(first, count).Select(b => ((long)b * Block, Block));

    /// <summary>curl -s with the given arguments; returns (HTTP status, body).</summary>
    private static async Task<(int Status, string Body)> CurlAsync(params string[] args)
    {
        var r = await Tool.RunAsync("curl", ["-sS", "-w", "\n%{http_code}", .. args], TimeSpan.FromSeconds(60));
        Assert.True(r.ExitCode == 0, $"curl {string.Join(' ', args)}: exit {r.ExitCode}: {r.StdErr}");
        int nl = r.StdOut.LastIndexOf('\n');
        return (int.Parse(r.StdOut[(nl + 1)..].Trim()), r.StdOut[..nl]);
    }

    private static Task<(int Status, string Body)> PostJsonAsync(string url, string json) =>
        CurlAsync("-X", "POST", "-H", "content-type: application/json", "--data", json, url);

    [Fact]
    public async Task Curl_drives_a_relocation_end_to_end_and_follows_it_as_server_sent_events()
    {
        await using var c = new SiteCluster();
        await c.StartAllAsync();
        string api = c.ApiUrl('a') + "/api/v1";

        var (status, body) = await PostJsonAsync(api + "/disks", $$"""{"name":"vm","site":"site-b","size":{{Size}}}""");
        Assert.True(status == 201, body);
        Assert.Equal(("vm", "site-b", 1L), (Str(body, "name"), Str(body, "site"), Long(body, "epoch")));

        await using var guest = new Guest(new byte[Size], seed: 11);
        await guest.ConnectAsync(c.NbdUri('b', "vm"));
        await guest.WriteAtAndFlushAsync([.. Blocks(0, 16), .. Blocks(100, 8)]); // data in two places, holes elsewhere

        (status, body) = await PostJsonAsync(api + "/relocations", """{"disk":"vm","to":"site-c","mode":"hybrid","rate":2000000}""");
        Assert.True(status == 202, body);
        Assert.Equal(("site-b", "site-c", 1L), (Str(body, "fromSite"), Str(body, "toSite"), Long(body, "epoch")));
        // Into holes and over data at the source while it relocates.
        await guest.WriteAtAndFlushAsync([.. Blocks(40, 8), .. Blocks(4, 2), ((long)60 * Block + 4096, 8192)]);

        // Follow it as a script would: curl -N on the progress stream, through another site's node.
        var follow = Tool.RunAsync("curl", ["-sSN", "--max-time", "180", c.ApiUrl('c') + "/api/v1/relocations/vm/progress"], TimeSpan.FromSeconds(200));
        await c.WaitPhaseAsync('a', "serving");
        await guest.MigrateAsync(c.NbdUri('c', "vm")); // the guest moves; its first write there triggers the handover
        await guest.WriteAtAndFlushAsync([.. Blocks(200, 8), .. Blocks(41, 2)]);
        var stream = await follow;
        Assert.Equal(0, stream.ExitCode);
        var events = ParseSse(stream.StdOut);
        Assert.True(events.Count >= 3, stream.StdOut);
        var samples = events.Where(e => e.Type == "progress").Select(e => JsonNode.Parse(e.Data)!).ToList();
        Assert.NotEmpty(samples);
        var local = samples.Where(s => s["progress"] is not null).Select(s => (long)s["progress"]!["localBytes"]!).ToList();
        Assert.True(local.Count >= 2 && local[^1] > local[0], "progress moved: " + string.Join(", ", local));
        var done = events[^1];
        Assert.Equal("done", done.Type);
        var disk = JsonNode.Parse(done.Data)!["disk"]!;
        Assert.Equal(("site-c", 2L), ((string)disk["owner"]!, (long)disk["epoch"]!));

        await c.FinishAndVerifyAsync('a', owner: 'c', source: 'b', guest, epoch: 2);

        // The history, as every node recorded it.
        (status, body) = await CurlAsync(c.ApiUrl('b') + "/api/v1/disks/vm/history");
        Assert.True(status == 200, body);
        var row = Assert.Single(JsonNode.Parse(body)!["relocations"]!.AsArray())!;
        Assert.Equal(("site-b", "site-c", "hybrid", "completed"),
            ((string)row["fromSite"]!, (string)row["toSite"]!, (string)row["mode"]!, (string)row["outcome"]!));
        // The guest connected at the destination, then left the source, then wrote: either may have triggered it.
        Assert.Contains((string?)row["trigger"], new[] { "guest-moved", "write-at-destination" });
        Assert.Equal(Size, (long)row["totalBytes"]!);
        // The event stream resumes after a given event (Last-Event-ID), as a reconnecting EventSource does.
        (status, body) = await CurlAsync(c.ApiUrl('a') + "/api/v1/events?limit=1000");
        var kinds = JsonNode.Parse(body)!["events"]!.AsArray().Select(e => (string)e!["kind"]!).ToList();
        Assert.Equal("started", kinds[0]);
        Assert.Contains("handover", kinds);
        Assert.Equal("completed", kinds[^1]);
        var firstSeq = (long)JsonNode.Parse(body)!["events"]![0]!["seq"]!;
        (status, body) = await CurlAsync(c.ApiUrl('a') + "/api/v1/events?newest=true&limit=2"); // the dashboard's list on load
        Assert.Equal(kinds.TakeLast(2), JsonNode.Parse(body)!["events"]!.AsArray().Select(e => (string)e!["kind"]!));
        var resumed = await Tool.RunAsync("curl", ["-sSN", "--max-time", "3", "-H", $"Last-Event-ID: {firstSeq}", c.ApiUrl('a') + "/api/v1/events?follow=true"],
            TimeSpan.FromSeconds(20));
        var replayed = ParseSse(resumed.StdOut);
        Assert.Equal(kinds.Count - 1, replayed.Count);
        Assert.All(replayed, e => Assert.Equal("relocation", e.Type));

        // The coordinator (on site-a, the oldest) logged the lifecycle at Information, by default.
        var log = await c.StopAsync('a');
        var relocation = (string)row["relocation"]!;
        Assert.Matches($@"info: .*relocation {relocation} of vm site-b→site-c started \(hybrid, epoch 1\)", log);
        Assert.Matches($@"info: .*relocation {relocation} of vm site-b→site-c: handover \(.+\) at epoch 2", log);
        Assert.Matches($@"info: .*relocation {relocation} of vm site-b→site-c completed in [0-9.]+ ?m?s: \d+ bytes fetched, \d+ skipped, \d+ misses \({Size} bytes in all\)", log);
    }

    [Fact]
    public async Task Refusals_are_problem_documents_health_and_openapi_answer()
    {
        await using var c = new SiteCluster();
        await c.StartAllAsync();
        string api = c.ApiUrl('b') + "/api/v1";

        var (status, body) = await CurlAsync(api + "/disks/nope");
        Assert.Equal(404, status);
        Assert.Equal("unknown disk 'nope'", Str(body, "detail"));
        Assert.Equal(404L, Long(body, "status"));

        (status, body) = await PostJsonAsync(api + "/disks", """{"name":"d1","site":"site-a","size":1048576}""");
        Assert.Equal(201, status);
        (status, body) = await PostJsonAsync(api + "/disks", """{"name":"d1","site":"site-c","size":1048576}""");
        Assert.Equal(409, status);
        Assert.Contains("already exists", Str(body, "detail"));
        (status, body) = await PostJsonAsync(api + "/disks", """{"name":"d2","site":"site-x","size":1048576}""");
        Assert.Equal(404, status);
        Assert.StartsWith("unknown site 'site-x'", Str(body, "detail"));
        (status, body) = await PostJsonAsync(api + "/disks", """{"name":"d2","site":""" );
        Assert.Equal(400, status);
        Assert.False(string.IsNullOrEmpty(Str(body, "detail")), body);
        (status, body) = await PostJsonAsync(api + "/relocations", """{"disk":"d1","to":"site-a"}""");
        Assert.Equal(409, status);
        (status, body) = await PostJsonAsync(api + "/relocations", """{"disk":"d1","to":"site-b","mode":"sideways"}""");
        Assert.Equal(400, status);
        (status, _) = await PostJsonAsync(api + "/relocations/d1/handover", "{}");
        Assert.Equal(409, status);
        // Nothing changed, and the node still serves.
        (status, body) = await CurlAsync(api + "/disks/d1");
        Assert.Equal((200, "site-a", 1L), (status, Str(body, "owner"), Long(body, "epoch")));

        // Names and sizes are judged before anything is asked of a site.
        (status, body) = await PostJsonAsync(api + "/disks", """{"name":"../etc","site":"site-a","size":1048576}""");
        Assert.Equal((400, "disk name '../etc' must start with a letter or a digit"), (status, Str(body, "detail")));
        (status, body) = await PostJsonAsync(api + "/disks", """{"name":"d1@peer","site":"site-a","size":1048576}""");
        Assert.Equal(400, status);
        (status, body) = await PostJsonAsync(api + "/disks", """{"name":"d2","site":"site-a","size":1000}""");
        Assert.Equal(400, status);
        Assert.Contains("not a whole number of 512-byte sectors", Str(body, "detail"));
        // Image files are read only under the site's import directory: not /etc, not through a link out of it.
        (status, body) = await PostJsonAsync(api + "/disks", """{"name":"d2","site":"site-a","from":"/etc/passwd"}""");
        Assert.Equal(403, status);
        Assert.Contains("outside site site-a's import directory", Str(body, "detail"));
        var link = Path.Combine(c.Dir, "escape.img");
        File.CreateSymbolicLink(link, "/etc/passwd");
        (status, body) = await PostJsonAsync(api + "/disks", $$"""{"name":"d2","site":"site-a","from":"{{link}}"}""");
        Assert.Equal(403, status);
        Assert.Contains("leads to /etc/passwd, outside", Str(body, "detail"));
        (status, body) = await PostJsonAsync(api + "/disks", $$"""{"name":"d2","site":"site-a","from":"{{c.Dir}}/site-a/../../../etc/passwd"}""");
        Assert.Equal(403, status);

        // A disk with a guest connected is deleted only when forced, and the answer says the guest was cut off.
        await using (var guest = await Reloc.Nbd.Client.NbdClient.ConnectAsync(Reloc.Nbd.Client.NbdClientOptions.FromUri(c.NbdUri('a', "d1"))))
        {
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while ((long?)JsonNode.Parse((await CurlAsync(api + "/disks/d1")).Body)?["copies"]?[0]?["clients"] != 1)
            {
                Assert.True(DateTime.UtcNow < deadline, "the guest's connection never showed at site-a");
                await Task.Delay(100);
            }
            (status, body) = await CurlAsync("-X", "DELETE", api + "/disks/d1");
            Assert.Equal(409, status);
            Assert.Contains("has 1 guest client connected on site site-a", Str(body, "detail"));
            (status, body) = await CurlAsync("-X", "DELETE", api + "/disks/d1?force=true");
            Assert.Equal((200, 1L), (status, Long(body, "clientsCut")));
        }
        (status, _) = await CurlAsync(api + "/disks/d1");
        Assert.Equal(404, status);

        (status, body) = await CurlAsync(c.ApiUrl('b') + "/healthz");
        Assert.Equal((200, "Healthy"), (status, Str(body, "status")));
        (status, body) = await CurlAsync(c.ApiUrl('b') + "/readyz");
        Assert.Equal((200, "Healthy"), (status, Str(body, "status")));
        Assert.Contains("member-up", body);
        (status, body) = await CurlAsync(c.ApiUrl('b') + "/openapi/v1.json");
        Assert.Equal(200, status);
        var paths = JsonNode.Parse(body)!["paths"]!.AsObject().Select(p => p.Key).ToList();
        Assert.Contains("/api/v1/relocations/{disk}/progress", paths);
        Assert.Contains("/api/v1/disks/{name}/history", paths);
        Assert.Contains("/api/v1/sites/{site}/drain", paths);

        // A drain into itself, to a site not up, or without a destination.
        (status, body) = await PostJsonAsync(api + "/sites/site-a/drain", """{"to":"site-a"}""");
        Assert.Equal((409, "cannot drain site site-a into itself: name another site with --to"), (status, Str(body, "detail")));
        (status, body) = await PostJsonAsync(api + "/sites/site-a/drain", """{"to":"site-x"}""");
        Assert.Equal(404, status);
        Assert.StartsWith("unknown site 'site-x', or not up", Str(body, "detail"));
        (status, body) = await PostJsonAsync(api + "/sites/site-a/drain", """{"to":""}""");
        Assert.Equal((400, "to: the destination site is required"), (status, Str(body, "detail")));
    }

    [Fact]
    public async Task Readyz_says_not_ready_until_the_node_is_an_Up_member_while_healthz_says_alive()
    {
        await using var c = new SiteCluster();
        await c.StartAsync('c'); // not a seed: with both seeds down it cannot join
        var (status, body) = await CurlAsync(c.ApiUrl('c') + "/healthz");
        Assert.Equal((200, "Healthy"), (status, Str(body, "status")));
        (status, body) = await CurlAsync(c.ApiUrl('c') + "/readyz");
        Assert.Equal((503, "Unhealthy"), (status, Str(body, "status")));
        Assert.StartsWith("Unhealthy", (string?)JsonNode.Parse(body)!["checks"]!["member-up"]);
        Assert.StartsWith("Healthy", (string?)JsonNode.Parse(body)!["checks"]!["site-serving"]); // its disks are served meanwhile

        await c.StartAsync('a');
        await c.StartAsync('b');
        await SiteCluster.WaitAsync(async () => (await CurlAsync(c.ApiUrl('c') + "/readyz")).Status == 200, TimeSpan.FromSeconds(90), "site-c ready");
    }

    private static string Str(string json, string key) => (string?)JsonNode.Parse(json)?[key] ?? "";
    private static long Long(string json, string key) => JsonNode.Parse(json)?[key]?.GetValue<long>() ?? -1;

    /// <summary>The events of a text/event-stream body (event type, joined data lines).</summary>
    private static List<(string Type, string Data)> ParseSse(string text)
    {
        var events = new List<(string, string)>();
        foreach (var block in text.ReplaceLineEndings("\n").Split("\n\n", StringSplitOptions.RemoveEmptyEntries))
        {
            string type = "message";
            var data = new List<string>();
            foreach (var line in block.Split('\n'))
            {
                if (line.StartsWith("event:", StringComparison.Ordinal)) type = line[6..].Trim();
                else if (line.StartsWith("data:", StringComparison.Ordinal)) data.Add(line[5..].TrimStart());
            }
            if (data.Count > 0) events.Add((type, string.Join("\n", data)));
        }
        return events;
    }
}
