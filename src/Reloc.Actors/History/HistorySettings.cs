using Akka.Configuration;

namespace Reloc.Actors.History;

/// <summary>Validated settings of a node's relocation history (reloc.history in reference.conf).</summary>
/// <param name="MaxEvents">The most events kept (in memory and in the journal); the oldest go first.</param>
public sealed record HistorySettings(int MaxEvents = 10_000)
{
    /// <summary>Events between snapshots: the journal before a snapshot is deleted, so it holds at most this many more.</summary>
    public int SnapshotEvery => Math.Clamp(MaxEvents / 10, 1, 1000);

    public HistorySettings Validate() =>
        MaxEvents is < 1 or > 1_000_000
            ? throw new ArgumentOutOfRangeException(nameof(MaxEvents), MaxEvents, "reloc.history.max-events must be from 1 to 1000000")
            : this;

    public static HistorySettings From(Config config) =>
        new HistorySettings(config.GetInt("reloc.history.max-events", 10_000)).Validate();
}
