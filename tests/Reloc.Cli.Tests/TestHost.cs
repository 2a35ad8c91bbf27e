using System.Runtime.CompilerServices;

namespace Reloc.Cli.Tests;

internal static class TestHost
{
    /// <summary>Thread-pool headroom for the code under test (see <see cref="Reloc.Testing.PoolHeadroom"/>).</summary>
    [ModuleInitializer]
    internal static void EnsurePoolHeadroom() => Reloc.Testing.PoolHeadroom.Ensure();
}
