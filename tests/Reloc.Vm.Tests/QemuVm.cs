using System.Net.Sockets;
using System.Text;

namespace Reloc.Vm.Tests;

/// <summary>
/// One qemu-system-x86_64 process (TCG) running the test guest from an NBD disk: its QMP connection and its
/// serial port, both Unix sockets the test listens on and QEMU connects to at start-up. The serial bytes are
/// kept (and written to a log file) as they arrive; waits are on them and on QMP, never on the clock alone.
/// </summary>
/// <remarks>QEMU runs as a <see cref="GuardedProcess"/>: no VM outlives the test process.</remarks>
public sealed class QemuVm : IAsyncDisposable
{
    public const string Binary = "qemu-system-x86_64";

    private readonly GuardedProcess _process;
    private readonly Timeline _timeline;
    private readonly SerialTranscript _serial = new();
    private readonly FileStream _serialLog;
    private TaskCompletionSource _serialChanged = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _serialPump = Task.CompletedTask;
    private bool _serialClosed;

    private QemuVm(string name, GuardedProcess process, string serialLogPath, Timeline timeline)
    {
        Name = name;
        _process = process;
        SerialLogPath = serialLogPath;
        _serialLog = new FileStream(serialLogPath, FileMode.Create, FileAccess.Write, FileShare.Read);
        _timeline = timeline;
    }

    public string Name { get; }
    public string SerialLogPath { get; }
    public QmpClient Qmp { get; private set; } = null!;
    public Task Exited => _process.Exited;
    public string StdErr => _process.StdErr + string.Join('\n', _process.StdOut);
    public string CommandLine => _process.CommandLine;

    /// <summary>Everything the guest printed through this QEMU.</summary>
    public string SerialText
    {
        get { lock (_serial) return _serial.Text; }
    }

    /// <summary>The last complete "k=N" line this QEMU printed (0 before any).</summary>
    public int LastK
    {
        get { lock (_serial) return _serial.LastK; }
    }

    /// <summary>The command line both sides of a migration share; only the disk URI and -incoming differ.</summary>
    /// <param name="tlsCertificates">A folder in the QEMU layout (ca-cert.pem, client-cert.pem, client-key.pem): the disk is
    /// opened over NBD STARTTLS, the server's certificate checked against the CA and the URI's host. Needed for an nbds:// URI.</param>
    public static List<string> Arguments(string diskUri, string qmpSocket, string serialSocket, bool incoming, string? tlsCertificates = null)
    {
        // QEMU's nbd driver parses nbd:// URIs only; TLS is the tls-creds option of the drive's nbd node.
        const string tlsScheme = "nbds://";
        bool tlsUri = diskUri.StartsWith(tlsScheme, StringComparison.Ordinal);
        if (tlsUri && tlsCertificates is null)
            throw new ArgumentException($"{diskUri}: an nbds:// disk needs TLS credentials for QEMU", nameof(tlsCertificates));
        var file = tlsUri ? "nbd://" + diskUri[tlsScheme.Length..] : diskUri;
        var drive = tlsCertificates is null ? $"file={file}" : $"file={file},file.tls-creds=tls0";
        List<string> args =
        [
            "-machine", "pc,accel=tcg", "-m", "64", "-nodefaults", "-no-user-config", "-display", "none",
            "-chardev", $"socket,id=qmp,path={qmpSocket}", "-mon", "chardev=qmp,mode=control",
            "-chardev", $"socket,id=ser0,path={serialSocket}", "-serial", "chardev:ser0",
            .. tlsCertificates is null ? [] : new[] { "-object", $"tls-creds-x509,id=tls0,endpoint=client,dir={tlsCertificates}" },
            // IDE on the BIOS's INT 13h. cache=none: QEMU's writeback mode, so the guest's ATA FLUSH CACHE
            // becomes an NBD FLUSH (writes go out as plain NBD WRITEs; nothing is cached in QEMU for NBD).
            "-drive", $"{drive},format=raw,if=ide,cache=none",
        ];
        if (incoming) args.AddRange(["-incoming", "defer"]);
        return args;
    }

