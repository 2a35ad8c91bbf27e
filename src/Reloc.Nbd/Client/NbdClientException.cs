using Reloc.Nbd.Protocol;

namespace Reloc.Nbd.Client;

/// <summary>The server answered a request with an error; the connection is still usable.</summary>
public class NbdClientException : IOException
{
    public NbdClientException(NbdError error, string message) : base(message) => Error = error;

    public NbdClientException(NbdError error, NbdCommand command, long offset, long length, string export, string? serverMessage)
        : base($"NBD {command} of {length} bytes at offset {offset} on export '{export}' failed: {error} (errno {(uint)error})"
               + (string.IsNullOrEmpty(serverMessage) ? "" : $": {serverMessage}"))
    {
        Error = error;
        Command = command;
        Offset = offset;
        Length = length;
    }

    public NbdError Error { get; }
    public NbdCommand? Command { get; }
    public long Offset { get; }
    public long Length { get; }
}

/// <summary>The connection is gone (closed, reset, or dropped after a protocol violation): the request
/// may or may not have reached the server, and every later call on that client fails the same way.</summary>
public sealed class NbdConnectionLostException(string message, Exception? inner = null) : IOException(message, inner);

/// <summary>Negotiation failed: not an NBD server, an option it must not refuse, or an export it will not serve.</summary>
public sealed class NbdHandshakeException(string message, string export, OptionReplyType? reply = null, Exception? inner = null)
    : IOException(message, inner)
{
    public string Export { get; } = export;

    /// <summary>The server's error reply, when it sent one.</summary>
    public OptionReplyType? Reply { get; } = reply;
}
