namespace Reloc.Wan;

/// <summary>A chunk of relayed bytes (a rented buffer) and when it is due at the receiving side.</summary>
internal readonly record struct Chunk(byte[] Buffer, int Length, long DueAt);

/// <summary>
/// One direction of one connection between its reader and its writer: the chunks read from the sender
/// and scheduled on the bottleneck, in order, until they are due and written. The reader waits for room
/// before each read, so the line holds at most the window plus one chunk: a receiver that stops reading
/// stops the sender, as TCP would end to end. Due times only grow (the link is FIFO and the delay fixed),
/// so the head is always the next chunk due.
/// </summary>
internal sealed class DelayLine
{
    private readonly object _lock = new();
    private readonly Queue<Chunk> _chunks = new(); // bounded by the window (each chunk is at least one byte)
    private long _heldBytes;
    private bool _ended;
    private TaskCompletionSource? _roomChanged;
    private TaskCompletionSource? _dataChanged;

    /// <summary>Bytes added and not yet released (including those the writer is writing).</summary>
    public long HeldBytes
    {
        get { lock (_lock) return _heldBytes; }
    }

    /// <summary>Waits until the line holds fewer than <paramref name="window"/>() bytes; the window is
    /// re-read on every wake-up because a rate change moves it.</summary>
    public async ValueTask WaitForRoomAsync(Func<long> window, CancellationToken ct)
    {
        while (true)
        {
            Task changed;
            lock (_lock)
            {
                if (_heldBytes < window()) return;
                changed = (_roomChanged ??= NewSignal()).Task;
            }
            await changed.WaitAsync(ct);
        }
    }

    public void Add(Chunk chunk)
    {
        lock (_lock)
        {
            _chunks.Enqueue(chunk);
            _heldBytes += chunk.Length;
            Signal(ref _dataChanged);
        }
    }

    /// <summary>The sender half-closed: once every chunk is written the writer passes the FIN on.</summary>
    public void End()
    {
        lock (_lock)
        {
            _ended = true;
            Signal(ref _dataChanged);
        }
    }

    /// <summary>When the next chunk is due, waiting for one if the line is empty; null once the sender
    /// ended and every chunk has been taken.</summary>
    public async ValueTask<long?> NextDueAsync(CancellationToken ct)
    {
        while (true)
        {
            Task changed;
            lock (_lock)
            {
                if (_chunks.Count > 0) return _chunks.Peek().DueAt;
                if (_ended) return null;
                changed = (_dataChanged ??= NewSignal()).Task;
            }
            await changed.WaitAsync(ct);
        }
    }

    /// <summary>Moves every chunk due by <paramref name="now"/> into <paramref name="into"/>, up to about
    /// <paramref name="maxBytes"/> (at least one chunk).</summary>
    public void TakeDue(long now, List<Chunk> into, int maxBytes)
    {
        lock (_lock)
        {
            long taken = 0;
            while (_chunks.Count > 0 && _chunks.Peek().DueAt <= now && (taken == 0 || taken + _chunks.Peek().Length <= maxBytes))
            {
                var chunk = _chunks.Dequeue();
                taken += chunk.Length;
                into.Add(chunk);
            }
        }
    }

    /// <summary>A taken chunk was written (or dropped): its bytes leave the window.</summary>
    public void Release(int bytes)
    {
        lock (_lock)
        {
            _heldBytes -= bytes;
            Signal(ref _roomChanged);
        }
    }

    /// <summary>Hands back every chunk not yet taken (at teardown, to return their buffers).</summary>
    public void Drain(List<Chunk> into)
    {
        lock (_lock)
        {
            while (_chunks.Count > 0) into.Add(_chunks.Dequeue());
            _heldBytes = 0;
        }
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static void Signal(ref TaskCompletionSource? signal)
    {
        signal?.TrySetResult();
        signal = null;
    }
}
