using Xunit;

namespace Reloc.Wan.Tests;

/// <summary>Settings are valid by construction and read from one command-line string.</summary>
public sealed class SettingsTests
{
    [Fact]
    public void Defaults_are_a_transparent_link_with_a_100ms_queue()
    {
        var s = new WanLinkSettings();
        Assert.Equal(TimeSpan.Zero, s.Rtt);
        Assert.Equal(0, s.RateBytesPerSecond);
        Assert.Equal(TimeSpan.FromMilliseconds(100), s.QueueDuration);
        Assert.Null(s.QueueBytes);
    }

    [Fact]
    public void Each_direction_gets_half_the_rtt_unless_set()
    {
        var s = new WanLinkSettings(TimeSpan.FromMilliseconds(50), 40_000_000, TimeSpan.FromMilliseconds(100));
        Assert.Equal(TimeSpan.FromMilliseconds(25), s.DelayOf(WanDirection.ToTarget));
        Assert.Equal(TimeSpan.FromMilliseconds(25), s.DelayOf(WanDirection.ToClient));
        var skewed = s with { ToClientDelay = TimeSpan.FromMilliseconds(40) };
        Assert.Equal(TimeSpan.FromMilliseconds(25), skewed.DelayOf(WanDirection.ToTarget));
        Assert.Equal(TimeSpan.FromMilliseconds(40), skewed.DelayOf(WanDirection.ToClient));
    }

    [Fact]
    public void Queue_limit_is_time_at_the_rate_or_fixed_bytes()
    {
        var s = new WanLinkSettings(TimeSpan.Zero, 40_000_000, TimeSpan.FromMilliseconds(100));
        Assert.Equal(4_000_000, s.QueueLimitBytes(40_000_000));
        Assert.Equal(1_000_000, s.QueueLimitBytes(10_000_000));
        Assert.Equal(65_536, (s with { QueueBytes = 65_536 }).QueueLimitBytes(40_000_000));
    }

    [Fact]
    public void Invalid_values_are_refused_when_set()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new WanLinkSettings { Rtt = TimeSpan.FromMilliseconds(-1) });
        Assert.Throws<ArgumentOutOfRangeException>(() => new WanLinkSettings { RateBytesPerSecond = -1 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new WanLinkSettings { QueueDuration = TimeSpan.Zero });
        Assert.Throws<ArgumentOutOfRangeException>(() => new WanLinkSettings { QueueBytes = 0 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new WanLinkSettings { ToTargetDelay = TimeSpan.FromHours(1) });
    }

    [Fact]
    public void A_command_line_spec_parses()
    {
        var s = WanLinkSettings.Parse("rtt=50ms rate=40MB/s,queue=100ms");
        Assert.Equal(new WanLinkSettings(TimeSpan.FromMilliseconds(50), 40_000_000, TimeSpan.FromMilliseconds(100)), s);

        var bytes = WanLinkSettings.Parse("rate=320Mbit/s queue=64KiB delay-to-target=10ms delay-to-client=30ms");
        Assert.Equal(40_000_000, bytes.RateBytesPerSecond);
        Assert.Equal(65_536, bytes.QueueBytes);
        Assert.Equal(TimeSpan.FromMilliseconds(10), bytes.DelayOf(WanDirection.ToTarget));
        Assert.Equal(TimeSpan.FromMilliseconds(30), bytes.DelayOf(WanDirection.ToClient));

        Assert.Equal(new WanLinkSettings(), WanLinkSettings.Parse(""));
    }

    [Fact]
    public void ToString_reads_back_as_the_same_settings()
    {
        var s = new WanLinkSettings(TimeSpan.FromMilliseconds(50), 40L << 20, TimeSpan.FromMilliseconds(80)) { ToClientDelay = TimeSpan.FromMilliseconds(5) };
        Assert.Equal("rtt=50ms rate=40MiB/s queue=80ms delay-to-client=5ms", s.ToString());
        Assert.Equal(s, WanLinkSettings.Parse(s.ToString()));
        var unlimited = new WanLinkSettings { QueueBytes = 1 << 20 };
        Assert.Equal(unlimited, WanLinkSettings.Parse(unlimited.ToString()));
    }

    [Theory]
    [InlineData("rtt50ms", "not key=value")]
    [InlineData("speed=40MB/s", "unknown key 'speed'")]
    [InlineData("rate=40", "no unit")]
    [InlineData("queue=0ms", "out of range")]
    [InlineData("rtt=2h", "out of range")]
    public void Bad_specs_say_why(string spec, string reason)
    {
        var ex = Assert.Throws<FormatException>(() => WanLinkSettings.Parse(spec));
        Assert.Contains(reason, ex.Message);
    }
}
