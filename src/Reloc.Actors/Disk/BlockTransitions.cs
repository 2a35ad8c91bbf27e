using Reloc.Storage;

namespace Reloc.Actors.Disk;

/// <summary>Why <see cref="DiskCore"/> changes a block's state.</summary>
public enum BlockEvent
{
    /// <summary>A guest read or partial write needs it: fetched on demand.</summary>
    Miss,
    /// <summary>Handed to the background copy (read, or punched as a known hole).</summary>
    Work,
    /// <summary>A guest write replaces the whole block: reserved, nothing fetched.</summary>
    WholeWrite,
    /// <summary>Its data (fetched, or zeros) is in the image.</summary>
    Landed,
    /// <summary>The guest's write of the whole block is in the image.</summary>
    WriteDone,
    FetchFailed,
    /// <summary>A fetch issued before an invalidation landed: its old data is discarded.</summary>
    StaleLanding,
    WriteAborted,
    /// <summary>The source wrote it after it was copied.</summary>
    Invalidated,
}

/// <summary>
/// Every change of a block's state the disk core makes at run time (recovery replays persisted events instead). The
/// protocol model reports each change <see cref="DiskCore"/> makes and checks it against this table, and README's
/// diagram of a block is generated from it.
/// </summary>
public static class BlockTransitions
{
    public static readonly IReadOnlyList<(BlockState From, BlockEvent Event, BlockState To)> Table =
    [
        (BlockState.Remote, BlockEvent.Miss, BlockState.Fetching),
        (BlockState.Remote, BlockEvent.Work, BlockState.Fetching),
        (BlockState.Remote, BlockEvent.WholeWrite, BlockState.Fetching),
        (BlockState.Fetching, BlockEvent.Landed, BlockState.Local),
        (BlockState.Fetching, BlockEvent.WriteDone, BlockState.Local),
        (BlockState.Fetching, BlockEvent.FetchFailed, BlockState.Remote),
        (BlockState.Fetching, BlockEvent.StaleLanding, BlockState.Remote),
        (BlockState.Fetching, BlockEvent.WriteAborted, BlockState.Remote),
        (BlockState.Local, BlockEvent.Invalidated, BlockState.Remote),
    ];

    public static bool Allows(BlockState from, BlockEvent e, BlockState to) => Table.Contains((from, e, to));
}
