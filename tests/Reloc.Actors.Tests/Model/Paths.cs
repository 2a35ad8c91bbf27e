namespace Reloc.Actors.Tests.Model;

/// <summary>Names of <see cref="Stats.Paths"/>.</summary>
internal static class Paths
{
    public const string ArrivedJoinsOwned = "an arrived disk joins the owned disks";
    public const string HeldWriteExpired = "a write held for the handover failed after the miss timeout";
    public const string StaleRoundNotJudged = "a round older than a flow's last change did not judge it";
    public const string PrepareRefusedOtherCopy = "PrepareIncoming refused: another attempt's copy is there";
    public const string ForeignAnswerIgnored = "an answer of another relocation ignored by the coordinator";
    public const string Republished = "a disk actor that recovered complete told its site again";
    public const string SitesWin = "a flow replaced by the relocation the sites show";
    public const string TakeOwnershipRefused = "TakeOwnershipAt refused: not arriving by that relocation at that epoch";
    public const string DropRefusedRecovering = "DropIncoming refused: the disk actor still recovers";
    public const string DropRefusedOwner = "DropIncoming refused: owned here";
    public const string StopRefusedFencing = "StopOutgoing refused: a fence is under way";
    public const string StopRefusedFenced = "StopOutgoing refused: fenced (a copy about to own the disk is not dropped)";
    public const string DropAfterStop = "a reconciler's drop sent only once the copy's source confirmed the stop";
    public const string FreshJournal = "a copy created again for a relocation this site had before starts from a fresh journal";
    public const string RefusedLeftoverCopy = "a relocation refused while another site still holds a copy";
    public const string IdleHandover = "a handover begun because the source had no guest for several reconcile rounds";
    public const string EndedAttemptRefused = "a late StartOutgoing of an attempt the site stopped was refused";
    public const string HoleWritten = "a block the source reported as a hole was written there: no longer known zero";
}
