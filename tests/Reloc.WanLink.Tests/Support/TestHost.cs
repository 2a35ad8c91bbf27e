namespace Reloc.Wan.Tests.Support;

internal static class TestHost
{
    /// <summary>
    /// The test host itself keeps two thread-pool threads blocked for the whole run (vstest's message
    /// loop in Socket.Poll, the xunit adapter waiting for the assembly). On a 2-core machine that is the
    /// pool's whole minimum, so every timer and socket continuation waits for the starvation detector
    /// (~0.5 s at a time) and a link looks 20-35 % slower than it is; outside the test host it is not.
    /// Raising the minimum gives the code under test the threads the machine really has.
    /// </summary>
    public static void EnsurePoolHeadroom()
    {
        ThreadPool.GetMinThreads(out var workers, out var io);
        var wanted = Environment.ProcessorCount + 4;
        if (workers < wanted) ThreadPool.SetMinThreads(wanted, Math.Max(io, wanted));
    }
}
