using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Reloc.Nbd.Telemetry;

namespace Reloc.Actors.Telemetry;

public static class TelemetryServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="RelocTelemetry"/> (built from the container's <see cref="IMeterFactory"/>) and the
    /// OpenTelemetry pipeline: Reloc's meters, .NET runtime metrics and the Prometheus exporter (its scraping
    /// endpoint is mapped by the HTTP host: <c>app.MapPrometheusScrapingEndpoint("/metrics")</c>), the "Reloc"
    /// traces, and OTLP export of both when <see cref="RelocTelemetrySettings.OtlpEndpoint"/> is set.
    /// </summary>
    public static IServiceCollection AddRelocTelemetry(this IServiceCollection services, RelocTelemetrySettings settings)
    {
        services.AddMetrics();
        services.TryAddSingleton(sp => new RelocTelemetry(sp.GetRequiredService<IMeterFactory>()));
        return services.AddOpenTelemetryPipeline(settings);
    }

    /// <summary>As <see cref="AddRelocTelemetry(IServiceCollection, RelocTelemetrySettings)"/>, with a telemetry object
    /// made before the container (see <see cref="RelocTelemetry()"/>). Registered through a factory so that the
    /// container disposes it with the host, once it has been resolved.</summary>
    public static IServiceCollection AddRelocTelemetry(this IServiceCollection services, RelocTelemetrySettings settings, RelocTelemetry telemetry)
    {
        services.TryAddSingleton(_ => telemetry);
        return services.AddOpenTelemetryPipeline(settings);
    }

    private static IServiceCollection AddOpenTelemetryPipeline(this IServiceCollection services, RelocTelemetrySettings settings)
    {
        services.AddOpenTelemetry()
            // One series per site in a shared Prometheus/OTLP backend: the instance is the site's name.
            .ConfigureResource(r => r.AddService("reloc", serviceVersion: Site.SiteNode.Version,
                serviceInstanceId: settings.Instance, autoGenerateServiceInstanceId: settings.Instance is null))
            .WithMetrics(m =>
            {
                m.AddMeter(NbdMetrics.MeterName, RelocMetrics.MeterName)
                    .AddRuntimeInstrumentation()
                    .AddPrometheusExporter();
                if (settings.OtlpEndpoint is { } endpoint) m.AddOtlpExporter(o => o.Endpoint = endpoint);
            })
            .WithTracing(t =>
            {
                t.AddSource(RelocTelemetry.ActivitySourceName);
                if (settings.OtlpEndpoint is { } endpoint) t.AddOtlpExporter(o => o.Endpoint = endpoint);
            });
        return services;
    }
}
