namespace Reloc.Storage;

/// <summary>
/// A set of blocks kept as sorted, disjoint, non-adjacent runs [First, First+Count): the one place for
/// run arithmetic (union, difference, intersection, clipping a run to what the set holds).
/// </summary>
/// <remarks>Runs live in a sorted list: lookups are binary searches; adding runs in increasing order (as a
/// scan reports them) appends. A change in the middle moves the tail of the list, which is fine for the
/// thousands of runs a disk's holes or a batch of writes make.</remarks>
public sealed class BlockRuns
{
    private readonly List<(long First, long End)> _runs = [];

    public BlockRuns() { }

    public BlockRuns(IEnumerable<(long First, long Count)> runs)
    {
        foreach (var (first, count) in runs) Add(first, count);
    }

    /// <summary>Blocks in the set.</summary>
    public long Blocks { get; private set; }

    public int RunCount => _runs.Count;
    public bool IsEmpty => _runs.Count == 0;

    /// <summary>The runs in increasing order.</summary>
    public IEnumerable<(long First, long Count)> Runs => _runs.Select(r => (r.First, r.End - r.First));

    public bool Contains(long block)
    {
        int i = IndexAtOrAfter(block);
        return i < _runs.Count && _runs[i].First <= block;
    }

    public void Add(long first, long count)
    {
        if (count <= 0) return;
        long end = first + count;
        // Every run that overlaps or touches [first, end) merges into one.
        int lo = IndexAtOrAfter(first - 1); // the first run whose End >= first (touching counts)
        int hi = lo;
        while (hi < _runs.Count && _runs[hi].First <= end) hi++;
        long mergedFirst = first, mergedEnd = end, removed = 0;
        for (int i = lo; i < hi; i++)
        {
            mergedFirst = Math.Min(mergedFirst, _runs[i].First);
            mergedEnd = Math.Max(mergedEnd, _runs[i].End);
            removed += _runs[i].End - _runs[i].First;
        }
        _runs.RemoveRange(lo, hi - lo);
        _runs.Insert(lo, (mergedFirst, mergedEnd));
        Blocks += mergedEnd - mergedFirst - removed;
    }

    /// <summary>Takes [first, first+count) out of the set; returns the blocks that were in it.</summary>
    public long Remove(long first, long count)
    {
        if (count <= 0) return 0;
        long end = first + count, removed = 0;
        int i = IndexAtOrAfter(first);
        while (i < _runs.Count && _runs[i].First < end)
        {
            var (f, e) = _runs[i];
            long cutFirst = Math.Max(f, first), cutEnd = Math.Min(e, end);
            removed += cutEnd - cutFirst;
            _runs.RemoveAt(i);
            if (e > end) _runs.Insert(i, (end, e));
            if (f < first) _runs.Insert(i++, (f, first));
        }
        Blocks -= removed;
        return removed;
    }

    public void Clear()
    {
        _runs.Clear();
        Blocks = 0;
    }

    /// <summary>The parts of [first, first+count) that are in the set, in increasing order.</summary>
    public IEnumerable<(long First, long Count)> Intersect(long first, long count)
    {
        long end = first + count;
        for (int i = IndexAtOrAfter(first); i < _runs.Count && _runs[i].First < end; i++)
        {
            long f = Math.Max(_runs[i].First, first), e = Math.Min(_runs[i].End, end);
            yield return (f, e - f);
        }
    }

    /// <summary>The parts of [first, first+count) that are not in the set, in increasing order.</summary>
    public IEnumerable<(long First, long Count)> Except(long first, long count)
    {
        long pos = first, end = first + count;
        foreach (var (f, c) in Intersect(first, count).ToList())
        {
            if (f > pos) yield return (pos, f - pos);
            pos = f + c;
        }
        if (pos < end) yield return (pos, end - pos);
    }

    /// <summary>The longest start of [first, first+count) that is either all in the set (In = true) or all out of it.</summary>
    public (long Count, bool In) Clip(long first, long count)
    {
        int i = IndexAtOrAfter(first);
        if (i < _runs.Count && _runs[i].First <= first) return (Math.Min(count, _runs[i].End - first), true);
        if (i < _runs.Count && _runs[i].First < first + count) return (_runs[i].First - first, false);
        return (count, false);
    }

    /// <summary>Index of the first run whose End is after <paramref name="block"/> (the run holding it, or the next one).</summary>
    private int IndexAtOrAfter(long block)
    {
        int lo = 0, hi = _runs.Count;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_runs[mid].End <= block) lo = mid + 1;
            else hi = mid;
        }
        return lo;
    }

    public override string ToString() => string.Join(",", Runs.Select(r => $"{r.First}+{r.Count}"));
}
