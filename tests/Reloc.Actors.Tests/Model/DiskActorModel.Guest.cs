using Reloc.Actors.Disk;
using P = Reloc.Actors.Disk.VirtualDiskProtocol;

namespace Reloc.Actors.Tests.Model;

/// <summary>The NBD face of <see cref="DiskActorModel"/> (RelocatingDisk), and the fetcher's read-through.</summary>
internal sealed partial class DiskActorModel
{
    /// <summary>The model's ThroughData: the version the source held.</summary>
    private sealed record ThroughVersion(int Version);

    private long OffsetOf(int block) => block * (long)Sim.BlockSize;

    /// <summary>RelocatingDisk.WriteAsync (one block; whole or partial).</summary>
    public void GuestWrite(int block, int version, bool whole, Action<bool> done)
    {
        if (State.IsOwner && Map.AllLocal(OffsetOf(block), Sim.BlockSize))
        {
            Image.Volatile[block] = version; // fast path: straight to the image
            done(true);
            return;
        }
        long offset = whole ? OffsetOf(block) : OffsetOf(block) + 1, length = whole ? Sim.BlockSize : Sim.BlockSize - 2;
        Ask(reply => Feed(new DiskInput.PrepareWrite(offset, length, reply, Now)), r =>
        {
            if (r is not P.WriteGranted grant) { done(false); return; }
            Image.Volatile[block] = version;
            Tell(() => Feed(new DiskInput.WriteDone(grant.Reserved)));
            done(true);
        });
    }

    /// <summary>RelocatingDisk.TryRead / ReadAsync: before ownership from the source (read-through), after it locally.</summary>
    public void GuestRead(int block, Action<int?> done)
    {
        if (State.IsOwner && Map.AllLocal(OffsetOf(block), Sim.BlockSize))
        {
            done(Image.Volatile[block]);
            return;
        }
        void Local() => Ask(reply => Feed(new DiskInput.EnsureLocal(OffsetOf(block), Sim.BlockSize, reply, Now)),
            r => done(r is P.Ready ? Image.Volatile[block] : null));
        if (!State.IsOwner)
        {
            Ask(reply => Feed(new DiskInput.ReadThrough(OffsetOf(block), Sim.BlockSize, reply, Now)), r =>
            {
                if (r is ThroughVersion t) done(t.Version);
                else if (r is P.Ready) Local();
                else done(null);
            });
            return;
        }
        Local();
    }

    /// <summary>BlockFetcher.ReadThroughAsync: the source's block as it is now, landing nothing.</summary>
    private void ReadThrough(int block, Action<object> reply)
    {
        var self = _site.Name;
        bool answered = false;
        void Answer(object r)
        {
            if (answered) return;
            answered = true;
            reply(r);
        }
        _sim.Send(self, _source, $"NBD read-through {Sim.DiskName}@peer block {block}", () =>
        {
            var data = _sim.SiteOrNull(_source)?.ServePeerRead(Name, block, 1);
            _sim.Send(_source, self, data is null ? "NBD error" : $"NBD data [{data[0]}] for read-through of {block}",
                () => Answer(data is null ? new P.Failed("read from the source failed") : new ThroughVersion(data[0])), nbd: true);
        }, nbd: true);
        _sim.After(Sim.MissTimeoutMs, () => Answer(new P.Failed("read from the source timed out")));
    }

    /// <summary>RelocatingDisk.FlushAsync: Sync.</summary>
    public void GuestFlush(Action<bool> done) => Ask(reply => Feed(new DiskInput.Sync(reply, Now)), r => done(r is P.Ready));

    /// <summary>RelocatingDisk.AskAsync: an answer, or EIO after the ask timeout (a late answer is dropped).</summary>
    private void Ask(Action<Action<object>> handler, Action<object> then)
    {
        bool over = false;
        void Answer(object r)
        {
            if (over) return;
            over = true;
            then(r);
        }
        Tell(() => handler(r => _sim.Local(_site.Name, "guest", () => Answer(r))));
        _sim.After(Sim.GuestAskTimeoutMs, () => Answer(new P.Failed("disk actor did not answer in time")));
    }
}
