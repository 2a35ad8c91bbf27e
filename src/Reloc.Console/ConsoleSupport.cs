using System.Runtime.InteropServices;
using Reloc.Wan;

namespace Reloc.Cli;

/// <summary>Exit codes of the console's commands (and of reloc-node demo): 0 success, 1 the cluster refused or the
/// operation failed, 2 bad command line, 3 no node at the address tried, 130 interrupted.</summary>
public static class ExitCode
{
    /// <summary>4: the node wants credentials (HTTP 401: none given, or not accepted); 5: the credentials lack the role (HTTP 403).</summary>
    public const int Ok = 0, Failed = 1, Usage = 2, Unreachable = 3, NotAuthenticated = 4, NotAllowed = 5, Interrupted = 130;
}

/// <summary>The command line is wrong (a size, a rate, an address): nothing was sent.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>No node answered at the address tried.</summary>
public sealed class UnreachableException(string message) : Exception(message);

/// <summary>Client-side checks of arguments: a wrong one is a <see cref="UsageException"/> naming the option.</summary>
public static class Args
{
    public static long Size(string option, string text)
    {
        long bytes;
        try { bytes = Units.ParseSize(text); }
        catch (FormatException ex) { throw new UsageException($"{option}: {ex.Message}"); }
        if (bytes <= 0) throw new UsageException($"{option}: '{text}' is not a size: it must be above 0");
        return bytes;
    }

    /// <summary>A rate (0 = no cap).</summary>
    public static long Rate(string what, string text)
    {
        try { return Units.ParseRate(text); }
        catch (FormatException ex) { throw new UsageException($"{what}: {ex.Message}"); }
    }

    public static TimeSpan Duration(string option, string text)
    {
        try { return Units.ParseDuration(text); }
        catch (FormatException ex) { throw new UsageException($"{option}: {ex.Message}"); }
    }

    /// <summary>A message on one line (stderr's reason line).</summary>
    public static string OneLine(string text) =>
        string.Join(' ', text.ReplaceLineEndings("\n").Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0));
}

/// <summary>The first SIGINT/SIGTERM cancels <see cref="Token"/> (commands stop and clean up); a second one
/// terminates the process as usual.</summary>
public sealed class Interrupt : IDisposable
{
    private readonly CancellationTokenSource _cts = new();
    private readonly PosixSignalRegistration _int, _term;

    public Interrupt()
    {
        _int = PosixSignalRegistration.Create(PosixSignal.SIGINT, Handle);
        _term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Handle);
    }

    public CancellationToken Token => _cts.Token;

    private void Handle(PosixSignalContext ctx)
    {
        if (_cts.IsCancellationRequested) return; // the second one: default action, the process ends
        ctx.Cancel = true;
        _cts.Cancel();
    }

    public void Dispose()
    {
        _int.Dispose();
        _term.Dispose();
        _cts.Dispose();
    }
}
