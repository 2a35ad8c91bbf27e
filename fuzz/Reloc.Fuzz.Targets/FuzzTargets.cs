namespace Reloc.Fuzz.Targets;

/// <summary>
/// The fuzz targets by name. Each takes one input and returns normally for anything a peer may send;
/// an exception escaping it is a finding (afl-fuzz counts it as a crash, the CI replay fails on it).
/// </summary>
public static class FuzzTargets
{
    public static readonly IReadOnlyDictionary<string, Action<byte[]>> All = new Dictionary<string, Action<byte[]>>
    {
        // The client's whole byte stream to a real NbdConnection, from the handshake on (OptionCodec too).
        ["server-handshake"] = ServerTargets.Handshake,
        // Requests after a fixed, valid handshake (RequestCodec and the transmission phase).
        ["server-transmission"] = ServerTargets.Transmission,
        // A fake server's whole byte stream to a real NbdClient (handshake, ReplyCodec, the receive loop).
        ["client"] = ClientTarget.Run,
        // A management API request body (first byte: which request), bound and checked as the server does.
        ["management"] = ManagementTarget.Run,
    };

    /// <summary>How long one input may take before it counts as a hang (afl-fuzz's -t is tighter).</summary>
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);

    internal static void RunWithin(Task run, string what)
    {
        if (!run.Wait(Deadline)) throw new TimeoutException($"{what} did not end within {Deadline.TotalSeconds:0} s of the end of its input");
        run.GetAwaiter().GetResult();
    }
}

/// <summary>An invariant of a target broke: a bug, not an input error.</summary>
public sealed class FuzzFinding(string message, Exception? inner = null) : Exception(message, inner);
