using System.Runtime.CompilerServices;

namespace Reloc.Cli.Tests;

internal static class TestHost
{
    /// <summary>The test host keeps pool threads blocked (vstest, the xunit adapter); on two cores that is
    /// the pool's whole minimum, and the tests' own waits would queue behind the starvation detector.</summary>
    [ModuleInitializer]
    internal static void EnsurePoolHeadroom()
    {
        ThreadPool.GetMinThreads(out var workers, out var io);
        int wanted = Environment.ProcessorCount * 4 + 4;
        if (workers < wanted) ThreadPool.SetMinThreads(wanted, Math.Max(io, wanted));
    }
}
