using Akka.Configuration;
using Reloc.Actors;
using Reloc.Actors.Disk;
using Xunit;

namespace Reloc.Actors.Tests;

/// <summary>The background read-size and miss-target settings (reloc.disk), read from HOCON over reference.conf.</summary>
public sealed class DiskSettingsReadSizingTests
{
    private static DiskSettings From(string hocon) =>
        RelocConfig.DiskSettings(ConfigurationFactory.ParseString(hocon).WithFallback(RelocConfig.Reference));

    [Fact]
    public void The_defaults_are_128_KiB_to_4_MiB_at_2_ms_and_a_1_ms_miss_target()
    {
        var s = From("");
        Assert.Equal(new ReadSizing(128 << 10, 4 << 20, TimeSpan.FromMilliseconds(2)), s.ReadSizing);
        Assert.Equal(TimeSpan.FromMilliseconds(1), s.PrefetchMissQueueTarget);
    }

    [Fact]
    public void A_block_size_above_the_bounds_raises_them() =>
        Assert.Equal(new ReadSizing(1 << 20, 4 << 20, TimeSpan.FromMilliseconds(2)),
            From("reloc.disk { block-size = 1MiB, prefetch-chunk = 1MiB }").ReadSizing);

    [Theory]
    [InlineData("reloc.disk.prefetch-chunk-min = 96KiB", "prefetch-chunk-min")]                                 // not a power of two
    [InlineData("reloc.disk.prefetch-chunk-max = 64MiB", "prefetch-chunk-max")]                                 // above 32 MiB
    [InlineData("reloc.disk { prefetch-chunk-min = 1MiB, prefetch-chunk-max = 512KiB }", "prefetch-chunk-max")] // max below min
    [InlineData("reloc.disk.prefetch-chunk-min = 2KiB", "prefetch-chunk-min")]                                  // below 4 KiB
    [InlineData("reloc.disk.prefetch-read-time = 0s", "prefetch-read-time")]
    [InlineData("reloc.disk.prefetch-miss-queue-target = 0s", "prefetch-miss-queue-target")]
    [InlineData("reloc.disk.prefetch-miss-queue-target = 10ms", "prefetch-miss-queue-target")]                  // above the queue target (5 ms)
    public void Bad_values_are_refused_with_the_setting_named(string hocon, string setting) =>
        Assert.Contains(setting, Assert.ThrowsAny<ArgumentOutOfRangeException>(() => From(hocon)).Message);
}
