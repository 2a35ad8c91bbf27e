using System.Data.Common;
using Akka.Actor.Setup;
using Akka.Persistence.Sql.Config;
using LinqToDB;
using LinqToDB.Interceptors;
using Microsoft.Data.Sqlite;

namespace Reloc.Actors.Persistence;

/// <summary>
/// Gives every SQLite connection of the journal and the snapshot store a busy timeout, so a writer that finds the
/// database locked by another (the journal and the snapshot store write one file from several pooled connections)
/// waits in SQLite's own busy handler, which retries within a millisecond or two of the lock being free.
/// Without it SQLite answers SQLITE_BUSY at once and Microsoft.Data.Sqlite retries after a fixed 150 ms sleep: a
/// profile (dotnet-trace, fifth sitting) found two such sleeps on a relocation's critical path, in the ownership step
/// and in the completion: up to 0.3 s a relocation, whenever those writes met another one.
/// </summary>
public sealed class SqliteBusyTimeout(TimeSpan timeout) : ConnectionInterceptor
{
    public TimeSpan Timeout { get; } = timeout > TimeSpan.Zero && timeout <= TimeSpan.FromMinutes(10)
        ? timeout
        : throw new ArgumentOutOfRangeException(nameof(timeout), "the SQLite busy timeout must be above 0 and at most 10 minutes");

    public override void ConnectionOpened(ConnectionEventData eventData, DbConnection connection) => Apply(connection);

    public override Task ConnectionOpenedAsync(ConnectionEventData eventData, DbConnection connection, CancellationToken cancellationToken)
    {
        Apply(connection);
        return Task.CompletedTask;
    }

    /// <summary>A pooled connection keeps it; setting it again on every open costs one call into SQLite.</summary>
    public void Apply(DbConnection connection)
    {
        if (connection is SqliteConnection { Handle: { } db })
            SQLitePCL.raw.sqlite3_busy_timeout(db, (int)Timeout.TotalMilliseconds);
    }

    /// <summary>The actor-system setup that makes the SQL journal and snapshot store open their connections with
    /// <paramref name="connectionString"/> through this interceptor.</summary>
    public static Setup For(string connectionString, TimeSpan timeout) => new DataOptionsSetup(Options(connectionString, timeout));

    /// <summary>linq2db's options for <paramref name="connectionString"/> (SQLite, Microsoft.Data.Sqlite) with the interceptor.</summary>
    public static DataOptions Options(string connectionString, TimeSpan timeout) =>
        new DataOptions()
            .UseConnectionString(ProviderName.SQLiteMS, connectionString)
            .UseInterceptor(new SqliteBusyTimeout(timeout));
}
