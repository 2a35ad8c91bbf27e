using Akka.Configuration;
using Xunit;

namespace Reloc.Node.Tests;

/// <summary>RELOC_* variables → the keys they set over the site file (EnvironmentConfig), as a table.</summary>
public sealed class EnvironmentConfigTests
{
    [Theory]
    [InlineData("RELOC_SITE_NAME", "site-b", "reloc.site.name", "site-b")]
    [InlineData("RELOC_SITE_NAME", "site-b", "akka.cluster.roles", "[site-b]")]
    [InlineData("RELOC_TLS_CERTIFICATES", "/etc/reloc/tls/site-b", "reloc.tls.certificates", "/etc/reloc/tls/site-b")]
    [InlineData("RELOC_DATA_DIR", "/var/lib/reloc/b/data", "reloc.site.data-dir", "/var/lib/reloc/b/data")]
    [InlineData("RELOC_NBD_LISTEN", "0.0.0.0:10809", "reloc.site.nbd.listen", "0.0.0.0:10809")]
    [InlineData("RELOC_NBD_ADVERTISE", "203.0.113.2:10809", "reloc.site.nbd.advertise", "203.0.113.2:10809")]
    [InlineData("RELOC_CLUSTER_HOSTNAME", "0.0.0.0", "akka.remote.dot-netty.tcp.hostname", "0.0.0.0")]
    [InlineData("RELOC_CLUSTER_PORT", " 4051 ", "akka.remote.dot-netty.tcp.port", "4051")]
    [InlineData("RELOC_CLUSTER_PUBLIC_HOSTNAME", "site-b.example.net", "akka.remote.dot-netty.tcp.public-hostname", "site-b.example.net")]
    [InlineData("RELOC_SEEDS", "10.0.0.1:4051, 10.0.0.2:4051", "akka.cluster.seed-nodes", "[akka.tcp://reloc@10.0.0.1:4051,akka.tcp://reloc@10.0.0.2:4051]")]
    [InlineData("RELOC_SEEDS", "akka.tcp://reloc@a.example:4051", "akka.cluster.seed-nodes", "[akka.tcp://reloc@a.example:4051]")]
    [InlineData("RELOC_SEEDS", "[::1]:4051", "akka.cluster.seed-nodes", "[akka.tcp://reloc@[::1]:4051]")]
    [InlineData("RELOC_MANAGEMENT_LISTEN", "10.0.0.2:9110", "reloc.management.listen", "10.0.0.2:9110")]
    [InlineData("RELOC_MANAGEMENT_LISTEN", "off", "reloc.management.listen", "off")]
    [InlineData("RELOC_PERSISTENCE_PROVIDER", "postgresql", "reloc.persistence.provider", "postgresql")]
    [InlineData("RELOC_PERSISTENCE_CONNECTION_STRING", "Host=db;Password=\"p;w\\x\"", "reloc.persistence.connection-string", "Host=db;Password=\"p;w\\x\"")]
    public void A_variable_sets_its_key(string variable, string value, string key, string expected)
    {
        var config = EnvironmentConfig.From(new Dictionary<string, string> { [variable] = value });
        var actual = expected.StartsWith('[')
            ? "[" + string.Join(",", config.GetStringList(key)) + "]"
            : config.GetString(key);
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void The_environment_wins_over_the_file_and_unset_or_empty_variables_leave_it()
    {
        var file = ConfigurationFactory.ParseString("""
            reloc.site { name = site-a, data-dir = "/tmp/a", nbd.listen = "127.0.0.1:10811" }
            akka.cluster.roles = [site-a]
            """);
        var config = EnvironmentConfig.From(new Dictionary<string, string> { ["RELOC_SITE_NAME"] = "site-c", ["RELOC_DATA_DIR"] = "" })
            .WithFallback(file);
        Assert.Equal(("site-c", "/tmp/a", "127.0.0.1:10811"), (config.GetString("reloc.site.name"), config.GetString("reloc.site.data-dir"),
            config.GetString("reloc.site.nbd.listen")));
        Assert.Equal(["site-c"], config.GetStringList("akka.cluster.roles"));
        Assert.True(EnvironmentConfig.From(new Dictionary<string, string>()).IsEmpty);
    }

    [Theory]
    [InlineData("RELOC_CLUSTER_PORT", "40510x")]
    [InlineData("RELOC_CLUSTER_PORT", "70000")]
    [InlineData("RELOC_SEEDS", "10.0.0.1")]
    [InlineData("RELOC_SEEDS", ",")]
    [InlineData("RELOC_SEEDS", "10.0.0.1:4051,host/x:1")]
    [InlineData("RELOC_PERSISTENCE_PROVIDER", "mysql")]
    public void An_invalid_value_is_refused_with_the_variables_name(string variable, string value)
    {
        var ex = Assert.Throws<ArgumentException>(() => EnvironmentConfig.From(new Dictionary<string, string> { [variable] = value }));
        Assert.StartsWith(variable, ex.Message);
    }
}
