using System.Net;
using System.Net.Sockets;

namespace Reloc.Testing;

public static class Ports
{
    /// <summary>Below Linux's ephemeral range (32768-60999): a port picked here is never taken meanwhile as the local
    /// end of some process's outgoing connection (a node retrying a seed that is not up yet makes many), which a
    /// port the OS picks from that range can be, between the pick and the listen.</summary>
    private const int First = 20000, End = 32768;

    /// <summary>The next candidate: one counter for the test process, from a random start, so no two picks of one run
    /// are the same port (random picks met once in CI: site-b's NBD port was site-c's cluster port, and both listened).</summary>
    private static int _next = Random.Shared.Next(End - First);

    /// <summary>A loopback port free right now, below the ephemeral range, never one this process picked before.</summary>
    public static int Free()
    {
        for (int attempt = 0; ; attempt++)
        {
            int port = First + (int)((uint)Interlocked.Increment(ref _next) % (End - First));
            using var l = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                l.Bind(new IPEndPoint(IPAddress.Loopback, port));
                return port;
            }
            catch (SocketException) when (attempt < 1000) { } // taken by another process: the next one
        }
    }
}
