using System.Diagnostics;
using Reloc.Management;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Reloc.Cli;

/// <summary>One look at a relocation: the coordinator's phase and the destination's progress.</summary>
public sealed record RelocationSample(string Disk, string From, string To, long Epoch, string Phase, long Local, long Total,
    long Fetched, long Skipped, long Written, long Misses, long RateBps, bool PrefetchPaused, bool HasProgress, TimeSpan Elapsed)
{
    public TimeSpan? Eta => RateBps > 0 && Total > Local ? TimeSpan.FromSeconds((double)(Total - Local) / RateBps) : null;

    public static RelocationSample FromStatus(RelocationView info, ProgressView p, TimeSpan elapsed) =>
        new(info.Disk, info.FromSite, info.ToSite, info.Epoch, info.Phase, p.LocalBytes, p.TotalBytes, p.FetchedBytes, p.SkippedBytes,
            p.WrittenBytes, p.OnDemandFetches, p.RateBps, p.PrefetchPaused, true, elapsed);

    public static RelocationSample FromInfo(RelocationView info, RelocationSample? last, TimeSpan elapsed) =>
        last is null
            ? new RelocationSample(info.Disk, info.FromSite, info.ToSite, info.Epoch, info.Phase, 0, 0, 0, 0, 0, 0, 0, false, false, elapsed)
            : last with { Phase = info.Phase, Elapsed = elapsed };

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

public sealed record WatchResult(RelocationSample? Last, RelocationStatusView? LastStatus, DiskView? Disk, TimeSpan Elapsed);

/// <summary>
/// Follows a relocation until the coordinator no longer lists it (finished, or cancelled) on the node's
/// progress stream (server-sent events, a look about twice a second); shows it live with Spectre on a
/// terminal, as plain lines otherwise, or not at all (JSON). The stream's last event is the disk as it
/// ended (its final owner and epoch).
/// </summary>
public static class RelocationWatch
{
    public static readonly TimeSpan DefaultPoll = TimeSpan.FromMilliseconds(500);
    /// <summary>How long a broken stream is followed again (the node restarting) before the watch gives up.</summary>
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
                    // Finished: the last look may have been just before the end, or (a fast relocation) before its size was known.
                    if (result.Last is { } last && result.Disk?.Owner == last.To)
                        task.Value = task.MaxValue;
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
        RelocationStatusView? lastStatus = null;
        TimeSpan? failingSince = null;
        while (true)
        {
            try
            {
                await foreach (var item in s.Client.WatchAsync(disk, interval, s.Stopping))
                {
                    failingSince = null;
                    switch (item)
                    {
                        case ProgressSample { Progress: { } p } sample:
                            lastStatus = new RelocationStatusView(sample.Info, p);
                            show(last = RelocationSample.FromStatus(sample.Info, p, clock.Elapsed));
                            break;
                        case ProgressSample sample: // between two steps, or it just ended
                            show(last = RelocationSample.FromInfo(sample.Info, last, clock.Elapsed));
                            break;
                        case ProgressDone done:
                            return new WatchResult(last, lastStatus, done.Disk, clock.Elapsed - started);
                    }
                }
                throw new IOException("the node ended the progress stream early");
            }
            catch (Exception ex) when (ex is ManagementException or HttpRequestException or IOException && !s.Stopping.IsCancellationRequested
                                       && (failingSince is null || clock.Elapsed - failingSince < Patience))
            {
                if (ex is NodeUnreachableException && last is null) throw new UnreachableException(ex.Message);
                failingSince ??= clock.Elapsed; // the node may be restarting, or the coordinator moving: follow again
                await Task.Delay(interval, s.Stopping);
            }
        }
    }

    /// <summary>A progress column showing whatever text its function gives.</summary>
    private sealed class TextColumn(Func<string> text) : ProgressColumn
    {
        protected override bool NoWrap => true;

        public override IRenderable Render(RenderOptions options, ProgressTask task, TimeSpan deltaTime) => new Text(text(), new Style(Color.Grey));
    }
}
