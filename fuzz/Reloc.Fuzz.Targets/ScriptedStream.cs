namespace Reloc.Fuzz.Targets;

/// <summary>
/// One end of a connection whose peer sends <paramref name="input"/> and then closes; what is written to
/// it is dropped. Reads hand out the input in pieces of varying size (a fixed cycle, so runs repeat) so
/// that headers and payloads arrive split, as over TCP.
/// </summary>
internal sealed class ScriptedStream(byte[] input) : Stream
{
    private static readonly int[] Pieces = [4096, 7, 1, 300, 65536, 13];
    private int _at;
    private int _reads;

    public long Written { get; private set; }

    public override int Read(Span<byte> buffer)
    {
        int n = Math.Min(Math.Min(buffer.Length, input.Length - _at), Pieces[_reads++ % Pieces.Length]);
        input.AsSpan(_at, n).CopyTo(buffer);
        _at += n;
        return n;
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default) =>
        ct.IsCancellationRequested ? ValueTask.FromCanceled<int>(ct) : ValueTask.FromResult(Read(buffer.Span));

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken ct) =>
        ReadAsync(buffer.AsMemory(offset, count), ct).AsTask();

    public override void Write(ReadOnlySpan<byte> buffer) => Written += buffer.Length;

    public override void Write(byte[] buffer, int offset, int count) => Written += count;

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken ct = default)
    {
        Written += buffer.Length;
        return ValueTask.CompletedTask;
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken ct) =>
        WriteAsync(buffer.AsMemory(offset, count), ct).AsTask();

    public override void Flush() { }
    public override Task FlushAsync(CancellationToken ct) => Task.CompletedTask;

    public override bool CanRead => true;
    public override bool CanWrite => true;
    public override bool CanSeek => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
