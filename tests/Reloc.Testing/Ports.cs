using System.Net;
using System.Net.Sockets;

namespace Reloc.Testing;

public static class Ports
{
    /// <summary>A loopback port free right now (the OS picks it; a race with other processes is possible but rare).</summary>
    public static int Free()
    {
        using var l = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        l.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)l.LocalEndPoint!).Port;
    }
}
