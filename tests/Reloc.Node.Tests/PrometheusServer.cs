using System.Diagnostics;
using System.Text.Json.Nodes;
using Reloc.Testing;

namespace Reloc.Node.Tests;

/// <summary>
/// Debian's <c>/usr/bin/prometheus</c> on a free loopback port with a temporary store, scraping the given
/// management endpoints' /metrics every second (each target labelled with its site), and its HTTP query API.
/// </summary>
public sealed class PrometheusServer : IAsyncDisposable
{
    public const string Binary = "/usr/bin/prometheus";
    private readonly Process _process;
    private readonly string _dir;
    private readonly List<string> _log = [];
    private readonly HttpClient _http;

    private PrometheusServer(Process process, string dir, int port)
    {
        _process = process;
        _dir = dir;
        _http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(10) };
        // Read both pipes: prometheus logs a lot to stderr and would block on a full pipe.
        _process.OutputDataReceived += (_, e) => Log(e.Data);
        _process.ErrorDataReceived += (_, e) => Log(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>Prometheus' last log lines, for failure messages.</summary>
    public string LastLog { get { lock (_log) return string.Join('\n', _log.TakeLast(10)); } }

    private void Log(string? line)
    {
        if (line is not null) lock (_log) _log.Add(line);
    }

    /// <param name="targets">site name → host:port of its management endpoint.</param>
    public static async Task<PrometheusServer> StartAsync(IReadOnlyDictionary<string, string> targets)
    {
        if (!File.Exists(Binary))
            throw new InvalidOperationException($"{Binary} is not installed: the metrics test scrapes the nodes with a real Prometheus (apt-get install prometheus)");
        var dir = Directory.CreateTempSubdirectory("reloc-prometheus-").FullName;
        var config = Path.Combine(dir, "prometheus.yml");
        await File.WriteAllTextAsync(config, Config(targets));
        var port = Ports.Free();
        var psi = new ProcessStartInfo(Binary) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "--config.file=" + config, "--storage.tsdb.path=" + Path.Combine(dir, "data"), $"--web.listen-address=127.0.0.1:{port}" })
            psi.ArgumentList.Add(a);
        var server = new PrometheusServer(Process.Start(psi) ?? throw new InvalidOperationException("cannot start prometheus"), dir, port);
        try
        {
            await SiteCluster.WaitAsync(server.ReadyAsync, TimeSpan.FromSeconds(60), "prometheus /-/ready");
        }
        catch (TimeoutException e)
        {
            var log = server.LastLog;
            await server.DisposeAsync();
            throw new TimeoutException($"{e.Message}; its log:\n{log}");
        }
        return server;
    }

    /// <summary>docs/metrics.md's scrape configuration for these targets, scraped every second so that a relocation of a few seconds is seen under way.</summary>
    public static string Config(IReadOnlyDictionary<string, string> targets) =>
        """
        global:
          scrape_interval: 1s
          scrape_timeout: 1s
        scrape_configs:
          - job_name: reloc
            metrics_path: /metrics
            static_configs:

        """ + string.Concat(targets.Select(t => $"      - targets: ['{t.Value}']\n        labels: {{ site: '{t.Key}' }}\n"));

    private async Task<bool> ReadyAsync()
    {
        if (_process.HasExited) throw new InvalidOperationException($"prometheus exited ({_process.ExitCode}):\n{LastLog}");
        try { return (await _http.GetAsync("/-/ready")).IsSuccessStatusCode; }
        catch (HttpRequestException) { return false; }
        catch (TaskCanceledException) { return false; }
    }

    /// <summary>An instant query: each series' labels and value.</summary>
    public async Task<IReadOnlyList<(JsonObject Labels, double Value)>> QueryAsync(string promql)
    {
        var json = await GetAsync("/api/v1/query?query=" + Uri.EscapeDataString(promql));
        var data = json["data"]!;
        if ((string?)data["resultType"] == "scalar")
            return [(new JsonObject(), Value(data["result"]!))];
        return data["result"]!.AsArray().Select(r => (r!["metric"]!.AsObject(), Value(r["value"]!))).ToList();
    }

    /// <summary>Every metric name Prometheus has stored: what the nodes exported at any scrape so far.</summary>
    public async Task<IReadOnlySet<string>> MetricNamesAsync()
    {
        var json = await GetAsync("/api/v1/label/__name__/values");
        return json["data"]!.AsArray().Select(n => (string)n!).ToHashSet();
    }

    private static double Value(JsonNode sample) => double.Parse((string)sample[1]!, System.Globalization.CultureInfo.InvariantCulture);

    private async Task<JsonNode> GetAsync(string path)
    {
        using var response = await _http.GetAsync(path);
        var body = await response.Content.ReadAsStringAsync();
        var json = JsonNode.Parse(body)!;
        if ((string?)json["status"] != "success") throw new InvalidOperationException($"prometheus {path}: {body}");
        return json;
    }

    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }
}
