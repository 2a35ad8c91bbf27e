using System.Buffers;
using System.Net.Sockets;
using Reloc.Nbd.Client;
using Reloc.Nbd.Protocol;

namespace Reloc.Fuzz.Targets;

/// <summary>
/// The NBD client: the input is everything a (fake) server sends, over a real Unix socket (the client is
/// built on one). The client negotiates, then asks for a read, a block status, a write, a trim and a
/// flush at once; whatever comes back must end in a result or an IOException, never another exception.
/// </summary>
public static class ClientTarget
{
    public static void Run(byte[] input)
    {
        ParseReplies(input);
        FuzzTargets.RunWithin(RunAsync(input), "the client");
    }

    /// <summary>The pure reply parsers on the raw input.</summary>
    private static void ParseReplies(byte[] input)
    {
        var seq = new ReadOnlySequence<byte>(input);
        ReplyCodec.TryParseHeader(seq, out _);
        ReplyCodec.TryParseError(seq, withOffset: false, out _);
        ReplyCodec.TryParseError(seq, withOffset: true, out _);
        ReplyCodec.TryParseHole(seq, out _, out _);
        if (ReplyCodec.TryParseBlockStatus(seq, out _, out var descriptors) && descriptors.Length != (input.Length - 4) / 8)
            throw new FuzzFinding($"{descriptors.Length} block descriptors from a body of {input.Length} bytes");
        OptionCodec.TryParseReplyHeader(seq, out _);
        OptionCodec.TryParseInfoType(seq, out _);
        OptionCodec.TryParseInfoExport(seq, out _, out _);
        OptionCodec.TryParseInfoBlockSize(seq, out _);
        OptionCodec.TryParseMetaContextReply(seq, out _, out _);
    }

    private static async Task RunAsync(byte[] input)
    {
        // An abstract socket name: nothing to clean up on disk, and every run its own.
        var path = "\0reloc-fuzz-" + Guid.NewGuid().ToString("N");
        var endPoint = new UnixDomainSocketEndPoint(path);
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(endPoint);
        listener.Listen(1);
        var accepting = listener.AcceptAsync();
        var options = new NbdClientOptions
        {
            UnixSocketPath = path, Export = "disk", MaxInFlight = 8,
            ConnectTimeout = TimeSpan.FromSeconds(5), DisconnectTimeout = TimeSpan.FromSeconds(1),
        };
        var connecting = NbdClient.ConnectAsync(options);
        using var server = await accepting;
        var serving = Task.WhenAll(SendAsync(server, input), DrainAsync(server));
        NbdClient? client = null;
        try { client = await connecting; }
        catch (IOException) { } // refused handshake, or the fake server ended it: a clean failure
        if (client is not null)
        {
            await using (client) await ExerciseAsync(client);
        }
        await serving;
    }

    /// <summary>What the client asks once connected (public: `Reloc.Fuzz client-session URI` runs it against a
    /// real server to record seeds).</summary>
    public static async Task ExerciseAsync(NbdClient client)
    {
        var buffer = new byte[8192];
        var ops = new List<Task>
        {
            client.ReadAsync(0, buffer),
            client.CanBlockStatus ? client.BlockStatusAsync(0, 8192) : Task.CompletedTask,
            client.IsReadOnly ? Task.CompletedTask : client.WriteAsync(4096, buffer.AsMemory(0, 512)),
            client.IsReadOnly ? Task.CompletedTask : client.TrimAsync(0, 4096),
            client.FlushAsync(),
        };
        foreach (var op in ops)
        {
            try { await op; }
            catch (IOException) { } // NbdClientException (an error reply) or NbdConnectionLostException
        }
    }

    private static async Task SendAsync(Socket server, byte[] input)
    {
        try
        {
            await server.SendAsync(input);
            server.Shutdown(SocketShutdown.Send);
        }
        catch (SocketException) { } // the client hung up first
    }

    private static async Task DrainAsync(Socket server)
    {
        var sink = new byte[16 * 1024];
        try
        {
            while (await server.ReceiveAsync(sink) > 0) { }
        }
        catch (SocketException) { }
    }
}
