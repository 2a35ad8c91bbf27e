using Akka.Event;

namespace Reloc.Actors;

/// <summary>How much a decision core's log line matters (the cores have no logger: their shells write the lines).</summary>
public enum CoreLogLevel { Debug, Info, Warning, Error }

public static class CoreLog
{
    /// <summary>A core's log line, written by an actor shell.</summary>
    public static void Write(this ILoggingAdapter log, CoreLogLevel level, string text)
    {
        switch (level)
        {
            case CoreLogLevel.Debug: log.Debug(text); break;
            case CoreLogLevel.Info: log.Info(text); break;
            case CoreLogLevel.Warning: log.Warning(text); break;
            default: log.Error(text); break;
        }
    }
}
