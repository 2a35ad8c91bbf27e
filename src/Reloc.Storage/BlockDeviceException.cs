namespace Reloc.Storage;

/// <summary>What went wrong in a device operation, in terms a block protocol can report.</summary>
public enum DeviceError
{
    Io,
    NoSpace,
    NotSupported,
    ReadOnly,
    InvalidArgument,
    Shutdown,
}

/// <summary>A device operation failed with a reason the caller can map to a protocol error.</summary>
public sealed class BlockDeviceException(DeviceError error, string message, Exception? inner = null)
    : IOException(message, inner)
{
    public DeviceError Error { get; } = error;
}