    /// <summary>Starts QEMU and waits for its QMP and serial connections.</summary>
    /// <remarks>Sockets go in <paramref name="socketDir"/> (short paths: a Unix socket path has 107 bytes at most),
    /// the serial log in <paramref name="logDir"/>.</remarks>
    public static async Task<QemuVm> StartAsync(string name, string socketDir, string logDir, string diskUri, bool incoming, Timeline timeline,
                                              string? tlsCertificates = null)
    {
        await RequireAsync();
        var qmpPath = Path.Combine(socketDir, name + ".qmp");
        var serialPath = Path.Combine(socketDir, name + ".serial");
        var qmpListener = Listen(qmpPath);
        var serialListener = Listen(serialPath);
        var process = GuardedProcess.Start(Binary, Arguments(diskUri, qmpPath, serialPath, incoming, tlsCertificates));
        var vm = new QemuVm(name, process, Path.Combine(logDir, name + ".serial.log"), timeline);
        timeline.Mark($"{name}: QEMU started ({(incoming ? "incoming, " : "")}disk {diskUri})");
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            var qmp = QmpClient.AcceptAsync(qmpListener, name, () => timeline.Now, cts.Token);
            var serial = serialListener.AcceptAsync(cts.Token).AsTask();
            var both = Task.WhenAll(qmp, serial);
            if (await Task.WhenAny(both, vm.Exited) != both)
                throw new InvalidOperationException($"{Binary} ({name}) exited at start-up: {vm.StdErr}\ncommand line: {vm.CommandLine}");
            vm.Qmp = await qmp;
            vm._serialPump = vm.PumpSerialAsync(await serial);
            return vm;
        }
        catch (Exception ex) when (ex is OperationCanceledException or TimeoutException)
        {
            await vm.DisposeAsync();
            throw new TimeoutException($"{Binary} ({name}) did not connect its QMP and serial sockets within 30 s: {vm.StdErr}");
        }
        catch (IOException ex)
        {
            // QEMU drops QMP when it gives up at start-up (a disk it cannot open): its stderr, once it exited, says why.
            await vm.Exited.WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { });
            var stderr = vm.StdErr;
            await vm.DisposeAsync();
            throw new InvalidOperationException($"{Binary} ({name}) failed at start-up: {stderr}\ncommand line: {vm.CommandLine}", ex);
        }
        catch
        {
            await vm.DisposeAsync();
            throw;
        }
        finally
        {
            qmpListener.Dispose();
            serialListener.Dispose();
        }
    }

    /// <summary>The VM tests need QEMU; CI installs it, and without it they fail (never skip) saying so.</summary>
    public static async Task RequireAsync()
    {
        var r = await Reloc.Testing.Tool.RunAsync("sh", "-c", $"command -v {Binary}");
        if (r.ExitCode != 0)
            throw new InvalidOperationException($"{Binary} is not installed: the VM live-migration tests need it (apt-get install qemu-system-x86)");
    }

    private static Socket Listen(string path)
    {
        if (File.Exists(path)) File.Delete(path);
        var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        s.Bind(new UnixDomainSocketEndPoint(path));
        s.Listen(1);
        return s;
    }

    private async Task PumpSerialAsync(Socket socket)
    {
        var buffer = new byte[4096];
        try
        {
            while (true)
            {
                int n = await socket.ReceiveAsync(buffer, SocketFlags.None);
                if (n == 0) break;
                lock (_serial) _serial.Append(Encoding.ASCII.GetString(buffer, 0, n));
                await _serialLog.WriteAsync(buffer.AsMemory(0, n));
                Signal();
            }
        }
        catch (SocketException) { }
        catch (ObjectDisposedException) { }
        finally
        {
            socket.Dispose();
            await _serialLog.FlushAsync();
            _serialClosed = true;
            Signal();
        }
    }

    private void Signal()
    {
        TaskCompletionSource changed;
        lock (_serial)
        {
            changed = _serialChanged;
            _serialChanged = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        changed.TrySetResult();
    }

    /// <summary>
    /// Waits until the serial output satisfies <paramref name="condition"/>. Fails at once if the guest
    /// reported an error or QEMU went away, and with the last lines on timeout.
    /// </summary>
    public async Task WaitForSerialAsync(Func<SerialTranscript, bool> condition, string what, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        while (true)
        {
            Task changed;
            string? error = null;
            bool met;
            lock (_serial)
            {
                changed = _serialChanged.Task;
                if (_serial.Errors.Count > 0) error = string.Join(" | ", _serial.Errors);
                met = condition(_serial);
            }
            if (error is not null)
                throw new GuestErrorException($"{Name}: the guest reported {error} while waiting for {what}");
            if (met)
            {
                _timeline.Mark($"{Name}: {what} (guest at k={LastK})");
                return;
            }
            if (_serialClosed || Exited.IsCompleted)
                throw new InvalidOperationException($"{Name}: QEMU went away while waiting for {what}: {StdErr}\nlast serial lines: {Tail()}");
            try { await changed.WaitAsync(cts.Token); }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"{Name}: {what} did not happen within {timeout}; last serial lines: {Tail()}");
            }
        }
    }

    /// <summary>Waits until this QEMU's guest has printed k=<paramref name="target"/> or beyond.</summary>
    public Task WaitForKAsync(int target, TimeSpan timeout) =>
        WaitForSerialAsync(t => t.LastK >= target, $"guest reached k={target}", timeout);

    private string Tail()
    {
        lock (_serial) return string.Join(" | ", _serial.Lines.TakeLast(4));
    }

    /// <summary>Pauses the guest (QEMU drains and flushes its block devices before replying).</summary>
    public Task StopAsync() => Qmp.ExecuteAsync("stop");

    public async Task<string> StatusAsync() => (await Qmp.ExecuteAsync("query-status"))!["status"]!.GetValue<string>();

    /// <summary>QMP quit, then waits for the process; kills it if it does not go.</summary>
    public async Task QuitAsync(TimeSpan timeout)
    {
        try { await Qmp.ExecuteAsync("quit", timeout: timeout); }
        catch (IOException) { } // the connection may close before the reply arrives
        try { await Exited.WaitAsync(timeout); }
        catch (TimeoutException) { throw new TimeoutException($"{Name}: QEMU did not exit within {timeout} of quit"); }
        _timeline.Mark($"{Name}: QEMU exited ({_process.ExitCode})");
        await _serialPump.WaitAsync(TimeSpan.FromSeconds(10));
    }

    public async ValueTask DisposeAsync()
    {
        await _process.DisposeAsync();
        if (Qmp is not null) await Qmp.DisposeAsync();
        await _serialPump.WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { });
        await _serialLog.DisposeAsync();
    }
}

public sealed class GuestErrorException(string message) : Exception(message);
