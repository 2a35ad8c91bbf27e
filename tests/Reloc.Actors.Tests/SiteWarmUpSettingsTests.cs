using Akka.Configuration;
using Reloc.Actors.Site;
using Xunit;

namespace Reloc.Actors.Tests;

/// <summary>reloc.site.warm-up: on by default with a 10 s bound, switched off by enabled = off, a bound outside (0, 5m] refused.</summary>
public sealed class SiteWarmUpSettingsTests
{
    public static TheoryData<string, bool, TimeSpan?> Table => new()
    {
        { "", true, TimeSpan.FromSeconds(10) },
        { "reloc.site.warm-up.enabled = off", false, TimeSpan.FromSeconds(10) },
        { "reloc.site.warm-up.timeout = 2s", true, TimeSpan.FromSeconds(2) },
        { "reloc.site.warm-up.timeout = 5m", true, TimeSpan.FromMinutes(5) },
        { "reloc.site.warm-up.timeout = 0s", true, null },
        { "reloc.site.warm-up.timeout = 6m", true, null },
    };

    [Theory]
    [MemberData(nameof(Table))]
    public void Warm_up_settings_are_read_and_validated(string hocon, bool enabled, TimeSpan? timeout)
    {
        var config = ConfigurationFactory.ParseString($$"""
            reloc.site { name = x, data-dir = "/tmp/x", nbd.listen = "127.0.0.1:0" }
            {{hocon}}
            """).WithFallback(RelocConfig.Reference);
        if (timeout is null)
        {
            Assert.Contains("reloc.site.warm-up.timeout", Assert.Throws<ArgumentException>(() => SiteSettings.From(config)).Message);
            return;
        }
        var settings = SiteSettings.From(config);
        Assert.Equal((enabled, timeout.Value), (settings.WarmUp, settings.WarmUpTimeout));
    }
}
