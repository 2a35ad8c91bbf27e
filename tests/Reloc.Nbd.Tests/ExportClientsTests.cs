using Reloc.Nbd.Client;
using Reloc.Testing;
using Xunit;

namespace Reloc.Nbd.Tests;

public sealed class ExportClientsTests
{
    [Fact]
    public async Task Counts_clients_in_transmission_per_export()
    {
        await using var server = await TestServer.StartAsync(1 << 20);
        Assert.True(server.Server.Catalog.TryGet("disk", out var export));
        await using (var c = await NbdClient.ConnectAsync(NbdClientOptions.FromUri(server.Uri())))
        {
            await c.ReadAsync(0, new byte[512]); // a reply proves the server is in transmission
            Assert.Equal(1, export.Clients.Count); // counted with nobody subscribed, too
        }
        var counts = new List<int>();
        export.Clients.Changed += n => { lock (counts) counts.Add(n); };
        await using (var c = await NbdClient.ConnectAsync(NbdClientOptions.FromUri(server.Uri())))
        {
            await c.ReadAsync(0, new byte[512]);
            Assert.Equal(1, export.Clients.Count);
        }
        var deadline = DateTime.UtcNow.AddSeconds(10);
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(20));
        while (export.Clients.Count != 0 && DateTime.UtcNow < deadline) await timer.WaitForNextTickAsync();
        Assert.Equal(0, export.Clients.Count);
        lock (counts) Assert.Equal([1, 0], counts);
    }
}
