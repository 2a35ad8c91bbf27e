using System.CommandLine;
using Reloc.Management;

namespace Reloc.Cli;

/// <summary>
/// The <c>reloc</c> console: <c>reloc [--node HOST:PORT] [--json] COMMAND</c>. Talks to any site node's
/// management API over HTTP (<see cref="ManagementApi"/>). Exit codes: 0 success, 1 the cluster refused or the
/// operation failed, 2 bad command line (sizes and rates are checked before connecting), 3 no node at the
/// address tried, 130 interrupted. Failures print one line, <c>reloc: REASON</c>, on stderr.
/// </summary>
public static class CliApp
{
    public const int Ok = ExitCode.Ok, Failed = ExitCode.Failed, Usage = ExitCode.Usage, Unreachable = ExitCode.Unreachable,
        Interrupted = ExitCode.Interrupted;
    public const string DefaultNode = "127.0.0.1:9110";

    public static readonly Option<string?> NodeOption = new("--node")
    {
        Description = $"management address of any site node, HOST:PORT (default: $RELOC_NODE, else {DefaultNode})",
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
        root.Subcommands.Add(ClusterCommands.Create(stopping));
        root.Subcommands.Add(DiskCommands.Create(stopping));
        root.Subcommands.Add(RelocationCommands.CreateRelocate(stopping));
        root.Subcommands.Add(RelocationCommands.CreateGroup(stopping));
        root.Subcommands.Add(EventCommands.Create(stopping));
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
            await using var session = new Session(node, output, stopping);
            return await body(session);
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
}
