using System.Net;
using Reloc.Nbd.Server;
using Reloc.Nbd.Telemetry;
using Reloc.Storage;

namespace Reloc.Testing;

/// <summary>An in-process NBD server on an ephemeral loopback port (and a Unix socket) over temp images.</summary>
public sealed class TestServer : IAsyncDisposable
{
    private readonly List<RawImage> _images = [];

    private TestServer(string dir, NbdServer server)
    {
        Dir = dir;
        Server = server;
    }

    public string Dir { get; }
    public NbdServer Server { get; }
    public int Port { get; private set; }
    public string UnixSocket => Path.Combine(Dir, "nbd.sock");

    public string Uri(string export = "disk") => $"nbd://127.0.0.1:{Port}/{export}";
    public string UnixUri(string export = "disk") => $"nbd+unix:///{export}?socket={UnixSocket}";
    public string ImagePath(string export = "disk") => Path.Combine(Dir, export + ".img");

    /// <summary>Starts a server with one writable export "disk" of <paramref name="size"/> bytes, a
    /// read-only export "ro" filled with <paramref name="roContent"/> if given, and any extra exports.</summary>
    public static Task<TestServer> StartAsync(long size = 64 << 20, byte[]? initial = null, byte[]? roContent = null,
        NbdServerSettings? settings = null, int port = 0, string? dir = null, NbdMetrics? metrics = null,
        Microsoft.Extensions.Logging.ILoggerFactory? loggers = null)
    {
        dir ??= Directory.CreateTempSubdirectory("reloc-nbd-test-").FullName;
        var catalog = new ExportCatalog();
        var server = new NbdServer(catalog, settings, loggers, metrics);
        var ts = new TestServer(dir, server);
        var disk = File.Exists(ts.ImagePath("disk")) ? ts.Reopen("disk") : ts.AddImage("disk", size, initial, readOnly: false);
        catalog.Add(new NbdExport("disk", disk, "test disk"));
        if (roContent is not null) catalog.Add(new NbdExport("ro", ts.AddImage("ro", roContent.Length, roContent, readOnly: true)));
        ts.Port = ((IPEndPoint)server.ListenTcp(new IPEndPoint(IPAddress.Loopback, port))).Port;
        server.ListenUnix(ts.UnixSocket);
        return Task.FromResult(ts);
    }

    private RawImage AddImage(string name, long size, byte[]? content, bool readOnly)
    {
        var path = ImagePath(name);
        using (var f = new FileStream(path, FileMode.CreateNew))
        {
            f.SetLength(size);
            if (content is not null) f.Write(content);
        }
        var image = RawImage.Open(path, readOnly);
        _images.Add(image);
        return image;
    }

    private RawImage Reopen(string name)
    {
        var image = RawImage.Open(ImagePath(name), readOnly: false);
        _images.Add(image);
        return image;
    }

    /// <summary>Stops serving but keeps the directory and images (a restart with the same dir and port reuses them).</summary>
    public async Task StopAsync()
    {
        await Server.DisposeAsync();
        foreach (var i in _images) i.Dispose();
        _images.Clear();
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        if (Directory.Exists(Dir)) Directory.Delete(Dir, recursive: true);
    }
}
