using Microsoft.Extensions.Logging;
using Reloc.Nbd.Protocol;
using Reloc.Storage;

namespace Reloc.Nbd.Server;

/// <summary>The one place where a failed operation becomes an NBD error number.</summary>
public static class NbdErrors
{
    public static NbdError FromException(Exception ex, ILogger log, in NbdRequest request)
    {
        var error = ex switch
        {
            BlockDeviceException b => b.Error switch
            {
                DeviceError.NoSpace => NbdError.NoSpc,
                DeviceError.NotSupported => NbdError.NotSup,
                DeviceError.ReadOnly => NbdError.Perm,
                DeviceError.InvalidArgument => NbdError.Inval,
                DeviceError.Shutdown => NbdError.Shutdown,
                _ => NbdError.Io,
            },
            IOException { HResult: 28 } => NbdError.NoSpc, // ENOSPC from a device that did not say it as a BlockDeviceException
            OperationCanceledException => NbdError.Shutdown,
            UnauthorizedAccessException => NbdError.Perm,
            ArgumentException => NbdError.Inval,
            OutOfMemoryException => NbdError.NoMem,
            _ => NbdError.Io,
        };
        // NotSup for FAST_ZERO is a normal answer, not a fault worth a warning.
        var level = error == NbdError.NotSup ? LogLevel.Debug : LogLevel.Warning;
        log.Log(level, ex, "{Command} at {Offset}+{Length} failed: {Error}", request.Command, request.Offset, request.Length, error);
        return error;
    }
}
