using static Reloc.Actors.Coordinator.RelocationPhase;

namespace Reloc.Actors.Coordinator;

/// <summary>What the coordinator remembers of attempts that ended, so a round asked before the end does not adopt them again.</summary>
public sealed partial class CoordinatorCore
{
    /// <summary>Attempts that ended here past their handover (relocation id → the epoch they ended at, when), kept until
    /// a round asked after the end: a round asked before may still show them past the handover, and adopting that again
    /// only repeats what is done (issue 13: 21-42 of 100 concurrent relocations were announced completed twice). A round showing such
    /// an attempt before its handover is still adopted (F12: its revived copy is dropped by the reconciler). Bounded by
    /// the attempts that ended within one round.</summary>
    private readonly Dictionary<string, (long Epoch, DateTime EndedAt)> _endedPastHandover = new(StringComparer.Ordinal);

    /// <summary>Whether a derived relocation is an attempt that ended here past its handover, shown past it again by a
    /// round asked before the end (<see cref="_endedPastHandover"/>: entries from before the round's ask are gone) at an
    /// epoch no later than the one it ended at (the new owner's): nothing newer than what ended.</summary>
    private bool AlreadyEnded(Reconciler.Derived d, RelocationPhase shown) =>
        PastHandover(shown) && _endedPastHandover.TryGetValue(d.Relocation, out var ended) && d.Info.Epoch <= ended.Epoch;

    private static bool PastHandover(RelocationPhase p) => !FlowTransitions.BeforeHandover(p) && p != Cancelling;
}
