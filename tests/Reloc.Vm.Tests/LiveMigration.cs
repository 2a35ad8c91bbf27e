using System.Text.Json.Nodes;
using Reloc.Testing;

namespace Reloc.Vm.Tests;

/// <summary>Result of one QEMU live migration, as the source reported it.</summary>
public sealed record MigrationReport(double StartedAt, double CompletedAt, long TotalTimeMs, long DowntimeMs, long TransferredBytes, int SourceLastK)
{
    public override string ToString() =>
        $"migration {StartedAt:F3}s -> {CompletedAt:F3}s: total {TotalTimeMs} ms, downtime {DowntimeMs} ms, {TransferredBytes / 1024} KiB sent, source guest last printed k={SourceLastK}";
}

public static class LiveMigration
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Moves the running guest from <paramref name="source"/> to <paramref name="destination"/> (started with
    /// -incoming defer) over loopback TCP, waits until the destination runs it, and leaves the source paused
    /// in postmigrate (the caller quits it: with a Reloc site that is the "source's last client left" moment).
    /// </summary>
    public static async Task<MigrationReport> MigrateAsync(QemuVm source, QemuVm destination, Timeline timeline)
    {
        var events = new { capabilities = new[] { new { capability = "events", state = true } } };
        await source.Qmp.ExecuteAsync("migrate-set-capabilities", events);
        await destination.Qmp.ExecuteAsync("migrate-set-capabilities", events);
        // The default cap is 32 MiB/s; the guest's RAM is mostly zero pages, loopback takes it all at once.
        await source.Qmp.ExecuteAsync("migrate-set-parameters", new Dictionary<string, object> { ["max-bandwidth"] = 1L << 30 });

        string uri = "";
        for (int attempt = 1; ; attempt++)
        {
            uri = $"tcp:127.0.0.1:{Ports.Free()}";
            try
            {
                await destination.Qmp.ExecuteAsync("migrate-incoming", new { uri });
                break;
            }
            catch (QmpException) when (attempt < 3) { } // someone took the free port first
        }

        var started = timeline.Mark($"migration {source.Name} -> {destination.Name} started (source guest at k={source.LastK})");
        await source.Qmp.ExecuteAsync("migrate", new { uri });
        var end = await source.Qmp.WaitForEventAsync("MIGRATION", e => e.Status is "completed" or "failed" or "cancelled", Timeout);
        var info = (await source.Qmp.ExecuteAsync("query-migrate"))!.AsObject();
        if (end.Status != "completed")
            throw new InvalidOperationException($"migration {end.Status}: {info["error-desc"]}\nsource stderr: {source.StdErr}\ndestination stderr: {destination.StdErr}");
        var completed = timeline.Mark($"migration completed at the source ({source.Name} paused)");

        await destination.Qmp.WaitForEventAsync("MIGRATION", e => e.Status is "completed" or "failed", Timeout);
        var status = await destination.StatusAsync();
        if (status != "running")
        {
            // Autostart follows the source's run state; a destination left paused is resumed explicitly.
            timeline.Mark($"{destination.Name} is '{status}' after the migration: cont");
            await destination.Qmp.ExecuteAsync("cont");
        }
        await destination.Qmp.WaitForEventAsync("RESUME", null, Timeout);
        timeline.Mark($"{destination.Name} runs the guest");
        return new MigrationReport(started, completed, Long(info, "total-time"), Long(info, "downtime"),
            info["ram"] is JsonObject ram ? Long(ram, "transferred") : 0, source.LastK);
    }

    private static long Long(JsonObject o, string key) => o[key] is JsonValue v && v.TryGetValue<long>(out var l) ? l : -1;
}
