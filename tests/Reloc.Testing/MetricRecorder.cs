using System.Diagnostics.Metrics;

namespace Reloc.Testing;

/// <summary>One measurement as a test sees it: the instrument's name, the value, the tags.</summary>
public sealed record RecordedMeasurement(string Instrument, double Value, IReadOnlyDictionary<string, object?> Tags)
{
    public string? Tag(string key) => Tags.TryGetValue(key, out var v) ? v?.ToString() : null;
}

/// <summary>
/// Listens to the instruments of one <see cref="Meter"/> instance only (not by name), so tests that run in
/// parallel with their own meters never see each other's measurements. Waiters are woken on every
/// measurement: a test waits for what it expects, never for a fixed time.
/// </summary>
public sealed class MetricRecorder : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly List<RecordedMeasurement> _all = [];
    private readonly object _gate = new();
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public MetricRecorder(Meter meter) : this(m => ReferenceEquals(m, meter)) { }

    /// <summary>Every meter <paramref name="listen"/> accepts: by name, for meters a component makes itself
    /// (only where nothing else in the process makes meters of that name at the same time).</summary>
    public MetricRecorder(Func<Meter, bool> listen)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (listen(instrument.Meter)) listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Add(i, v, tags));
        _listener.SetMeasurementEventCallback<int>((i, v, tags, _) => Add(i, v, tags));
        _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Add(i, v, tags));
        _listener.Start();
    }

    public IReadOnlyList<RecordedMeasurement> Measurements
    {
        get { lock (_gate) return _all.ToList(); }
    }

    public IReadOnlyList<RecordedMeasurement> Of(string instrument) => Measurements.Where(m => m.Instrument == instrument).ToList();

    /// <summary>Reads every observable instrument (gauges) once; their values arrive as measurements.</summary>
    public void Observe() => _listener.RecordObservableInstruments();

    /// <summary>Completes when <paramref name="done"/> holds over the measurements so far (observable ones polled on every wake-up).</summary>
    public async Task WaitForAsync(Func<IReadOnlyList<RecordedMeasurement>, bool> done, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        while (true)
        {
            Task changed;
            lock (_gate) changed = _changed.Task;
            if (done(Measurements)) return;
            try { await changed.WaitAsync(cts.Token); }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"metrics not as expected after {timeout}; seen: " +
                    string.Join(", ", Measurements.Select(m => m.Instrument).Distinct()));
            }
        }
    }

    private void Add(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var dict = new Dictionary<string, object?>(tags.Length);
        foreach (var t in tags) dict[t.Key] = t.Value;
        TaskCompletionSource wake;
        lock (_gate)
        {
            _all.Add(new RecordedMeasurement(instrument.Name, value, dict));
            wake = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        wake.TrySetResult();
    }

    public void Dispose() => _listener.Dispose();
}
