using Akka.Configuration;
using Reloc.Actors.Disk;

namespace Reloc.Actors;

/// <summary>Loads reference.conf and builds node configurations from it.</summary>
public static class RelocConfig
{
    public static Config Reference { get; } = Load();

    private static Config Load()
    {
        using var stream = typeof(RelocConfig).Assembly.GetManifestResourceStream("Reloc.Actors.reference.conf")
            ?? throw new InvalidOperationException("reference.conf is not embedded");
        using var reader = new StreamReader(stream);
        return ConfigurationFactory.ParseString(reader.ReadToEnd());
    }

    /// <summary>Persistence to one SQLite file (journal and snapshots), tables created on first use.
    /// Nodes call <see cref="UseWriteAheadLog"/> on the file first.</summary>
    public static Config Sqlite(string databasePath) => Persistence(SqliteConnectionString(databasePath), "SQLite.MS");

    private static string SqliteConnectionString(string databasePath) => $"Data Source={databasePath};Pooling=true";

    /// <summary>Puts a node's SQLite file (created if missing; its folder must exist) in write-ahead-log mode, a
    /// property of the file kept across opens: a commit is then one fsync of the log instead of a rollback journal's
    /// create, fsyncs and delete, which made every persisted relocation step and block-map write several times
    /// slower (5 ms against 0.4 ms a commit here). Still durable at commit: synchronous stays FULL.</summary>
    public static void UseWriteAheadLog(string databasePath)
    {
        using var connection = new Microsoft.Data.Sqlite.SqliteConnection(SqliteConnectionString(databasePath));
        connection.Open();
        using var wal = connection.CreateCommand();
        wal.CommandText = "PRAGMA journal_mode=WAL;";
        wal.ExecuteNonQuery();
    }

    /// <summary>What the node's persistence needs beside its HOCON: for SQLite, connections that wait for a locked
    /// database in SQLite's busy handler (reloc.persistence.sqlite-busy-timeout, <see cref="Persistence.SqliteBusyTimeout"/>);
    /// nothing for other databases.</summary>
    public static Akka.Actor.Setup.Setup? PersistenceSetup(Config node)
    {
        // Microsoft.Data.Sqlite's provider only (the one nodes configure): the options name it.
        if (node.GetString("akka.persistence.journal.sql.provider-name", "") != LinqToDB.ProviderName.SQLiteMS) return null;
        var timeout = node.GetTimeSpan("reloc.persistence.sqlite-busy-timeout", TimeSpan.FromSeconds(5));
        return Reloc.Actors.Persistence.SqliteBusyTimeout.For(node.GetString("akka.persistence.journal.sql.connection-string"), timeout);
    }

    /// <summary>An actor system on a node configuration, with the setup its persistence needs.</summary>
    public static Akka.Actor.ActorSystem CreateSystem(string name, Config node)
    {
        var bootstrap = Akka.Actor.BootstrapSetup.Create().WithConfig(node);
        return PersistenceSetup(node) is { } setup
            ? Akka.Actor.ActorSystem.Create(name, bootstrap.And(setup))
            : Akka.Actor.ActorSystem.Create(name, bootstrap);
    }

    public static Config Persistence(string connectionString, string providerName)
    {
        var cs = connectionString.Replace("\\", "\\\\").Replace("\"", "\\\"");
        return ConfigurationFactory.ParseString($$"""
            akka.persistence.journal.sql { connection-string = "{{cs}}", provider-name = "{{providerName}}", auto-initialize = true }
            akka.persistence.snapshot-store.sql { connection-string = "{{cs}}", provider-name = "{{providerName}}", auto-initialize = true }
            """);
    }

    /// <summary>A node configuration: overrides, then persistence, then the defaults.</summary>
    public static Config Node(Config persistence, string? overrides = null) =>
        Node(persistence, ConfigurationFactory.ParseString(overrides ?? "akka.loglevel = WARNING"));

    public static Config Node(Config persistence, Config overrides) =>
        overrides
            .WithFallback(persistence)
            .WithFallback(Reference)
            .WithFallback(Akka.Persistence.Sql.SqlPersistence.DefaultConfiguration); // the plugin's own defaults

    public static DiskSettings DiskSettings(Config config)
    {
        var c = config.GetConfig("reloc.disk");
        return new DiskSettings
        {
            BlockSize = (int)(c.GetByteSize("block-size") ?? 65536),
            MissTimeout = c.GetTimeSpan("miss-timeout"),
            Prefetch = c.GetBoolean("prefetch"),
            RateBytesPerSecond = c.GetByteSize("rate") ?? 0,
            PrefetchChunkBytes = (int)(c.GetByteSize("prefetch-chunk") ?? 128 * 1024),
            PrefetchChunkMinBytes = (int)(c.GetByteSize("prefetch-chunk-min") ?? 128 * 1024),
            PrefetchChunkMaxBytes = (int)(c.GetByteSize("prefetch-chunk-max") ?? 4 << 20),
            PrefetchReadTime = c.GetTimeSpan("prefetch-read-time", TimeSpan.FromMilliseconds(2)),
            PrefetchMissQueueTarget = c.GetTimeSpan("prefetch-miss-queue-target", TimeSpan.FromMilliseconds(1)),
            PrefetchConnections = c.GetInt("prefetch-connections", 1),
            MaxPrefetchWindow = c.GetInt("max-prefetch-window"),
            PrefetchInitialWindow = c.GetInt("prefetch-initial-window"),
            PrefetchBeforeScan = c.GetBoolean("prefetch-before-scan", true),
            PrefetchQueueTarget = c.GetTimeSpan("prefetch-queue-target"),
            PersistInterval = c.GetTimeSpan("persist-interval"),
            SnapshotEvery = c.GetInt("snapshot-every"),
            RestartBackoffMin = c.GetTimeSpan("restart-backoff-min", TimeSpan.FromSeconds(1)),
            RestartBackoffMax = c.GetTimeSpan("restart-backoff-max", TimeSpan.FromSeconds(30)),
            FaultFsyncDelay = c.GetTimeSpan("fault-injection.fsync-delay", TimeSpan.Zero),
        }.Validate();
    }
}
