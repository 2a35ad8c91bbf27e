namespace Reloc.Testing;

/// <summary>
/// The test host keeps thread-pool threads blocked for the whole run (vstest's message loop, the xunit
/// adapter); on two cores that is the pool's whole minimum, so timers and socket continuations of the
/// clusters and servers under test wait for the starvation detector. Each test assembly calls
/// <see cref="Ensure"/> from a module initializer to give the code under test the threads the machine has.
/// </summary>
public static class PoolHeadroom
{
    public static void Ensure()
    {
        ThreadPool.GetMinThreads(out var workers, out var io);
        int wanted = Environment.ProcessorCount * 4 + 4;
        if (workers < wanted) ThreadPool.SetMinThreads(wanted, Math.Max(io, wanted));
    }
}
