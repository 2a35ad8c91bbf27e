using System.Runtime.CompilerServices;

namespace Reloc.Actors.Tests;

internal static class TestHost
{
    /// <summary>
    /// The test host keeps thread-pool threads blocked for the whole run (vstest's message loop, the xunit
    /// adapter); on two cores that is the pool's whole minimum, so timers and socket continuations of the
    /// clusters under test wait for the starvation detector. Give the code under test the threads the
    /// machine really has (the same finding as tests/Reloc.WanLink.Tests/Support/TestHost.cs).
    /// </summary>
    [ModuleInitializer]
    internal static void EnsurePoolHeadroom()
    {
        ThreadPool.GetMinThreads(out var workers, out var io);
        int wanted = Environment.ProcessorCount * 4 + 4;
        if (workers < wanted) ThreadPool.SetMinThreads(wanted, Math.Max(io, wanted));
    }
}
