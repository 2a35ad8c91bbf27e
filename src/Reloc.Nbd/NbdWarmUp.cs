using System.Diagnostics;
using System.Net;
using Reloc.Nbd.Client;
using Reloc.Nbd.Server;
using Reloc.Nbd.Tls;
using Reloc.Storage;

namespace Reloc.Nbd;

/// <summary>What a warm-up ran: <paramref name="Plain"/> and <paramref name="Tls"/> say which passes finished (the TLS
/// one: the client's connection was an SslStream at the end of it), <paramref name="Failure"/> why it stopped early.</summary>
public sealed record NbdWarmUpReport(bool Plain, bool Tls, TimeSpan Elapsed, string? Failure = null)
{
    public override string ToString() =>
        Failure is null ? $"{(Tls ? "plain and TLS" : "plain")} NBD paths run in {Elapsed.TotalMilliseconds:F0} ms"
                        : $"stopped after {Elapsed.TotalMilliseconds:F0} ms (plain {(Plain ? "done" : "not done")}, TLS {(Tls ? "done" : "not done")}): {Failure}";
}

/// <summary>
/// Runs the NBD code paths once before the first real client comes: a private server on an ephemeral loopback
/// port, over a small temporary image, and our client against it (handshake with structured replies, meta
/// context and GO; READ, WRITE, FUA, FLUSH, TRIM, WRITE_ZEROES, BLOCK_STATUS; disconnect). The JIT then
/// compiles the handshake and the request loop of both sides here, not on a guest's first connection or read
/// (measured in bench/first-contact.sh and bench/first-contact-sites.sh). With <c>tls</c> it runs the same again
/// over NBD_OPT_STARTTLS with a throwaway CA (both certificates checked, as between sites): SslStream's handshake,
/// chain building and record layer are compiled and initialised then, not on a guest's or a site's first TLS
/// connection.
/// </summary>
public static class NbdWarmUp
{
    private const int ImageBytes = 1 << 20;

    /// <summary>For the commands without a setting of their own (serve, proxy): a pass takes tens of ms when warm,
    /// about a second on a loaded host; past this the process starts without it.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Never fails the caller and never runs past <paramref name="timeout"/>: a warm-up that cannot run only
    /// leaves the first client slower. The report says what ran.</summary>
    /// <param name="directory">Where the temporary image and certificates go (removed afterwards).</param>
    public static async Task<NbdWarmUpReport> TryRunAsync(string directory, bool tls, TimeSpan timeout, CancellationToken ct = default)
    {
        var clock = Stopwatch.StartNew();
        bool plain = false, secure = false;
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(ct);
        bounded.CancelAfter(timeout);
        try
        {
            await PassAsync(directory, null, bounded.Token);
            plain = true;
            if (tls)
            {
                var certificates = Directory.CreateDirectory(Path.Combine(directory, $".reloc-warm-up-tls-{Environment.ProcessId}-{Guid.NewGuid():N}")).FullName;
                try
                {
                    WarmUpPki.Write(certificates);
                    secure = await PassAsync(directory, certificates, bounded.Token);
                }
                finally
                {
                    Directory.Delete(certificates, recursive: true);
                }
            }
            return new NbdWarmUpReport(plain, secure, clock.Elapsed);
        }
        catch (Exception ex)
        {
            var why = bounded.IsCancellationRequested && !ct.IsCancellationRequested ? $"timed out after {timeout}" : ex.Message;
            return new NbdWarmUpReport(plain, secure, clock.Elapsed, why);
        }
    }

    /// <summary>One pass: server and client over loopback, plain or (with a certificates folder) over TLS with a
    /// client certificate required. Returns whether the client's connection was TLS.</summary>
    private static async Task<bool> PassAsync(string directory, string? certificates, CancellationToken ct)
    {
        var path = Path.Combine(directory, $".reloc-warm-up-{Environment.ProcessId}-{Guid.NewGuid():N}.img");
        try
        {
            using var image = RawImage.Create(path, ImageBytes);
            var settings = certificates is null
                ? new NbdServerSettings()
                : new NbdServerSettings { Tls = new NbdTlsSettings { Mode = NbdTlsMode.Require, CertificatesDirectory = certificates, VerifyPeer = true } };
            await using var server = new NbdServer(new ExportCatalog([new NbdExport("warm-up", image)]), settings);
            var endPoint = (IPEndPoint)server.ListenTcp(new IPEndPoint(IPAddress.Loopback, 0));
            var options = new NbdClientOptions
            {
                Host = "127.0.0.1", Port = endPoint.Port, Export = "warm-up",
                Tls = certificates is null ? NbdClientTlsMode.None : NbdClientTlsMode.Require, TlsCertificates = certificates,
            };
            bool isTls;
            await using (var client = await NbdClient.ConnectAsync(options.Validate(), ct))
            {
                isTls = client.IsTls;
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
            return isTls;
        }
        finally
        {
            File.Delete(path);
        }
    }
}
