using Reloc.Testing;
using Xunit;

namespace Reloc.Node.Tests;

/// <summary>
/// The cluster plane over mutual TLS (reloc.tls): three site processes with certificates from one CA form a
/// cluster on akka.ssl.tcp://; a node whose certificate is from another CA, or from the CA but not a site's,
/// or that speaks plain TCP, never becomes a member, and the sites log why they refused it.
/// </summary>
public sealed class RemotingTlsTests : IDisposable
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
    public async Task Sites_with_site_certificates_form_the_cluster_over_tls()
    {
        await using var c = new SiteCluster(extra: s => Tls(_pki.Folder("site-" + s, "site-" + s)));
        await c.StartAllAsync();
        var view = await c.CallAsync('c', m => m.ClusterAsync());
        Assert.Equal(3, view.Members.Count);
        Assert.All(view.Members, m => Assert.StartsWith("akka.ssl.tcp://", m.Address));
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
            await SiteCluster.WaitAsync(() => Task.FromResult((refusal = "abc".Select(c.Node).SelectMany(n => n.Lines)
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
