using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Reloc.Testing;

/// <summary>An <see cref="ILoggerFactory"/> that keeps every formatted line (level included) for assertions.</summary>
public sealed class LogCapture : ILoggerFactory
{
    private readonly ConcurrentQueue<(LogLevel Level, string Line)> _lines = new();

    public IReadOnlyList<(LogLevel Level, string Line)> Lines => _lines.ToArray();

    public string Text => string.Join('\n', _lines.Select(l => $"{l.Level}: {l.Line}"));

    public IEnumerable<string> At(LogLevel level) => _lines.Where(l => l.Level == level).Select(l => l.Line);

    /// <summary>Polls (with a deadline, no fixed sleep) until a line at <paramref name="level"/> contains <paramref name="text"/>.</summary>
    public async Task<string> WaitForAsync(LogLevel level, string text, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(10));
        while (true)
        {
            var hit = At(level).FirstOrDefault(l => l.Contains(text, StringComparison.Ordinal));
            if (hit is not null) return hit;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"no {level} log line containing '{text}'; log:\n{Text}");
            await Task.Delay(20);
        }
    }

    public ILogger CreateLogger(string categoryName) => new Logger(this);
    public void AddProvider(ILoggerProvider provider) => throw new NotSupportedException();
    public void Dispose() { }

    private sealed class Logger(LogCapture owner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            owner._lines.Enqueue((logLevel, formatter(state, exception) + (exception is null ? "" : $" {exception.Message}")));
    }
}
