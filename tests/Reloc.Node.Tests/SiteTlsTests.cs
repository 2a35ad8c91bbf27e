using Reloc.Management;
using Reloc.Testing;
using Xunit;

namespace Reloc.Node.Tests;

/// <summary>
/// Sites with reloc.tls: three site processes with certificates from one CA form the cluster over mutual TLS
/// (akka.ssl.tcp://), serve their disks only over NBD STARTTLS, keep the peer export for site certificates, and
/// relocate a sparse disk with every byte between them over TLS. A node whose certificate is from another CA,
/// or from the CA but not a site's, or that speaks plain TCP, never becomes a member, and the refusal is logged.
/// </summary>
public sealed class SiteTlsTests : IDisposable
{
    private readonly TestPki _pki = TestPki.Create("Reloc sites CA");
    private readonly TestPki _otherCa = TestPki.Create("Someone else's CA");

    public void Dispose()
    {
        _pki.Dispose();
        _otherCa.Dispose();
    }

    private static string Tls(string folder) => $$"""
        reloc.tls {
          mode = require
          certificates = "{{folder}}"
          site-names = ["site-*"]
        }
        """;

    [Fact]
    public async Task Tls_sites_relocate_a_sparse_disk_with_writes_into_holes_and_refuse_plain_and_non_site_clients()
    {
        var guestDir = _pki.Folder("guest", "localhost", "vm-guest");
        await using var c = new SiteCluster(extra: s => Tls(_pki.Folder("site-" + s, "site-" + s, "site-" + s))) { GuestCertificates = guestDir };
        await c.StartAllAsync();
        var view = await c.CallAsync('c', m => m.ClusterAsync());
        Assert.Equal(3, view.Members.Count);
        Assert.All(view.Members, m => Assert.StartsWith("akka.ssl.tcp://", m.Address));

        const int size = 16 << 20, block = 64 << 10;
        await c.CallAsync('a', m => m.CreateDiskAsync(new CreateDiskRequest("vm", "site-b", size)));
        await using var guest = new Guest(new byte[size], 7);
        await guest.ConnectAsync(c.NbdUri('b', "vm"));
        await guest.WriteAtAndFlushAsync(Enumerable.Range(0, 16).Select(b => ((long)b * block, block)));
        var shown = await c.CallAsync('a', m => m.DiskAsync("vm"));
        Assert.StartsWith("nbds://", shown.NbdUri);

        // Plain clients are refused (TLS required), and so is a guest's certificate at the peer export.
        var plain = c.NbdUri('b', "vm").Replace("nbds://", "nbd://")[..^($"?tls-certificates={guestDir}".Length)];
        var refused = await Tool.RunAsync("nbdinfo", plain);
        Assert.NotEqual(0, refused.ExitCode);
        var peer = c.NbdUri('b', "vm").Replace("/vm?", "/vm@peer?");
        var notSite = await Tool.RunAsync("env", "LIBNBD_DEBUG=1", "nbdinfo", peer); // the debug trace shows the server's message
        Assert.NotEqual(0, notSite.ExitCode);
        Assert.Contains("access to export 'vm@peer' is not permitted", notSite.StdErr);

        await c.RelocateAsync('a', "c", "hybrid", 1_000_000);
        // Into holes and over data at the source while the destination copies over TLS; across a block boundary.
        await guest.WriteAtAndFlushAsync([(40L * block, block), (100L * block + 4096, 8192), (64L * block - 4096, 8192), (3L * block, 4096)]);
        await c.WaitPhaseAsync('a', "serving");
        await guest.WriteAtAndFlushAsync([(120L * block, 2 * block), (8L * block + 512, 4096)]);
        await guest.MigrateAsync(c.NbdUri('c', "vm")); // the VM moves: the handover follows
        await guest.WriteAtAndFlushAsync([(200L * block, block), (10L * block, 4096)]);
        await c.FinishAndVerifyAsync('a', owner: 'c', source: 'b', guest, epoch: 2);
        // c's source connections to b were parked ones (reloc.site.peer-connections, on by default), over TLS as a new one.
        Assert.Contains(c.Node('c').LogLines, l => l.Contains("connection to vm@peer at nbds://", StringComparison.Ordinal)
                                                   && l.Contains("finished from a parked one", StringComparison.Ordinal));
        // The copy went through b's peer export, which answers site certificates only: site-c's.
        Assert.Contains(c.Node('b').LogLines, l => l.Contains("refused", StringComparison.Ordinal) && l.Contains("vm@peer", StringComparison.Ordinal));
    }

    public static TheoryData<string> Intruders => new() { "other-ca", "not-a-site", "plain" };

    [Theory]
    [MemberData(nameof(Intruders))]
    public async Task A_node_without_a_site_certificate_cannot_join(string intruder)
    {
        string Config(char s) => s != 'c' ? Tls(_pki.Folder("site-" + s, "site-" + s)) : intruder switch
        {
            "other-ca" => Tls(_otherCa.Folder("site-c", "site-c")),
            "not-a-site" => Tls(_pki.Folder("guest", "guest-vm1")), // the right CA, a guest's name
            _ => "", // no TLS at all: it dials akka.tcp:// seeds that speak TLS
        };
        await using var c = new SiteCluster(extra: Config);
        await c.StartAsync('a');
        await c.WaitUpAsync('a', 1);
        await c.StartAsync('b');
        await c.WaitUpAsync('a', 2);
        await c.StartAsync('c', waitReady: false);

        if (intruder != "plain")
        {
            // Whichever side checks first refuses, naming why: the intruder refuses a seed whose certificate is not
            // from its CA (and stops: Akka shuts a node down when its TLS handshake fails), a seed refuses a
            // certificate from the CA that is not a site's.
            string? refusal = null;
            await SiteCluster.WaitAsync(() => Task.FromResult((refusal = "abc".Select(c.Node).SelectMany(n => n.LogLines)
                .FirstOrDefault(l => l.Contains("cluster connection with", StringComparison.Ordinal) && l.Contains("refused", StringComparison.Ordinal))) is not null),
                TimeSpan.FromSeconds(60), "a refused cluster connection in a log");
            Assert.Contains(intruder == "other-ca" ? "does not chain to the site CA" : "'guest-vm1' is not a site's name", refusal);
        }
        // The intruder keeps trying: give it several join rounds (the seeds retry every few seconds), then
        // neither side lists the other.
        var tries = intruder == "plain" ? 6 : 3;
        for (int i = 0; i < tries; i++)
        {
            var view = await c.CallAsync('a', m => m.ClusterAsync());
            Assert.Equal(2, view.Members.Count);
            Assert.DoesNotContain(view.Members, m => m.Site == "site-c");
            await Task.Delay(TimeSpan.FromSeconds(2));
        }
        var own = await c.TryAsync('c', m => m.ClusterAsync());
        Assert.True(own is null || own.Members.All(m => m.Site == "site-c" || m.Status != "Up"), $"site-c sees {own}");
    }
}
