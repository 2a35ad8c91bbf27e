using System.Diagnostics.Metrics;
using Reloc.Nbd.Client;
using Reloc.Nbd.Protocol;
using Reloc.Nbd.Tests.Support;
using Reloc.Nbd.Telemetry;
using Reloc.Testing;
using Xunit;

namespace Reloc.Nbd.Tests;

/// <summary>The server's instruments, seen through a MeterListener while a client reads and writes over TCP.</summary>
public sealed class MetricsTests
{
    [Fact]
    public async Task Requests_bytes_latency_and_connections_are_counted_per_export_and_operation()
    {
        using var meter = new Meter(NbdMetrics.MeterName);
        using var recorder = new MetricRecorder(meter);
        await using var server = await TestServer.StartAsync(8 << 20, metrics: new NbdMetrics(meter));
        await using (var client = await NbdClient.ConnectAsync(NbdClientOptions.FromUri(server.Uri())))
        {
            await client.WriteAsync(4096, new byte[8192].Select((_, i) => (byte)(i + 1)).ToArray());
            var back = new byte[8192];
            await client.ReadAsync(4096, back);
            await client.ReadAsync(0, new byte[4096]);
            // Beyond the end: refused by validation, still one request (outcome error). Our client would not send it.
            await using (var raw = await RawClient.OpenAsync(server.Port))
            {
                await raw.SendRequestAsync(NbdCommand.Read, (8 << 20) - 512, 4096, cookie: 7);
                Assert.Equal(NbdError.Inval, (await raw.ReadSimpleReplyAsync()).Error);
            }

            // Every reply is counted before it is sent: all is recorded once the client has its answers.
            var requests = recorder.Of("reloc.nbd.requests");
            Assert.All(requests, m => Assert.Equal("disk", m.Tag("export")));
            Assert.Equal(1, requests.Where(m => m.Tag("op") == "write" && m.Tag("outcome") == "ok").Sum(m => m.Value));
            Assert.Equal(2, requests.Where(m => m.Tag("op") == "read" && m.Tag("outcome") == "ok").Sum(m => m.Value));
            Assert.Equal(1, requests.Where(m => m.Tag("op") == "read" && m.Tag("outcome") == "error").Sum(m => m.Value));

            var bytes = recorder.Of("reloc.nbd.bytes");
            Assert.Equal(8192, bytes.Where(m => m.Tag("op") == "write").Sum(m => m.Value));
            Assert.Equal(8192 + 4096, bytes.Where(m => m.Tag("op") == "read").Sum(m => m.Value));
            Assert.All(bytes, m => Assert.Equal("disk", m.Tag("export")));

            var durations = recorder.Of("reloc.nbd.request.duration");
            Assert.Equal(4, durations.Count);
            Assert.All(durations, m => Assert.True(m.Value >= 0));
            Assert.Contains(durations, m => m.Tag("op") == "write" && m.Tag("export") == "disk");

            var connections = recorder.Of("reloc.nbd.connections");
            Assert.Equal(2, connections.Count(m => m.Value == 1 && m.Tag("export") == "disk")); // the client and the raw one
            Assert.True(connections.Sum(m => m.Value) >= 1); // the client is still connected
        }
        // The server notices the disconnect on its own time: wait for the decrement.
        await recorder.WaitForAsync(ms => ms.Where(m => m.Instrument == "reloc.nbd.connections").Sum(m => m.Value) == 0, TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task A_server_without_metrics_counts_nothing()
    {
        using var meter = new Meter(NbdMetrics.MeterName);
        using var recorder = new MetricRecorder(meter);
        await using var server = await TestServer.StartAsync(1 << 20);
        await using var client = await NbdClient.ConnectAsync(NbdClientOptions.FromUri(server.Uri()));
        await client.ReadAsync(0, new byte[4096]);
        Assert.Empty(recorder.Measurements);
    }
}
