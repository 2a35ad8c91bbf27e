using Akka;
using Akka.Actor;
using Akka.Hosting;
using Microsoft.Extensions.Logging;
using AkkaLogLevel = Akka.Event.LogLevel;

namespace Reloc.Actors.Site;

/// <summary>Akka's logs through the node's Microsoft.Extensions.Logging factory: one pipeline, one format,
/// one level setting for the whole node.</summary>
public static class NodeLogging
{
    /// <summary>The category probed for Akka's level: Akka's own loggers' categories start with it.</summary>
    public const string AkkaCategory = "Akka";

    /// <summary>Routes Akka's log events to <paramref name="loggers"/> (when given) at <see cref="AkkaLevel"/>,
    /// through <see cref="MelLogger"/> (each event under the category of the class that logged it).</summary>
    public static AkkaConfigurationBuilder Configure(AkkaConfigurationBuilder builder, ILoggerFactory? loggers)
    {
        if (loggers is null) return builder; // Akka's own loggers and akka.loglevel, as configured
        return builder
            .AddSetup(new MelLoggerSetup(loggers))
            .ConfigureLoggers(setup =>
            {
                setup.LogLevel = AkkaLevel(loggers);
                setup.ClearLoggers();
                setup.AddLogger<MelLogger>();
            });
    }

    /// <summary>When the actor system terminates, Akka stops its loggers and prints what is logged after that
    /// (remoting's "shut down" lines) on its standard-out logger, at the level in force, in its own format.
    /// From the last shutdown phase on only warnings and errors are logged: those few lines are then worth the odd format.</summary>
    public static void QuietAfterLoggersStop(ActorSystem system) =>
        CoordinatedShutdown.Get(system).AddTask(CoordinatedShutdown.PhaseBeforeActorSystemTerminate, "reloc-quiet-stdout-logger", () =>
        {
            if (system.EventStream.LogLevel < AkkaLogLevel.WarningLevel) system.EventStream.SetLogLevel(AkkaLogLevel.WarningLevel);
            return Task.FromResult(Done.Instance);
        });

    /// <summary>The most detailed Akka level the factory lets through for Akka's categories: Akka filters
    /// first (an event it drops costs nothing), so it must not drop what the factory would print.</summary>
    public static AkkaLogLevel AkkaLevel(ILoggerFactory loggers)
    {
        var probe = loggers.CreateLogger(AkkaCategory);
        if (probe.IsEnabled(LogLevel.Debug)) return AkkaLogLevel.DebugLevel;
        if (probe.IsEnabled(LogLevel.Information)) return AkkaLogLevel.InfoLevel;
        if (probe.IsEnabled(LogLevel.Warning)) return AkkaLogLevel.WarningLevel;
        return AkkaLogLevel.ErrorLevel;
    }
}
