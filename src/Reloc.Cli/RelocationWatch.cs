using System.Diagnostics;
using System.Text.Json.Nodes;
using Reloc.Management;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Reloc.Cli;

/// <summary>One look at a relocation: the coordinator's phase and the destination's progress.</summary>
public sealed record RelocationSample(string Disk, string From, string To, long Epoch, string Phase, long Local, long Total,
    long Fetched, long Skipped, long Written, long Misses, long RateBps, bool PrefetchPaused, bool HasProgress, TimeSpan Elapsed)
{
    public TimeSpan? Eta => RateBps > 0 && Total > Local ? TimeSpan.FromSeconds((double)(Total - Local) / RateBps) : null;

    public static RelocationSample FromStatus(JsonNode? status, TimeSpan elapsed)
    {
        var info = status?["info"];
        var p = status?["progress"];
        return new RelocationSample(J.Str(info, "disk"), J.Str(info, "fromSite"), J.Str(info, "toSite"), J.Long(info, "epoch"), J.Str(info, "phase"),
            J.Long(p, "localBytes"), J.Long(p, "totalBytes"), J.Long(p, "fetchedBytes"), J.Long(p, "skippedBytes"), J.Long(p, "writtenBytes"),
            J.Long(p, "onDemandFetches"), J.Long(p, "rateBps"), J.Bool(p, "prefetchPaused"), p is not null, elapsed);
    }

    public static RelocationSample FromInfo(JsonNode? info, RelocationSample? last, TimeSpan elapsed) =>
        last is null
            ? new RelocationSample(J.Str(info, "disk"), J.Str(info, "fromSite"), J.Str(info, "toSite"), J.Long(info, "epoch"), J.Str(info, "phase"),
                0, 0, 0, 0, 0, 0, 0, false, false, elapsed)
            : last with { Phase = J.Str(info, "phase"), Elapsed = elapsed };

    /// <summary>"128.0 MiB/256 MiB · 39.8 MB/s · ETA 3.2s · misses 12".</summary>
    public string Figures()
    {
        if (!HasProgress) return "waiting for the destination's progress";
        var eta = Eta is { } e ? "ETA " + Fmt.Duration(e) : Phase == "serving" ? "waiting for the handover" : "ETA -";
        return $"{Fmt.Bytes(Local)}/{Fmt.Bytes(Total)} · {Fmt.Rate(RateBps)} · {eta} · misses {Misses}";
    }

    public string PlainLine() =>
        $"[{Fmt.Duration(Elapsed),6}] {Disk} {From}→{To} {Phase,-12} {Fmt.Percent(Local, Total),6} {Figures()}";
}

public enum WatchView { Live, Plain, Quiet }

public sealed record WatchResult(RelocationSample? Last, JsonNode? LastStatus, JsonNode? Disk, TimeSpan Elapsed);

/// <summary>
/// Follows a relocation until the coordinator no longer lists it (finished, or cancelled), polling
/// relocation.status about twice a second; shows it live with Spectre on a terminal, as plain lines
/// otherwise, or not at all (JSON). Then reads the disk back (its final owner and epoch).
/// </summary>
public static class RelocationWatch
{
    public static readonly TimeSpan DefaultPoll = TimeSpan.FromMilliseconds(500);
    /// <summary>How long the coordinator may fail to answer (a fail-over) before the watch gives up.</summary>
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    public static WatchView ViewFor(Output output) => output.Json ? WatchView.Quiet : output.Interactive ? WatchView.Live : WatchView.Plain;

