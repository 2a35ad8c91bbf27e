using System.Net;
using System.Text.RegularExpressions;
using Reloc.Testing;
using Xunit;
using Xunit.Abstractions;

namespace Reloc.Vm.Tests;

/// <summary>
/// The guest and the migration mechanics on their own: both QEMUs open the same disk on one
/// `reloc-node serve`, the guest is live-migrated mid-run and carries on at the destination.
/// </summary>
public sealed class SharedServerMigrationTests(ITestOutputHelper output) : VmTest(output, "shared-server")
{
    [Fact]
    public async Task A_guest_live_migrated_between_two_qemus_on_one_nbd_server_loses_no_write()
    {
        var guest = await Guest.BuildAsync(Dir);
        var image = await guest.WriteImageAsync(Path.Combine(Dir, "disk.img"));
        await using var server = GuardedProcess.Start("dotnet", [NodeProcess.NodeDll, "serve", "--listen", "127.0.0.1:0", "--export", $"disk={image}"]);
        var listening = await server.WaitForLineAsync(l => l.Contains("listening on"), TimeSpan.FromSeconds(30));
        var port = int.Parse(Regex.Match(listening, @"127\.0\.0\.1:(\d+)").Groups[1].Value);
        await using var tap = new NbdTap("serve", () => Time.Now) { Upstream = new IPEndPoint(IPAddress.Loopback, port) };
        var uri = $"nbd://{tap.Address}/disk";

        await using var source = await StartVmAsync("source", uri, incoming: false);
        await source.WaitForSerialAsync(t => t.Ready, "guest ready", Boot);
        await source.WaitForKAsync(RoundsBefore, Run);
        await using var destination = await StartVmAsync("destination", uri, incoming: true);
        Report("source:      " + source.CommandLine);
        Report("destination: " + destination.CommandLine);

        var migration = await LiveMigration.MigrateAsync(source, destination, Time);
        Report(migration.ToString());
        await source.QuitAsync(Exit);
        int target = migration.SourceLastK + RoundsAfter;
        await destination.WaitForKAsync(target, Run);
        await destination.StopAsync();
        Time.Mark("destination: guest stopped");
        await destination.QuitAsync(Exit);

        await server.TerminateAsync(); // drains, fdatasyncs, exits
        await server.Exited.WaitAsync(Exit);
        Assert.Equal(0, server.ExitCode);
        Time.Mark("server stopped");
        Report("NBD connections:\n" + TrafficReport.Connections(tap));
        Report("NBD requests around the migration:\n" + TrafficReport.Sequence(migration.StartedAt - 0.05, migration.CompletedAt + 0.3, 60, tap));
        Report("slowest NBD requests:\n" + TrafficReport.Slowest(8, tap));

        Verify(guest, source, destination, migration, target, await File.ReadAllBytesAsync(image));
        var errors = tap.Connections.SelectMany(c => c.Requests).Where(r => r.Error != 0).ToList();
        Assert.True(errors.Count == 0, $"NBD errors: {TrafficReport.Connections(tap)}");
    }
}
