using System.CommandLine;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Reloc.Nbd;
using Reloc.Nbd.Server;
using Reloc.Nbd.Tls;
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
        var acl = new Option<string?>("--acl")
        {
            Description = "export access rules, one a line: EXPORT-GLOB [cert=CN-OR-SUBJECT]... [net=CIDR]..., and 'default allow|deny' "
                          + "(deny when absent); certificates count only with --tls-verify-peer",
        };
        var command = new Command("serve", "Serve raw image files over NBD") { listen, exports, unix, logLevel, acl };
        var tls = new TlsCli();
        tls.AddTo(command);
        command.SetAction((result, ct) => RunAsync(
            result.GetValue(listen)!, result.GetValue(exports)!, result.GetValue(unix), result.GetValue(logLevel), () => tls.Settings(result),
            result.GetValue(acl)));
        return command;
    }

    private static async Task<int> RunAsync(string listen, string[] exportSpecs, string? unixPath, LogLevel level, Func<NbdTlsSettings> tlsSettings,
        string? aclFile)
    {
        using var loggers = HostSupport.Loggers(level);
        var images = new List<RawImage>();
        try
        {
            var tls = tlsSettings();
            IExportAccessPolicy access = aclFile is null ? AllowAllExports.Instance : ExportAcl.Parse(File.ReadAllText(aclFile));
            var catalog = new ExportCatalog();
            foreach (var spec in exportSpecs)
            {
                var (name, path, readOnly) = HostSupport.ParseExport(spec);
                var image = RawImage.Open(path, readOnly);
                images.Add(image);
                catalog.Add(new NbdExport(name, image, $"raw image {Path.GetFileName(path)}"));
            }
            var endPoint = HostSupport.ParseEndPoint(listen);
            using var stop = new StopSignal();

            // Before the listening line: a client that connects after it meets compiled code, not the JIT.
            if (await NbdWarmUp.TryRunAsync(Path.GetTempPath(), tls.Enabled, NbdWarmUp.DefaultTimeout) is { Failure: not null } warm)
                loggers.CreateLogger("Reloc.Node").LogWarning("NBD warm-up did not finish ({Report}): the first client may be slower", warm);
            await using var server = new NbdServer(catalog, new NbdServerSettings { Tls = tls, ExportAccess = access }, loggers);
            var tcp = server.ListenTcp(endPoint);
            var unix = unixPath is null ? null : server.ListenUnix(unixPath);

            var scheme = TlsCli.Scheme(tls);
            Console.Out.WriteLine($"reloc-node: listening on {scheme}://{tcp}{(unix is null ? "" : $" and {scheme}+unix:///?socket={unixPath}")} " +
                                  $"exports: {string.Join(", ", catalog.All.Select(e => e.Name))}");
            Console.Out.Flush();
            await stop.Task;
            await server.StopAsync();
            Console.Error.WriteLine("reloc-node: stopped, exports flushed");
            return 0;
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or IOException or SocketException or UnauthorizedAccessException
                                       or System.Security.Cryptography.CryptographicException)
        {
            Console.Error.WriteLine($"reloc-node serve: {ex.Message}");
            return 2;
        }
        finally
        {
            foreach (var image in images) image.Dispose();
        }
    }
}
