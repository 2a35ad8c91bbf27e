using Reloc.Testing;
using Xunit;

namespace Reloc.Node.Tests;

/// <summary>
/// A site with reloc.tls runs the NBD warm-up over TLS too, and a throwaway relocating disk's miss path, before its ready
/// line (so a guest's or another site's first TLS connection, and the first relocation's first miss, meet compiled code:
/// bench/first-contact-sites.sh); reloc.site.warm-up.enabled = off skips both.
/// What ran is read from the site's log line, which reports what the warm-up did (the TLS pass counts only when its
/// client ended up on an SslStream), not from timing.
/// </summary>
public sealed class SiteWarmUpTests : IDisposable
{
    private readonly TestPki _pki = TestPki.Create("Reloc warm-up test CA");

    public void Dispose() => _pki.Dispose();

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_tls_site_warms_its_plain_and_tls_paths_before_it_is_ready_unless_switched_off(bool on)
    {
        var folder = _pki.Folder("site-a", "site-a", "site-a");
        await using var c = new SiteCluster(extra: _ => $$"""
            reloc.tls { mode = allow, certificates = "{{folder}}" }
            reloc.site.warm-up.enabled = {{(on ? "on" : "off")}}
            """);
        await c.StartAsync('a');
        string[] expected = on ? ["NBD warm-up: plain and TLS NBD paths run in", "miss-path warm-up: a relocating disk's guest misses run in"] : ["NBD warm-up off"];
        // Logged before the ready line on stdout; stderr is read on its own, so it may arrive a moment later.
        foreach (var line in expected)
            await SiteCluster.WaitAsync(() => Task.FromResult(c.Node('a').LogLines.Any(l => l.Contains(line, StringComparison.Ordinal))),
                TimeSpan.FromSeconds(20), line);
        Assert.DoesNotContain(c.Node('a').LogLines, l => l.Contains("warm-up did not finish", StringComparison.Ordinal));
        if (!on) Assert.DoesNotContain(c.Node('a').LogLines, l => l.Contains("miss-path warm-up", StringComparison.Ordinal));
    }
}
