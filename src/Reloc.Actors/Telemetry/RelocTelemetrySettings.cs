using Akka.Configuration;

namespace Reloc.Actors.Telemetry;

/// <summary>Validated settings of a node's telemetry (HOCON section reloc.telemetry).</summary>
/// <param name="OtlpEndpoint">Where metrics and traces are pushed over OTLP; null: nowhere (Prometheus scraping only).</param>
/// <param name="Instance">The site's name: the exported resource's service.instance.id (a random id when null).</param>
public sealed record RelocTelemetrySettings(Uri? OtlpEndpoint = null, string? Instance = null)
{
    public static RelocTelemetrySettings From(Config config)
    {
        var endpoint = config.GetString("reloc.telemetry.otlp-endpoint", "");
        var site = config.GetString("reloc.site.name", null);
        if (string.IsNullOrWhiteSpace(endpoint)) return new RelocTelemetrySettings(null, site);
        if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            throw new ArgumentException($"reloc.telemetry.otlp-endpoint = '{endpoint}': expected an http:// or https:// URL, or \"\" for none");
        return new RelocTelemetrySettings(uri, site);
    }
}
