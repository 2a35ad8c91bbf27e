using Reloc.Storage;
using System.Text;
using Reloc.Actors.Site;
using static Reloc.Actors.Coordinator.RelocationProtocol;

namespace Reloc.Actors.Tests.Model;

/// <summary>Mirrors <see cref="OwnedDisk"/>: write tracking and the fence over its device, which is the site's own
/// image (SiteActor.Export) or, for a disk arriving by relocation, the <c>RelocatingDisk</c> of its disk actor
/// (SiteActor.StartIncoming: the export's device from arrival on, and the site's owned disk once it arrived).
/// Writes are counted in flight between Enter and Exit, so a fence completes only when every write admitted
/// before it is done and tracked (FenceAsync).</summary>
internal sealed class OwnedModel(Image image, int blocks, DiskActorModel? device = null)
{
    public Image Image { get; } = image;
    /// <summary>null: the image itself; else the relocating disk (its disk actor) the writes go through.</summary>
    public DiskActorModel? Device { get; } = device;
    public bool Fenced { get; private set; }
    private HashSet<long>? _dirty;
    private bool _allDirty;
    private int _writesInFlight;
    private readonly List<Action> _drained = [];
    public bool Tracking => _dirty is not null;

    /// <summary>OwnedDisk.StartTracking</summary>
    public void StartTracking() => _dirty ??= [];

    /// <summary>OwnedDisk.MarkAllDirty</summary>
    public void MarkAllDirty() => _allDirty = _dirty is not null;

    /// <summary>OwnedDisk.StopTracking</summary>
    public void StopTracking()
    {
        _dirty = null;
        _allDirty = false;
    }

    /// <summary>OwnedDisk.DrainDirty: sorted runs; everything once after a restart.</summary>
    public List<(long First, long Count)> DrainDirty()
    {
        if (_allDirty)
        {
            _allDirty = false;
            _dirty?.Clear();
            return [(0, blocks)];
        }
        if (_dirty is null || _dirty.Count == 0) return [];
        var runs = new BlockRuns(_dirty.Order().Select(b => ((long)b, 1L))).Runs.ToList();
        _dirty.Clear();
        return runs;
    }

    /// <summary>OwnedDisk.Enter: refused (EPERM) once fenced, else counted in flight.</summary>
    public bool Enter()
    {
        if (Fenced) return false;
        _writesInFlight++;
        return true;
    }

    /// <summary>OwnedDisk.Exit: the written block is tracked (even if the write failed), and the last write in
    /// flight completes a fence waiting for it.</summary>
    public void Exit(int block)
    {
        _dirty?.Add(block);
        if (--_writesInFlight == 0 && Fenced)
        {
            var drained = _drained.ToList();
            _drained.Clear();
            foreach (var d in drained) d();
        }
    }

    /// <summary>OwnedDisk.WriteAsync straight to the image (Enter, write, Exit): refused once fenced.</summary>
    public bool Write(int block, int version)
    {
        if (!Enter()) return false;
        Image.Volatile[block] = version;
        Exit(block);
        return true;
    }

    /// <summary>OwnedDisk.FenceAsync: writes refused from now on; <paramref name="drained"/> once none is in flight.</summary>
    public void Fence(Action drained)
    {
        Fenced = true;
        if (_writesInFlight == 0) drained();
        else _drained.Add(drained);
    }

    /// <summary>OwnedDisk.Unfence (a fence whose flush failed): the source owns the disk again.</summary>
    public void Unfence()
    {
        Fenced = false;
        _drained.Clear();
    }

    public string Describe() => $"{(Fenced ? "fenced " : "")}{(_writesInFlight > 0 ? $"in flight {_writesInFlight} " : "")}{(Tracking ? $"tracking{(_allDirty ? " all" : "")} {{{string.Join(",", _dirty!.Order())}}} " : "")}";
}

/// <summary>SiteActor.Outgoing: the invalidation stream of a source.</summary>
internal sealed class OutgoingModel(string disk, string toSite, long epoch, string relocation)
{
    public string Disk { get; } = disk;
    public string ToSite { get; } = toSite;
    public long Epoch { get; } = epoch;
    public string Relocation { get; } = relocation;
    public long Seq { get; set; }
    public SortedDictionary<long, (List<(long First, long Count)> Runs, long Sent)> Unacked { get; } = new();
}

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
    public const string HoleWritten = "a block the source reported as a hole was written there: no longer known zero";
}
