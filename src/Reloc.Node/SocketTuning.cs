namespace Reloc.Node;

/// <summary>
/// Socket engine settings for the NBD data path, applied before the first socket exists (the runtime
/// reads them once). Inline completions run a socket's continuation on the epoll thread that saw it
/// ready instead of queueing it to the thread pool: for 4 KiB requests the hop costs more than the
/// work (measured: about 1.3x the random-read IOPS, see docs/benchmarks.md). Our continuations never
/// block (fdatasync runs on the pool), which is what makes inlining safe. One epoll thread per core
/// keeps several connections from serialising on one thread. An operator's own setting wins.
/// </summary>
internal static class SocketTuning
{
    public static void Apply()
    {
        SetDefault("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS", "1");
        SetDefault("DOTNET_SYSTEM_NET_SOCKETS_THREAD_COUNT", Environment.ProcessorCount.ToString());
    }

    private static void SetDefault(string name, string value)
    {
        if (Environment.GetEnvironmentVariable(name) is null) Environment.SetEnvironmentVariable(name, value);
    }
}
