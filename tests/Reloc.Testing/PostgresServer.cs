using System.Diagnostics;

namespace Reloc.Testing;

/// <summary>A throwaway PostgreSQL 15 on a loopback port, in a temporary directory, for persistence tests
/// (as root: the server runs as the postgres user, like the Debian package's).</summary>
public sealed class PostgresServer : IAsyncDisposable
{
    private const string Bin = "/usr/lib/postgresql/15/bin";
    private readonly string _dir;

    private PostgresServer(string dir, int port)
    {
        _dir = dir;
        Port = port;
    }

    public int Port { get; }
    public string ConnectionString(string database = "reloc") =>
        $"Host=127.0.0.1;Port={Port};Username=postgres;Password=pw;Database={database};Pooling=true";

    public static async Task<PostgresServer> StartAsync()
    {
        if (!File.Exists(Path.Combine(Bin, "initdb")))
            throw new InvalidOperationException($"PostgreSQL 15 is not installed ({Bin}); apt-get install postgresql");
        var dir = Directory.CreateTempSubdirectory("reloc-pg-").FullName;
        int port = Ports.Free();
        await File.WriteAllTextAsync(Path.Combine(dir, "pw"), "pw");
        await Tool.CheckAsync("chown", "-R", "postgres", dir);
        await AsPostgres($"{Bin}/initdb -D {dir}/data -U postgres --pwfile={dir}/pw -A scram-sha-256 --no-sync");
        await AsPostgres($"{Bin}/pg_ctl -D {dir}/data -l {dir}/log -w -o '-c listen_addresses=127.0.0.1 -p {port} -k {dir} -c fsync=off' start");
        var server = new PostgresServer(dir, port);
        await AsPostgres($"PGPASSWORD=pw psql -h 127.0.0.1 -p {port} -U postgres -c 'create database reloc'");
        return server;
    }

    private static Task<string> AsPostgres(string command) => Tool.CheckAsync("su", "postgres", "-s", "/bin/sh", "-c", command);

    public async ValueTask DisposeAsync()
    {
        await Tool.RunAsync("su", ["postgres", "-s", "/bin/sh", "-c", $"{Bin}/pg_ctl -D {_dir}/data -m immediate -w stop"], TimeSpan.FromSeconds(30));
        Directory.Delete(_dir, recursive: true);
    }
}
