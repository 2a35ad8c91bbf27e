using System.CommandLine;
using Reloc.Management;

namespace Reloc.Cli;

/// <summary>
/// The <c>reloc</c> console: <c>reloc [--node HOST:PORT] [--json] COMMAND</c>. Talks to any site node's
/// management API over HTTP or HTTPS (<see cref="ManagementApi"/>). Exit codes: 0 success, 1 the cluster refused or the
/// operation failed, 2 bad command line (sizes and rates are checked before connecting), 3 no node at the
/// address tried, 4 not authenticated (HTTP 401), 5 not allowed (HTTP 403: a viewer's change), 130 interrupted. Failures print one line, <c>reloc: REASON</c>, on stderr.
/// </summary>
public static class CliApp
{
    public const int Ok = ExitCode.Ok, Failed = ExitCode.Failed, Usage = ExitCode.Usage, Unreachable = ExitCode.Unreachable,
        NotAuthenticated = ExitCode.NotAuthenticated, NotAllowed = ExitCode.NotAllowed, Interrupted = ExitCode.Interrupted;
    public const string DefaultNode = "127.0.0.1:9110";

    public static readonly Option<string?> NodeOption = new("--node", "--url")
    {
        Description = $"management address of any site node: HOST:PORT (plain HTTP) or http(s)://HOST:PORT (default: $RELOC_NODE, else {DefaultNode})",
        Recursive = true,
    };

    public static readonly Option<string?> TokenFileOption = new("--token-file")
    {
        Description = "file whose first line is the bearer token (default: $RELOC_TOKEN_FILE, else the token in $RELOC_TOKEN)",
        Recursive = true,
    };

    public static readonly Option<string?> CaCertOption = new("--ca-cert")
    {
        Description = "PEM CA certificate to trust for an https node (a private CA; default: the system's CAs)",
        Recursive = true,
    };

    public static readonly Option<string?> ClientCertOption = new("--client-cert")
    {
        Description = "PEM client certificate for certificate authentication (with --client-key)",
        Recursive = true,
    };

    public static readonly Option<string?> ClientKeyOption = new("--client-key")
    {
        Description = "PEM key of --client-cert",
        Recursive = true,
    };

    public static readonly Option<bool> JsonOption = new("--json")
    {
        Description = "print the raw result as one JSON document (for scripts)",
        Recursive = true,
    };

    public static async Task<int> RunAsync(string[] args)
    {
        using var stop = new Interrupt();
        var root = BuildRoot(stop.Token);
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            // The specific complaint first ("Unrecognized command 'x'" before "Required command was not provided").
            var errors = parsed.Errors.Select(e => OneLine(e.Message)).OrderBy(m => m.StartsWith("Required command", StringComparison.Ordinal)).Distinct();
            Console.Error.WriteLine($"reloc: {string.Join("; ", errors)} (see reloc --help)");
            return Usage;
        }
        // Signals are ours (Interrupt): a watch stops cleanly after Ctrl-C instead of being cut off.
        return await parsed.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null });
    }

    public static RootCommand BuildRoot(CancellationToken stopping)
    {
        var root = new RootCommand("Reloc operator console: drive the site cluster's disks and relocations.");
        root.Options.Add(NodeOption);
        root.Options.Add(JsonOption);
        root.Options.Add(TokenFileOption);
        root.Options.Add(CaCertOption);
        root.Options.Add(ClientCertOption);
        root.Options.Add(ClientKeyOption);
        root.Subcommands.Add(ClusterCommands.Create(stopping));
        root.Subcommands.Add(DiskCommands.Create(stopping));
        root.Subcommands.Add(RelocationCommands.CreateRelocate(stopping));
        root.Subcommands.Add(RelocationCommands.CreateGroup(stopping));
        root.Subcommands.Add(LinkCommands.Create(stopping));
        root.Subcommands.Add(SiteCommands.Create(stopping));
        root.Subcommands.Add(EventCommands.Create(stopping));
        root.Subcommands.Add(AuditCommands.Create(stopping));
        return root;
    }

    /// <summary>Runs one console command: its failures become one line on stderr and an exit code.</summary>
    public static async Task<int> Execute(ParseResult parsed, CancellationToken stopping, Func<Session, Task<int>> body)
    {
        var output = Output.Create(parsed.GetValue(JsonOption));
        try
        {
            var node = parsed.GetValue(NodeOption);
            if (string.IsNullOrWhiteSpace(node)) node = Environment.GetEnvironmentVariable("RELOC_NODE");
            if (string.IsNullOrWhiteSpace(node)) node = DefaultNode;
            await using var session = new Session(node, output, stopping, ClientOptions(parsed));
            return await body(session);
        }
        catch (ManagementException ex) when (ex.Status == System.Net.HttpStatusCode.Unauthorized)
        {
            Console.Error.WriteLine($"reloc: {OneLine(ex.Message)}");
            return NotAuthenticated;
        }
        catch (ManagementException ex) when (ex.Status == System.Net.HttpStatusCode.Forbidden)
        {
            Console.Error.WriteLine($"reloc: {OneLine(ex.Message)}");
            return NotAllowed;
        }
        catch (UsageException ex)
        {
            Console.Error.WriteLine($"reloc: {ex.Message}");
            return Usage;
        }
        catch (UnreachableException ex)
        {
            Console.Error.WriteLine($"reloc: {ex.Message}");
            return Unreachable;
        }
        catch (ManagementException ex)
        {
            Console.Error.WriteLine($"reloc: {OneLine(ex.Message)}");
            return Failed;
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            Console.Error.WriteLine("reloc: interrupted");
            return Interrupted;
        }
        catch (IOException ex)
        {
            Console.Error.WriteLine($"reloc: the connection to the node failed: {OneLine(ex.Message)}");
            return Failed;
        }
    }

    public static string OneLine(string text) => Args.OneLine(text);

    /// <summary>The credentials and trust of the command line, else of the environment ($RELOC_TOKEN_FILE, $RELOC_TOKEN).</summary>
    private static ManagementClientOptions ClientOptions(ParseResult parsed)
    {
        var tokenFile = parsed.GetValue(TokenFileOption);
        if (string.IsNullOrWhiteSpace(tokenFile)) tokenFile = Environment.GetEnvironmentVariable("RELOC_TOKEN_FILE");
        string? token;
        if (!string.IsNullOrWhiteSpace(tokenFile))
        {
            try { token = File.ReadLines(tokenFile).Select(l => l.Trim()).FirstOrDefault(l => l.Length > 0); }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { throw new UsageException($"--token-file {tokenFile}: {ex.Message}"); }
            if (token is null) throw new UsageException($"--token-file {tokenFile}: the file is empty");
        }
        else token = Environment.GetEnvironmentVariable("RELOC_TOKEN") is { Length: > 0 } t ? t.Trim() : null;
        foreach (var (option, path) in new[] { (CaCertOption, parsed.GetValue(CaCertOption)), (ClientCertOption, parsed.GetValue(ClientCertOption)),
                     (ClientKeyOption, parsed.GetValue(ClientKeyOption)) })
            if (path is not null && !File.Exists(path)) throw new UsageException($"{option.Name} {path}: no such file");
        return new ManagementClientOptions(token, parsed.GetValue(CaCertOption), parsed.GetValue(ClientCertOption), parsed.GetValue(ClientKeyOption));
    }
}
