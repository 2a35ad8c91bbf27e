namespace Reloc.Testing;

/// <summary>A small tmpfs mounted for a test (a file system that really fills up: ENOSPC from the kernel). Needs root,
/// as CI runs the tests; elsewhere the tests using it are skipped (<see cref="TmpfsFactAttribute"/>).</summary>
public sealed class Tmpfs : IAsyncDisposable
{
    private Tmpfs(string path) => Path = path;

    public string Path { get; }

    /// <summary>Mounts a tmpfs of <paramref name="bytes"/> at <paramref name="path"/> (created if missing).</summary>
    public static async Task<Tmpfs> MountAsync(string path, long bytes)
    {
        Directory.CreateDirectory(path);
        var r = await Tool.RunAsync("mount", ["-t", "tmpfs", "-o", $"size={bytes}", "tmpfs", path], TimeSpan.FromSeconds(30));
        if (r.ExitCode != 0)
            throw new InvalidOperationException($"mount -t tmpfs -o size={bytes} tmpfs {path} was refused (exit {r.ExitCode}: {r.StdErr.Trim()}): "
                + "these tests need root and a kernel that allows tmpfs mounts (CI runs them as root)");
        return new Tmpfs(path);
    }

    public async ValueTask DisposeAsync() => await Tool.RunAsync("umount", ["-l", Path], TimeSpan.FromSeconds(30));
}

/// <summary>A test that mounts a <see cref="Tmpfs"/>: skipped, saying why, when not run as root.</summary>
public sealed class TmpfsFactAttribute : Xunit.FactAttribute
{
    public TmpfsFactAttribute()
    {
        if (!Environment.IsPrivilegedProcess) Skip = "mounting a tmpfs needs root (CI runs the tests as root: sudo dotnet test ... to run it here)";
    }
}
