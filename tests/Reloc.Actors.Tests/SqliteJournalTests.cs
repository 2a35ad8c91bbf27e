using Microsoft.Data.Sqlite;
using Xunit;

namespace Reloc.Actors.Tests;

public sealed class SqliteJournalTests
{
    [Fact]
    public void A_nodes_journal_file_is_in_write_ahead_log_mode_and_keeps_it()
    {
        var dir = Directory.CreateTempSubdirectory("reloc-wal-").FullName;
        try
        {
            var file = Path.Combine(dir, "reloc.db");
            RelocConfig.UseWriteAheadLog(file);
            RelocConfig.UseWriteAheadLog(file); // again, as every start does: harmless
            // A fresh connection, as the journal's own are, sees the mode: it is the file's, not the connection's.
            using var connection = new SqliteConnection($"Data Source={file};Pooling=false");
            connection.Open();
            using var mode = connection.CreateCommand();
            mode.CommandText = "PRAGMA journal_mode;";
            Assert.Equal("wal", (string?)mode.ExecuteScalar());
            using var sync = connection.CreateCommand();
            sync.CommandText = "PRAGMA synchronous;";
            Assert.Equal(2L, (long)sync.ExecuteScalar()!); // FULL: a commit is durable when acknowledged
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            Directory.Delete(dir, recursive: true);
        }
    }
}
