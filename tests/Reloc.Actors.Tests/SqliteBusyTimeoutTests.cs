using Akka.Configuration;
using LinqToDB.Data;
using Microsoft.Data.Sqlite;
using Reloc.Actors.Persistence;
using Xunit;

namespace Reloc.Actors.Tests;

/// <summary>
/// The journal's SQLite connections wait for a locked database in SQLite's busy handler instead of failing at once
/// (Microsoft.Data.Sqlite then sleeps 150 ms before it tries again: 0.3 s of every relocation before this).
/// </summary>
public sealed class SqliteBusyTimeoutTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("reloc-busy-").FullName;
    private string Db => Path.Combine(_dir, "reloc.db");
    private string ConnectionString => $"Data Source={Db};Pooling=true";

    [Fact]
    public void A_connection_opened_through_the_options_has_the_busy_timeout()
    {
        using var connection = new DataConnection(SqliteBusyTimeout.Options(ConnectionString, TimeSpan.FromSeconds(3)));
        Assert.Equal(3000, connection.Execute<long>("PRAGMA busy_timeout"));
    }

    [Fact]
    public async Task A_writer_that_finds_the_database_locked_waits_for_the_lock_instead_of_failing()
    {
        RelocConfig.UseWriteAheadLog(Db);
        using var holder = new SqliteConnection(ConnectionString);
        holder.Open();
        using (var create = holder.CreateCommand())
        {
            create.CommandText = "CREATE TABLE t (x INTEGER)";
            create.ExecuteNonQuery();
        }
        using var waiter = new DataConnection(SqliteBusyTimeout.Options(ConnectionString, TimeSpan.FromSeconds(10)));
        var handle = ((SqliteConnection)waiter.OpenDbConnection()).Handle!;

        Exec(holder, "BEGIN IMMEDIATE; INSERT INTO t VALUES (1)");
        using var released = new ManualResetEventSlim();
        var commit = Task.Run(() =>
        {
            released.Wait();
            Exec(holder, "COMMIT");
        });
        // SQLite's own calls, not Microsoft.Data.Sqlite's retry loop. A connection without the interceptor answers
        // SQLITE_BUSY at once (the case that cost 150 ms a write)...
        using (var plain = new SqliteConnection(ConnectionString))
        {
            plain.Open();
            Assert.Equal(SQLitePCL.raw.SQLITE_BUSY, SQLitePCL.raw.sqlite3_exec(plain.Handle, "BEGIN IMMEDIATE"));
        }
        // ...one with it is still waiting 200 ms later (a bound on how long to look, not a timing), and gets the lock
        // once the holder commits.
        var begin = Task.Run(() => SQLitePCL.raw.sqlite3_exec(handle, "BEGIN IMMEDIATE"));
        Assert.NotSame(begin, await Task.WhenAny(begin, Task.Delay(TimeSpan.FromMilliseconds(200))));
        released.Set();
        await commit.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(SQLitePCL.raw.SQLITE_OK, await begin.WaitAsync(TimeSpan.FromSeconds(10)));
        SQLitePCL.raw.sqlite3_exec(handle, "ROLLBACK");
    }

    [Fact]
    public void Only_sqlite_nodes_get_the_setup_and_a_bad_timeout_is_refused()
    {
        Assert.NotNull(RelocConfig.PersistenceSetup(RelocConfig.Node(RelocConfig.Sqlite(Db))));
        Assert.Null(RelocConfig.PersistenceSetup(RelocConfig.Node(RelocConfig.Persistence("Host=localhost", "PostgreSQL.15"))));
        var zero = ConfigurationFactory.ParseString("reloc.persistence.sqlite-busy-timeout = 0s");
        Assert.Throws<ArgumentOutOfRangeException>(() => RelocConfig.PersistenceSetup(RelocConfig.Node(RelocConfig.Sqlite(Db), zero)));
    }

    private static void Exec(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }
}
