using Akka.Actor;

namespace Reloc.Actors.Disk;

/// <summary>Guest requests waiting for blocks to become local, indexed by block.</summary>
internal sealed class Waiters
{
    private sealed class Waiter(IActorRef replyTo, object reply, int remaining, DateTime deadline)
    {
        public IActorRef ReplyTo { get; } = replyTo;
        public object Reply { get; } = reply;
        public int Remaining { get; set; } = remaining;
        public DateTime Deadline { get; } = deadline;
        public bool Done { get; set; }
    }

    private readonly Dictionary<long, List<Waiter>> _byBlock = new();
    private readonly List<Waiter> _all = [];

    public int Count => _all.Count;
    public IEnumerable<long> Blocks => _byBlock.Keys;

    public void Add(IActorRef replyTo, object reply, IReadOnlyCollection<long> blocks, DateTime deadline)
    {
        var w = new Waiter(replyTo, reply, blocks.Count, deadline);
        _all.Add(w);
        foreach (var b in blocks)
        {
            if (!_byBlock.TryGetValue(b, out var list)) _byBlock[b] = list = [];
            list.Add(w);
        }
    }

    /// <summary>Blocks [first, first+count) are local: answer whoever was waiting for nothing else.</summary>
    public void Landed(long first, long count)
    {
        if (_byBlock.Count == 0) return;
        for (long b = first; b < first + count; b++)
        {
            if (!_byBlock.Remove(b, out var list)) continue;
            foreach (var w in list)
            {
                if (w.Done || --w.Remaining > 0) continue;
                w.Done = true;
                w.ReplyTo.Tell(w.Reply);
            }
        }
        if (_all.Count > 64 || _byBlock.Count == 0) _all.RemoveAll(w => w.Done);
    }

    /// <summary>Fails every waiter whose deadline passed.</summary>
    public int Expire(DateTime now, Func<object> failure)
    {
        int n = 0;
        foreach (var w in _all)
        {
            if (w.Done || w.Deadline > now) continue;
            w.Done = true;
            w.ReplyTo.Tell(failure());
            n++;
        }
        if (n > 0)
        {
            _all.RemoveAll(w => w.Done);
            foreach (var key in _byBlock.Where(kv => kv.Value.All(w => w.Done)).Select(kv => kv.Key).ToList()) _byBlock.Remove(key);
        }
        return n;
    }
}
