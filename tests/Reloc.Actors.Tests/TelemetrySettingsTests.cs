using Akka.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;
using Reloc.Actors.Telemetry;
using Xunit;

namespace Reloc.Actors.Tests;

public sealed class TelemetrySettingsTests
{
    private static RelocTelemetrySettings From(string hocon) =>
        RelocTelemetrySettings.From(ConfigurationFactory.ParseString(hocon).WithFallback(RelocConfig.Reference));

    [Fact]
    public void Otlp_export_is_off_by_default_and_takes_an_http_url()
    {
        Assert.Null(From("").OtlpEndpoint);
        Assert.Equal(new Uri("http://127.0.0.1:4317"), From("reloc.telemetry.otlp-endpoint = \"http://127.0.0.1:4317\"").OtlpEndpoint);
        var e = Assert.Throws<ArgumentException>(() => From("reloc.telemetry.otlp-endpoint = \"127.0.0.1:4317\""));
        Assert.Contains("reloc.telemetry.otlp-endpoint", e.Message);
    }

    [Fact]
    public void The_container_builds_the_telemetry_from_its_meter_factory_and_the_exporters_start()
    {
        using var services = new ServiceCollection()
            .AddRelocTelemetry(new RelocTelemetrySettings(new Uri("http://127.0.0.1:4317")))
            .BuildServiceProvider();
        var telemetry = services.GetRequiredService<RelocTelemetry>();
        Assert.Equal(RelocMetrics.MeterName, telemetry.Relocation.Meter.Name);
        Assert.NotNull(telemetry.Relocation.Meter.Scope); // from IMeterFactory, not a free-standing meter
        Assert.NotNull(services.GetRequiredService<MeterProvider>());
        Assert.NotNull(services.GetRequiredService<TracerProvider>());
    }
}
