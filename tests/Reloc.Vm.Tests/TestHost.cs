using System.Runtime.CompilerServices;

namespace Reloc.Vm.Tests;

internal static class TestHost
{
    /// <summary>The test host keeps thread-pool threads blocked for the whole run; on two cores that is the
    /// pool's whole minimum, so the in-process site nodes' timers and socket continuations would wait for the
    /// starvation detector (the same finding as tests/Reloc.Actors.Tests/TestHost.cs).</summary>
    [ModuleInitializer]
    internal static void EnsurePoolHeadroom()
    {
        ThreadPool.GetMinThreads(out var workers, out var io);
        int wanted = Environment.ProcessorCount * 4 + 4;
        if (workers < wanted) ThreadPool.SetMinThreads(wanted, Math.Max(io, wanted));
    }
}
