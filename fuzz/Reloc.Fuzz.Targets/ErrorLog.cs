using Microsoft.Extensions.Logging;

namespace Reloc.Fuzz.Targets;

/// <summary>A logger that keeps the first error: NbdConnection catches every exception and logs the
/// unexpected ones ("connection failed") at Error level, which is what the fuzzer is looking for.</summary>
internal sealed class ErrorLog : ILogger
{
    public string? FirstError { get; private set; }
    public Exception? FirstException { get; private set; }

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
    public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Error;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (logLevel < LogLevel.Error || FirstError is not null) return;
        FirstError = formatter(state, exception);
        FirstException = exception;
    }
}
