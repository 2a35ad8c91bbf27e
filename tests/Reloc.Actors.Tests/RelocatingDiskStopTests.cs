using Akka.Actor;
using Reloc.Actors.Disk;
using Reloc.Storage;
using Xunit;

namespace Reloc.Actors.Tests;

public sealed class RelocatingDiskStopTests
{
    /// <summary>Swallows everything: a disk actor that will never answer.</summary>
    private sealed class Silent : ReceiveActor
    {
        public Silent() => ReceiveAny(_ => { });
    }

    [Fact]
    public async Task A_request_waiting_on_the_disk_actor_fails_at_once_when_its_system_terminates()
    {
        var dir = Directory.CreateTempSubdirectory("reloc-stop-").FullName;
        try
        {
            using var image = RawImage.Create(Path.Combine(dir, "d.img"), 1 << 20);
            var system = ActorSystem.Create("stopping");
            var gone = new CancellationTokenSource();
            system.RegisterOnTermination(() => gone.Cancel());
            var settings = new DiskSettings { MissTimeout = TimeSpan.FromMinutes(10) };
            var disk = new RelocatingDisk(image, new DiskState(1 << 20, 64 << 10), system.ActorOf(Props.Create(() => new Silent())), settings,
                stopping: gone.Token);

            var read = disk.ReadAsync(0, new byte[4096], CancellationToken.None).AsTask(); // a miss: it waits on the actor
            Assert.False(read.IsCompleted);
            await system.Terminate();
            // Well before the ask's own timeout (10 min + 5 s): a downed node's NBD drain is not held up by it.
            var error = await Assert.ThrowsAsync<BlockDeviceException>(() => read.WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.Contains("stopping", error.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
