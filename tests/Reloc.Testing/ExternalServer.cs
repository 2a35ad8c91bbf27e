using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Reloc.Nbd.Client;

namespace Reloc.Testing;

/// <summary>An nbdkit or qemu-nbd process on a free loopback port, killed (SIGKILL) on dispose.</summary>
public sealed class ExternalServer : IAsyncDisposable
{
    private readonly string _name;
    private readonly string _file;
    private readonly Func<int, string[]> _args;
    private readonly StringBuilder _log = new();
    private Process? _process;

    private ExternalServer(string name, string file, Func<int, string[]> args, int port)
    {
        _name = name;
        _file = file;
        _args = args;
        Port = port;
    }

    public int Port { get; }
    public string Uri(string export = "") => $"nbd://127.0.0.1:{Port}/{export}";
    public NbdClientOptions Options(string export = "") => new() { Host = "127.0.0.1", Port = Port, Export = export };

    /// <summary>nbdkit in the foreground on 127.0.0.1; <paramref name="args"/> are the plugin, its parameters and any extra flags.</summary>
    /// <remarks>nbdkit sets PR_SET_PDEATHSIG, which fires when the *thread* that forked it exits: a thread-pool
    /// thread may retire at any moment, so a shell that lives as long as nbdkit is its parent instead.</remarks>
    public static Task<ExternalServer> StartNbdkitAsync(params string[] args) =>
        StartAsync("nbdkit", "/bin/sh", port => ["-c", "nbdkit \"$@\" & wait $!", "sh", "-f", "-i", "127.0.0.1", "-p", port.ToString(), .. args]);

    /// <summary>qemu-nbd serving a raw image under <paramref name="export"/>, persistent (-t), several clients allowed.</summary>
    public static Task<ExternalServer> StartQemuNbdAsync(string image, string export, params string[] extra) =>
        StartAsync("qemu-nbd", "qemu-nbd", port => ["-f", "raw", "-x", export, "-b", "127.0.0.1", "-p", port.ToString(), "-t", "-e", "8", .. extra, image]);

    private static async Task<ExternalServer> StartAsync(string name, string file, Func<int, string[]> args)
    {
        for (int attempt = 1; ; attempt++)
        {
            var server = new ExternalServer(name, file, args, FreePort());
            try
            {
                await server.RestartAsync();
                return server;
            }
            catch (ServerExitedException) when (attempt < 3)
            {
                // Someone else took the free port before the server bound it: try another.
                await server.KillAsync();
            }
        }
    }

    private sealed class ServerExitedException(string message) : Exception(message);

    /// <summary>Starts the process again on the same port (after <see cref="KillAsync"/>).</summary>
    public async Task RestartAsync()
    {
        if (_process is not null) throw new InvalidOperationException("already running");
        var psi = new ProcessStartInfo(_file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in _args(Port)) psi.ArgumentList.Add(a);
        var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {_name}");
        p.OutputDataReceived += (_, e) => Append(e.Data);
        p.ErrorDataReceived += (_, e) => Append(e.Data);
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        _process = p;
        await WaitUntilListeningAsync(p);
    }

    /// <summary>SIGKILL: connections drop without a goodbye, as when a site node dies.</summary>
    public async Task KillAsync()
    {
        if (_process is not { } p) return;
        _process = null;
        p.Kill(entireProcessTree: true);
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        p.Dispose();
    }

    public ValueTask DisposeAsync() => new(KillAsync());

    // Process start-up has no readiness signal we can await, so poll the port, bounded.
    private async Task WaitUntilListeningAsync(Process p)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (true)
        {
            if (p.HasExited) throw new ServerExitedException($"{_name} exited with {p.ExitCode}: {Log}");
            using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await probe.ConnectAsync(IPAddress.Loopback, Port);
                return;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(20);
            }
        }
    }

    private static int FreePort()
    {
        using var l = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        l.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)l.LocalEndPoint!).Port;
    }

    private void Append(string? line)
    {
        if (line is null) return;
        lock (_log)
        {
            if (_log.Length < 64 * 1024) _log.AppendLine(line);
        }
    }

    public string Log
    {
        get { lock (_log) return _log.ToString(); }
    }
}

/// <summary>The control socket of nbdkit's pause filter: while paused, requests hang in the server.</summary>
public static class PauseControl
{
    public static Task PauseAsync(string socket) => SendAsync(socket, 'p');
    public static Task ResumeAsync(string socket) => SendAsync(socket, 'r');

    private static async Task SendAsync(string path, char command)
    {
        using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await s.ConnectAsync(new UnixDomainSocketEndPoint(path));
        await s.SendAsync(new[] { (byte)command });
        var ack = new byte[1];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        // The filter echoes the command in upper case once it has taken effect.
        int n = await s.ReceiveAsync(ack, cts.Token);
        if (n != 1 || ack[0] != (byte)char.ToUpperInvariant(command)) throw new InvalidOperationException($"pause filter did not acknowledge '{command}'");
    }
}
