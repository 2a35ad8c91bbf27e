using System.Runtime.InteropServices;

namespace Reloc.Storage;

/// <summary>The canonical path of a file: realpath(3), which resolves every symbolic link and "." / ".." on the way
/// (Path.GetFullPath only tidies the text).</summary>
public static partial class RealPaths
{
    [LibraryImport("libc", EntryPoint = "realpath", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint RealPath(string path, nint resolved);

    [LibraryImport("libc", EntryPoint = "free")]
    private static partial void Free(nint pointer);

    /// <returns>The canonical absolute path, or null when <paramref name="path"/> (or a link on the way) leads nowhere.</returns>
    public static string? TryResolve(string path)
    {
        nint resolved = RealPath(path, 0);
        if (resolved == 0) return null;
        try { return Marshal.PtrToStringUTF8(resolved); }
        finally { Free(resolved); }
    }
}
