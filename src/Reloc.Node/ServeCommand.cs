using System.CommandLine;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Reloc.Nbd.Server;
using Reloc.Storage;

namespace Reloc.Node;

/// <summary><c>reloc-node serve</c>: export raw images over NBD until SIGTERM/SIGINT, then drain and exit 0.</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var listen = new Option<string>("--listen")
        {
            Description = "TCP address to listen on (HOST:PORT; port 0 picks a free one)",
            DefaultValueFactory = _ => "127.0.0.1:10809",
        };
        var exports = new Option<string[]>("--export")
        {
            Description = "an export as NAME=PATH, or NAME=PATH:ro for read-only; repeatable",
            Required = true,
            Arity = ArgumentArity.OneOrMore,
        };
        var unix = new Option<string?>("--unix") { Description = "also listen on this Unix socket path" };
        var logLevel = new Option<LogLevel>("--log-level")
        {
            Description = "log level on stderr",
            DefaultValueFactory = _ => LogLevel.Warning,
        };
        var command = new Command("serve", "Serve raw image files over NBD") { listen, exports, unix, logLevel };
        command.SetAction((result, ct) => RunAsync(
            result.GetValue(listen)!, result.GetValue(exports)!, result.GetValue(unix), result.GetValue(logLevel)));
        return command;
    }

    private static async Task<int> RunAsync(string listen, string[] exportSpecs, string? unixPath, LogLevel level)
    {
        using var loggers = LoggerFactory.Create(b => b
            .SetMinimumLevel(level)
            .AddSimpleConsole(o => o.SingleLine = true)
            .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace));
        var images = new List<RawImage>();
        try
        {
            var catalog = new ExportCatalog();
            foreach (var spec in exportSpecs)
            {
                var (name, path, readOnly) = ParseExport(spec);
                var image = RawImage.Open(path, readOnly);
                images.Add(image);
                catalog.Add(new NbdExport(name, image, $"raw image {Path.GetFileName(path)}"));
            }
            var endPoint = ParseEndPoint(listen);

            await using var server = new NbdServer(catalog, new NbdServerSettings(), loggers);
            var tcp = server.ListenTcp(endPoint);
            var unix = unixPath is null ? null : server.ListenUnix(unixPath);

            var stop = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Handle);
            using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, Handle);

            Console.Out.WriteLine($"reloc-node: listening on nbd://{tcp}{(unix is null ? "" : $" and nbd+unix:///?socket={unixPath}")} " +
                                  $"exports: {string.Join(", ", catalog.All.Select(e => e.Name))}");
            Console.Out.Flush();
            await stop.Task;
            await server.StopAsync();
            Console.Error.WriteLine("reloc-node: stopped, exports flushed");
            return 0;

            void Handle(PosixSignalContext ctx)
            {
                ctx.Cancel = true; // we exit ourselves once drained
                stop.TrySetResult();
            }
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or IOException or SocketException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"reloc-node serve: {ex.Message}");
            return 2;
        }
        finally
        {
            foreach (var image in images) image.Dispose();
        }
    }

    internal static (string Name, string Path, bool ReadOnly) ParseExport(string spec)
    {
        int eq = spec.IndexOf('=');
        if (eq <= 0 || eq == spec.Length - 1) throw new ArgumentException($"--export '{spec}': expected NAME=PATH[:ro]");
        string name = spec[..eq], path = spec[(eq + 1)..];
        bool ro = path.EndsWith(":ro", StringComparison.Ordinal);
        if (ro) path = path[..^3];
        return (name, path, ro);
    }

    internal static IPEndPoint ParseEndPoint(string text)
    {
        int colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text[(colon + 1)..], out int port) || port is < 0 or > 65535)
            throw new FormatException($"--listen '{text}': expected HOST:PORT");
        var host = text[..colon].Trim('[', ']');
        var address = host == "localhost" ? IPAddress.Loopback : IPAddress.Parse(host);
        return new IPEndPoint(address, port);
    }
}
