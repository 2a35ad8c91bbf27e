using System.Buffers;
using Reloc.Nbd.Protocol;

namespace Reloc.Nbd.Client;

/// <summary>
/// One request on the wire, from send until its last reply chunk. The receive loop fills it (data,
/// holes, errors, extents) and completes it; the caller may give up earlier (cancellation), after which
/// nothing more is written into its buffer: copies and completion share one lock.
/// </summary>
internal sealed class PendingRequest(NbdCommand command, CommandFlags flags, long offset, uint length)
{
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _gate = new();
    private bool _finished;

    public NbdCommand Command { get; } = command;
    public long Offset { get; } = offset;
    public uint Length { get; } = length;
    public ulong Cookie { get; set; }

    /// <summary>Where a READ's data goes (exactly <see cref="Length"/> bytes).</summary>
    public Memory<byte> Destination { get; init; }

    // Written by the receive loop only; read by the caller after Task completes.
    public long Covered { get; set; }
    public ErrorChunk? Error { get; set; }
    public BlockDescriptor[]? Descriptors { get; set; }

    public Task Task => _done.Task;

    public NbdRequest ToWire() => new(flags, Command, Cookie, (ulong)Offset, Length);

    /// <summary>Where a chunk for [chunkOffset, chunkOffset+chunkLength) lands in the request, or -1 if it
    /// does not lie inside it.</summary>
    public int Locate(ulong chunkOffset, long chunkLength)
    {
        ulong start = (ulong)Offset;
        if (chunkOffset < start || chunkLength < 0) return -1;
        ulong at = chunkOffset - start;
        return at > Length || (ulong)chunkLength > Length - at ? -1 : (int)at;
    }

    public void CopyIn(in ReadOnlySequence<byte> data, int at)
    {
        lock (_gate)
        {
            if (!_finished) data.CopyTo(Destination.Span[at..]);
        }
    }

    public void ZeroFill(int at, int count)
    {
        lock (_gate)
        {
            if (!_finished) Destination.Span.Slice(at, count).Clear();
        }
    }

    public void Finish(Exception? error)
    {
        lock (_gate)
        {
            if (_finished) return;
            _finished = true;
        }
        if (error is null) _done.TrySetResult();
        else _done.TrySetException(error);
    }

    public void Cancel(CancellationToken ct)
    {
        lock (_gate)
        {
            if (_finished) return;
            _finished = true;
        }
        _done.TrySetCanceled(ct);
    }
}
