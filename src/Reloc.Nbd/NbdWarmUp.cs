using System.Net;
using Reloc.Nbd.Client;
using Reloc.Nbd.Server;
using Reloc.Storage;

namespace Reloc.Nbd;

/// <summary>
/// Runs the NBD code paths once before the first real client comes: a private server on an ephemeral loopback
/// port, over a small temporary image, and our client against it (handshake with structured replies, meta
/// context and GO; READ, WRITE, FUA, FLUSH, TRIM, WRITE_ZEROES, BLOCK_STATUS; disconnect). The JIT then
/// compiles the handshake and the request loop of both sides here, not on a guest's first connection or read
/// (measured in bench/first-contact.sh). Plain TCP only: the TLS handshake is not warmed.
/// </summary>
public static class NbdWarmUp
{
    private const int ImageBytes = 1 << 20;

    /// <summary>Never fails the caller: a warm-up that cannot run only leaves the first client slower.</summary>
    /// <param name="directory">Where the temporary image goes (removed afterwards).</param>
    /// <returns>null, or why the warm-up did not finish.</returns>
    public static async Task<string?> TryRunAsync(string directory, CancellationToken ct = default)
    {
        try
        {
            await RunAsync(directory, ct);
            return null;
        }
        catch (Exception ex)
        {
            return ex.Message;
        }
    }

    private static async Task RunAsync(string directory, CancellationToken ct)
    {
        var path = Path.Combine(directory, $".reloc-warm-up-{Environment.ProcessId}-{Guid.NewGuid():N}.img");
        try
        {
            using var image = RawImage.Create(path, ImageBytes);
            await using var server = new NbdServer(new ExportCatalog([new NbdExport("warm-up", image)]));
            var endPoint = (IPEndPoint)server.ListenTcp(new IPEndPoint(IPAddress.Loopback, 0));
            await using (var client = await NbdClient.ConnectAsync(NbdClientOptions.FromUri($"nbd://127.0.0.1:{endPoint.Port}/warm-up"), ct))
            {
                var data = new byte[64 << 10];
                data.AsSpan().Fill(0x5a);
                await client.WriteAsync(0, data, ct: ct);
                await client.WriteAsync(data.Length, data.AsMemory(0, 4096), fua: true, ct);
                await client.ReadAsync(0, data, ct);
                await client.ReadAsync(data.Length, data.AsMemory(0, 4096), ct);
                await client.FlushAsync(ct);
                if (client.CanBlockStatus) await client.BlockStatusAsync(0, ImageBytes, ct);
                await client.WriteZeroesAsync(0, 4096, ct: ct);
                await client.TrimAsync(4096, 4096, ct);
            }
            await server.StopAsync();
        }
        finally
        {
            File.Delete(path);
        }
    }
}
