using Reloc.Actors.Source;
using Reloc.Nbd.Client;
using Reloc.Testing;
using Xunit;

namespace Reloc.Actors.Tests;

public sealed class BlockSourceTests
{
    [Fact]
    public async Task The_connection_opened_before_it_was_needed_goes_to_the_misses_lane_only()
    {
        await using var server = await TestServer.StartAsync(1 << 20);
        var options = NbdClientOptions.FromUri(server.Uri());
        var first = await NbdClient.ConnectAsync(options);
        var sources = NbdBlockSource.Factory(options, 1 << 20, first: first);

        // The prefetcher's child is often created first: it must not take the connection meant for misses.
        await using var background = (NbdBlockSource)sources(SourceLane.Background);
        await using var misses = (NbdBlockSource)sources(SourceLane.Misses);
        await using var missesAgain = (NbdBlockSource)sources(SourceLane.Misses); // a restarted fetcher connects anew

        Assert.NotSame(first, await background.Client.GetClientAsync());
        Assert.Same(first, await misses.Client.GetClientAsync());
        Assert.NotSame(first, await missesAgain.Client.GetClientAsync());
        await misses.ReadAsync(0, new byte[4096], CancellationToken.None);
    }
}
