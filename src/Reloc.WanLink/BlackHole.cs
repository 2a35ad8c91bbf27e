namespace Reloc.Wan;

/// <summary>
/// The link's black-hole switch: while it is on, nothing crosses the link in either direction and a new
/// connection is not passed on to the target, yet no connection is closed or reset, as when a WAN path drops
/// every packet. A relay cannot drop bytes from the middle of a TCP stream without corrupting it; holding them
/// is what the endpoints see of a real black hole (their retransmissions get through once the path is back),
/// and the senders stall once the relay's window and their socket buffers are full. One difference remains: the
/// link's own kernel still completes a new client's TCP handshake; that client then gets no answer.
/// </summary>
internal sealed class BlackHole
{
    private readonly object _lock = new();
    private TaskCompletionSource? _over; // null while the link passes traffic

    public bool IsOn
    {
        get { lock (_lock) return _over is not null; }
    }

    public void TurnOn()
    {
        lock (_lock) _over ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    public void TurnOff()
    {
        lock (_lock)
        {
            _over?.TrySetResult();
            _over = null;
        }
    }

    /// <summary>Completes at once when the link passes traffic, otherwise when the hole ends (or on cancellation).</summary>
    public Task WaitPassAsync(CancellationToken ct)
    {
        lock (_lock) return _over is null ? Task.CompletedTask : _over.Task.WaitAsync(ct);
    }
}
