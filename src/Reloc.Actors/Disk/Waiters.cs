namespace Reloc.Actors.Disk;

/// <summary>Guest requests waiting for blocks to become local, indexed by block. Reply tokens are opaque:
/// the answers are returned to the caller, who sends them.</summary>
internal sealed class Waiters
{
    private sealed class Waiter(object replyTo, object reply, int remaining, DateTime deadline)
    {
        public object ReplyTo { get; } = replyTo;
        public object Reply { get; } = reply;
        public int Remaining { get; set; } = remaining;
        public DateTime Deadline { get; } = deadline;
        public bool Done { get; set; }
    }

    private readonly Dictionary<long, List<Waiter>> _byBlock = new();
    private readonly List<Waiter> _all = [];

    public int Count => _all.Count;
    public IEnumerable<long> Blocks => _byBlock.Keys;

    public void Add(object replyTo, object reply, IReadOnlyCollection<long> blocks, DateTime deadline)
    {
        var w = new Waiter(replyTo, reply, blocks.Count, deadline);
        _all.Add(w);
        foreach (var b in blocks)
        {
            if (!_byBlock.TryGetValue(b, out var list)) _byBlock[b] = list = [];
            list.Add(w);
        }
    }

    /// <summary>Blocks [first, first+count) are local: the answers for whoever was waiting for nothing else.</summary>
    public List<(object To, object Reply)> Landed(long first, long count)
    {
        var answers = new List<(object, object)>();
        if (_byBlock.Count == 0) return answers;
        for (long b = first; b < first + count; b++)
        {
            if (!_byBlock.Remove(b, out var list)) continue;
            foreach (var w in list)
            {
                if (w.Done || --w.Remaining > 0) continue;
                w.Done = true;
                answers.Add((w.ReplyTo, w.Reply));
            }
        }
        if (_all.Count > 64 || _byBlock.Count == 0) _all.RemoveAll(w => w.Done);
        return answers;
    }

    /// <summary>Takes out every waiter whose deadline passed; returns whom to fail, in the order they came.</summary>
    public List<object> Expire(DateTime now)
    {
        var expired = new List<object>();
        foreach (var w in _all)
        {
            if (w.Done || w.Deadline > now) continue;
            w.Done = true;
            expired.Add(w.ReplyTo);
        }
        if (expired.Count > 0)
        {
            _all.RemoveAll(w => w.Done);
            foreach (var key in _byBlock.Where(kv => kv.Value.All(w => w.Done)).Select(kv => kv.Key).ToList()) _byBlock.Remove(key);
        }
        return expired;
    }
}
