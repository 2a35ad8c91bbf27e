using Reloc.Storage;

namespace Reloc.Actors.Disk;

/// <summary>
/// What a destination knows of its source's zero blocks (holes or zero extents, from NBD BLOCK_STATUS),
/// so the background copy punches them instead of reading them over the WAN. Pure and deterministic: the
/// disk actor feeds it scans and source writes, and asks it how to copy a run.
/// </summary>
/// <remarks>
/// This is knowledge about the source, so a source write invalidates it exactly like a copied block:
/// <list type="bullet">
/// <item>a write reported by the source (an invalidation, the final dirty set, "every block" after a source
/// restart) removes its blocks from what is known zero;</item>
/// <item>a scan is a look at the source at some moment between its start and its answer: blocks written
/// after the scan began are left out of its answer. The source reports a write only after it completed,
/// so a write reported before a scan began is visible to that scan.</item>
/// </list>
/// Knowledge that a write took away hid real holes when the reported runs were coarse (runs joined to
/// fit a message, or the whole disk after a source restart); once enough of it is lost the region is
/// scanned again, one scan at a time. Nothing here is persisted: a restarted destination scans anew.
/// </remarks>
public sealed class SourceZeros
{
    /// <summary>Blocks lost to writes before they are worth scanning again (fewer on a small disk: a sixteenth
    /// of it). A write into a hole takes out exactly the blocks it filled, which a new scan would find full; a
    /// large loss comes from coarse reports.</summary>
    public const long RescanThreshold = 256;

    private readonly long _rescanAt;

    public SourceZeros(long blockCount) => _rescanAt = Math.Clamp(blockCount / 16, 1, RescanThreshold);

    private sealed record Scan(BlockRuns Ranges, BlockRuns WrittenSince);

    private readonly BlockRuns _known = new();
    private readonly BlockRuns _lost = new();
    private readonly Dictionary<long, Scan> _scans = [];
    private long _lastScan;

    /// <summary>Blocks known to be zero at the source now.</summary>
    public long KnownBlocks => _known.Blocks;

    /// <summary>Blocks once known zero, since written at the source, not yet scanned again.</summary>
    public long LostBlocks => _lost.Blocks;

    public bool Scanning => _scans.Count > 0;

    /// <summary>A first scan has answered (or failed): until then every run would be read in full.</summary>
    public bool FirstScanDone { get; private set; }

    /// <summary>Starts a scan of <paramref name="ranges"/>; its id goes with the request and comes back with the answer.</summary>
    public long BeginScan(IReadOnlyList<(long First, long Count)> ranges)
    {
        long id = ++_lastScan;
        _scans[id] = new Scan(new BlockRuns(ranges), new BlockRuns());
        return id;
    }

    /// <summary>The source wrote these blocks (or may have): none of them is known zero any more.</summary>
    public void Written(long first, long count)
    {
        if (count <= 0) return;
        // What was known zero, and what a scan under way may still report zero, is lost.
        foreach (var (f, c) in _known.Intersect(first, count).ToList()) _lost.Add(f, c);
        _known.Remove(first, count);
        foreach (var scan in _scans.Values)
        {
            scan.WrittenSince.Add(first, count);
            foreach (var (f, c) in scan.Ranges.Intersect(first, count).ToList()) _lost.Add(f, c);
        }
    }

    /// <summary>A scan's answer: the zero runs it found in its ranges. An unknown id (a duplicate) changes nothing.</summary>
    public void ScanCompleted(long id, IEnumerable<(long First, long Count)> zeroRuns)
    {
        if (!_scans.Remove(id, out var scan)) return;
        FirstScanDone = true;
        // The scan answers for its ranges, except for blocks written while it ran: those stay lost.
        foreach (var (first, count) in scan.Ranges.Runs.ToList())
            foreach (var (f, c) in scan.WrittenSince.Except(first, count).ToList()) _lost.Remove(f, c);
        foreach (var (first, count) in zeroRuns)
            foreach (var (inFirst, inCount) in scan.Ranges.Intersect(first, count).ToList())
                foreach (var (f, c) in scan.WrittenSince.Except(inFirst, inCount).ToList()) _known.Add(f, c);
    }

    /// <summary>A scan that found nothing out (the source cannot tell): its ranges are copied in full.</summary>
    public void ScanFailed(long id) => ScanCompleted(id, []);

    /// <summary>The ranges to scan again, when enough knowledge was lost and no scan is under way; null otherwise.</summary>
    public IReadOnlyList<(long First, long Count)>? Rescan()
    {
        if (Scanning || _lost.Blocks < _rescanAt) return null;
        return _lost.Runs.ToList();
    }

    /// <summary>Clips a run of missing blocks so that it is all known zero (Zero = true) or all not known zero.</summary>
    public (long First, long Count, bool Zero) Classify(long first, long count)
    {
        var (clipped, zero) = _known.Clip(first, count);
        return (first, clipped, zero);
    }
}
