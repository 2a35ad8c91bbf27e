using Akka.Actor;
using Reloc.Actors.Disk;
using Reloc.Testing;
using Xunit;

namespace Reloc.Actors.Tests;

/// <summary>The same durable state on a real PostgreSQL server: a relocation stopped mid-way resumes
/// from what was persisted there, and ends with the source's bytes.</summary>
public sealed class PostgresPersistenceTests : IAsyncLifetime
{
    private const int Size = 4 << 20;
    private PostgresServer _pg = null!;
    private RelocationHarness _h = null!;

    public async Task InitializeAsync()
    {
        _pg = await PostgresServer.StartAsync();
        _h = await RelocationHarness.CreateAsync(Size, seed: 12);
    }

    public async Task DisposeAsync()
    {
        await _h.DisposeAsync();
        await _pg.DisposeAsync();
    }

    private ActorSystem NewSystem(string name) =>
        ActorSystem.Create(name, RelocConfig.Node(RelocConfig.Persistence(_pg.ConnectionString(), "PostgreSQL.15")));

    [Fact]
    public async Task A_relocation_resumes_from_state_persisted_in_postgresql()
    {
        var settings = new DiskSettings { Prefetch = false };
        using (var first = NewSystem("pg1"))
        {
            await _h.StartDestinationAsync(first, settings);
            await using (var guest = await _h.ConnectGuestAsync())
            {
                await guest.ReadAsync(0, new byte[10 * 65536]);
                await guest.WriteAsync(20 * 65536 + 5, new byte[] { 9, 9, 9 });
                await guest.FlushAsync();
            }
            await _h.StopDestinationAsync(first);
        }

        using var second = NewSystem("pg2");
        var finished = new TaskCompletionSource();
        var watcher = second.ActorOf(Props.Create(() => new FinishWatcher(finished)));
        second.EventStream.Subscribe(watcher, typeof(VirtualDiskProtocol.RelocationFinished));
        await _h.StartDestinationAsync(second, settings with { Prefetch = true });
        var resumed = await _h.StatusAsync();
        Assert.Equal(11L * 65536, resumed.LocalBytes); // blocks 0-9 read, block 20 read-modify-written
        await finished.Task.WaitAsync(TimeSpan.FromSeconds(60));
        var status = await _h.StatusAsync();
        Assert.Equal(Size, status.FetchedBytes + status.SkippedBytes + status.WrittenBytes); // nothing twice
        await _h.StopDestinationAsync(second);
        var expected = (byte[])_h.Content.Clone();
        new byte[] { 9, 9, 9 }.CopyTo(expected, 20 * 65536 + 5);
        Assert.Equal(Tool.Sha256Of(expected), Tool.Sha256(_h.DestImagePath));
    }

    private sealed class FinishWatcher : ReceiveActor
    {
        public FinishWatcher(TaskCompletionSource done) => Receive<VirtualDiskProtocol.RelocationFinished>(_ => done.TrySetResult());
    }
}
