using Akka.Hosting;
using Microsoft.Extensions.Logging;
using AkkaLogLevel = Akka.Event.LogLevel;

namespace Reloc.Actors.Site;

/// <summary>Akka's logs through the node's Microsoft.Extensions.Logging factory: one pipeline, one format,
/// one level setting for the whole node.</summary>
public static class NodeLogging
{
    /// <summary>Akka's standard-out logger prints before the loggers start and after they stop; stdout is for
    /// the node's machine-readable lines only. Over the node's configuration when it logs through MEL.</summary>
    public static Akka.Configuration.Config Quiet { get; } = Akka.Configuration.ConfigurationFactory.ParseString("akka.stdout-loglevel = OFF");

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
