using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Reloc.Storage;

/// <summary>The few Linux calls .NET does not expose: hole punching, SEEK_DATA/SEEK_HOLE, fdatasync, fadvise.</summary>
internal static partial class Native
{
    public const int FallocKeepSize = 0x01;
    public const int FallocPunchHole = 0x02;
    public const int FallocZeroRange = 0x10;
    public const int SeekData = 3;
    public const int SeekHole = 4;
    public const int FadvWillNeed = 3;
    public const int ENXIO = 6;
    public const int EOPNOTSUPP = 95;
    public const int ENOSPC = 28;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fallocate(int fd, int mode, long offset, long len);

    [LibraryImport("libc", SetLastError = true)]
    private static partial long lseek(int fd, long offset, int whence);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fdatasync(int fd);

    [LibraryImport("libc", SetLastError = false)]
    private static partial int posix_fadvise(int fd, long offset, long len, int advice);

    /// <summary>Runs <paramref name="call"/> with the raw descriptor while holding a reference on the handle,
    /// so a concurrent close cannot recycle the number under us.</summary>
    private static T WithFd<T>(SafeFileHandle handle, Func<int, T> call)
    {
        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            return call((int)handle.DangerousGetHandle());
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }

    /// <summary>Returns 0 or the errno of the failure.</summary>
    public static int Fallocate(SafeFileHandle h, int mode, long offset, long len) =>
        WithFd(h, fd => fallocate(fd, mode, offset, len) == 0 ? 0 : Marshal.GetLastPInvokeError());

    /// <summary>Returns the new position, or -errno.</summary>
    public static long Seek(SafeFileHandle h, long offset, int whence) =>
        WithFd(h, fd => { long r = lseek(fd, offset, whence); return r >= 0 ? r : -Marshal.GetLastPInvokeError(); });

    public static void DataSync(SafeFileHandle h)
    {
        int err = WithFd(h, fd => fdatasync(fd) == 0 ? 0 : Marshal.GetLastPInvokeError());
        if (err != 0) throw new BlockDeviceException(DeviceError.Io, $"fdatasync failed: errno {err}");
    }

    public static void WillNeed(SafeFileHandle h, long offset, long len) =>
        WithFd(h, fd => posix_fadvise(fd, offset, len, FadvWillNeed));
}
