using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Dispatch;
using Akka.Event;
using Microsoft.Extensions.Logging;
using AkkaLogLevel = Akka.Event.LogLevel;
using LogLevel = Microsoft.Extensions.Logging.LogLevel;

namespace Reloc.Actors.Site;

/// <summary>The node's logger factory, handed to <see cref="MelLogger"/> through the actor system's setup
/// (Akka creates its loggers from a type, without arguments).</summary>
public sealed class MelLoggerSetup(ILoggerFactory loggers) : Setup
{
    public ILoggerFactory Loggers { get; } = loggers;
}

/// <summary>
/// Akka's logger writing to Microsoft.Extensions.Logging: one event, one MEL entry, with the class that
/// logged as its category (Akka.Cluster.Cluster, Reloc.Actors.Coordinator.MigrationCoordinator ...) and
/// the actor that logged (LogSource) in its state and text. Akka.Hosting's own LoggerFactoryLogger logs
/// everything under one category, with Akka's formatted line (level, time, thread) inside the message.
/// </summary>
public sealed class MelLogger : ActorBase, IRequiresMessageQueue<ILoggerMessageQueueSemantics>
{
    private readonly ILoggerFactory _loggers = Context.System.Settings.Setup.Get<MelLoggerSetup>().Value?.Loggers
        ?? throw new InvalidOperationException("MelLogger needs a MelLoggerSetup in the actor system's setup");
    private readonly Dictionary<Type, ILogger> _byClass = [];

    protected override bool Receive(object message)
    {
        switch (message)
        {
            case InitializeLogger:
                Sender.Tell(new LoggerInitialized());
                return true;
            case LogEvent e:
                Log(e);
                return true;
            default:
                return false;
        }
    }

    private void Log(LogEvent e)
    {
        var type = e.LogClass ?? typeof(DummyClassForStringSources);
        if (!_byClass.TryGetValue(type, out var logger))
            // Akka's own string-named sources (remoting, Cluster, CoordinatedShutdown) share a placeholder class: "Akka" says more.
            _byClass[type] = logger = _loggers.CreateLogger(type == typeof(DummyClassForStringSources) ? NodeLogging.AkkaCategory : type.FullName ?? type.Name);
        var level = Level(e.LogLevel());
        if (!logger.IsEnabled(level)) return;
        var entry = new Entry(e.LogSource ?? "", e.Message?.ToString() ?? "");
        logger.Log(level, default, entry, e.Cause, static (s, _) => s.ToString());
    }

    public static LogLevel Level(AkkaLogLevel level) => level switch
    {
        AkkaLogLevel.DebugLevel => LogLevel.Debug,
        AkkaLogLevel.InfoLevel => LogLevel.Information,
        AkkaLogLevel.WarningLevel => LogLevel.Warning,
        _ => LogLevel.Error,
    };

    /// <summary>The entry's state: structured (JSON output shows LogSource and Message) and its text.</summary>
    private sealed class Entry(string source, string message) : IReadOnlyList<KeyValuePair<string, object?>>
    {
        private readonly KeyValuePair<string, object?>[] _fields =
        [
            new("LogSource", source),
            new("Message", message),
            new("{OriginalFormat}", "[{LogSource}] {Message}"),
        ];

        public KeyValuePair<string, object?> this[int index] => _fields[index];
        public int Count => _fields.Length;
        public IEnumerator<KeyValuePair<string, object?>> GetEnumerator() => ((IEnumerable<KeyValuePair<string, object?>>)_fields).GetEnumerator();
        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => _fields.GetEnumerator();
        public override string ToString() => $"[{source}] {message}";
    }
}