    public static async Task<WatchResult> RunAsync(Session s, string disk, WatchView view, TimeSpan? poll = null,
        Func<string>? extra = null, Action<RelocationSample>? observe = null, Stopwatch? clock = null)
    {
        var started = clock?.Elapsed ?? TimeSpan.Zero;
        clock ??= Stopwatch.StartNew();
        var interval = poll ?? DefaultPoll;
        switch (view)
        {
            case WatchView.Live:
            {
                RelocationSample? current = null;
                var progress = s.Out.Console.Progress()
                    .AutoClear(false)
                    .HideCompleted(false)
                    .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                        new TextColumn(() => current?.Figures() ?? ""));
                if (extra is not null) progress.RenderHook = (r, _) => new Rows(r, new Text(extra()));
                return await progress.StartAsync(async ctx =>
                {
                    var task = ctx.AddTask(Markup.Escape(disk), maxValue: 1);
                    var result = await LoopAsync(s, disk, interval, clock, started, sample =>
                    {
                        current = sample;
                        observe?.Invoke(sample);
                        task.Description = Markup.Escape($"{sample.Disk} {sample.From}→{sample.To} {sample.Phase}");
                        if (sample.Total > 0)
                        {
                            task.MaxValue = sample.Total;
                            task.Value = sample.Local;
                        }
                    });
                    if (result.Last is { Total: > 0 } last && result.Disk is not null && J.Str(result.Disk, "owner") == last.To)
                        task.Value = task.MaxValue; // finished: the last poll may have been just before the end
                    task.StopTask();
                    return result;
                });
            }
            case WatchView.Plain:
            {
                string? lastPhase = null;
                var lastPrint = TimeSpan.MinValue;
                return await LoopAsync(s, disk, interval, clock, started, sample =>
                {
                    observe?.Invoke(sample);
                    // About one line a second, and one at every phase change.
                    if (sample.Phase == lastPhase && sample.Elapsed - lastPrint < TimeSpan.FromSeconds(0.95)) return;
                    lastPhase = sample.Phase;
                    lastPrint = sample.Elapsed;
                    s.Out.Line(sample.PlainLine() + (extra is null ? "" : " | " + extra()));
                });
            }
            default:
                return await LoopAsync(s, disk, interval, clock, started, sample => observe?.Invoke(sample));
        }
    }

    private static async Task<WatchResult> LoopAsync(Session s, string disk, TimeSpan interval, Stopwatch clock, TimeSpan started, Action<RelocationSample> show)
    {
        RelocationSample? last = null;
        JsonNode? lastStatus = null;
        var failingSince = (TimeSpan?)null;
        while (true)
        {
            JsonNode? entry;
            try
            {
                var list = await s.CallAsync("relocation.list") as JsonArray ?? [];
                entry = list.FirstOrDefault(r => J.Str(r, "disk") == disk);
                failingSince = null;
            }
            catch (ManagementException) when (failingSince is null || clock.Elapsed - failingSince < Patience)
            {
                failingSince ??= clock.Elapsed; // the coordinator may be moving to another node: keep asking
                await Task.Delay(interval, s.Stopping);
                continue;
            }
            if (entry is null) break;
            RelocationSample sample;
            try
            {
                lastStatus = await s.CallAsync("relocation.status", new JsonObject { ["disk"] = disk });
                sample = RelocationSample.FromStatus(lastStatus, clock.Elapsed);
            }
            catch (ManagementException)
            {
                sample = RelocationSample.FromInfo(entry, last, clock.Elapsed); // between two steps, or it just ended
            }
            last = sample;
            show(sample);
            await Task.Delay(interval, s.Stopping);
        }
        JsonNode? final = null;
        try { final = await s.CallAsync("disk.show", new JsonObject { ["name"] = disk }); }
        catch (ManagementException) { } // deleted meanwhile
        return new WatchResult(last, lastStatus, final, clock.Elapsed - started);
    }

    /// <summary>A progress column showing whatever text its function gives.</summary>
    private sealed class TextColumn(Func<string> text) : ProgressColumn
    {
        protected override bool NoWrap => true;

        public override IRenderable Render(RenderOptions options, ProgressTask task, TimeSpan deltaTime) => new Text(text(), new Style(Color.Grey));
    }
}
