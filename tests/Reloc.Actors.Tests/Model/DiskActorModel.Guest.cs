using System.Text;
using Reloc.Actors.Disk;
using Reloc.Storage;

namespace Reloc.Actors.Tests.Model;

/// <summary>The NBD face of <see cref="DiskActorModel"/> (mirrors RelocatingDisk).</summary>
internal sealed partial class DiskActorModel
{
    // ---------------- RelocatingDisk: the guest's requests ----------------

    /// <summary>RelocatingDisk.WriteAsync (one block; whole or partial).</summary>
    public void GuestWrite(int block, int version, bool whole, Action<bool> done)
    {
        if (State.IsOwner && Map.AllLocal(block * (long)Sim.BlockSize, Sim.BlockSize))
        {
            Image.Volatile[block] = version; // fast path: straight to the image
            done(true);
            return;
        }
        Ask(reply => OnPrepareWrite(block, whole, reply), r =>
        {
            if (r is not WriteGranted grant) { done(false); return; }
            Image.Volatile[block] = version;
            Tell(() => OnWriteDone(grant.Reserved));
            done(true);
        });
    }

    /// <summary>RelocatingDisk.TryRead / ReadAsync: before ownership from the source (read-through), after it locally.</summary>
    public void GuestRead(int block, Action<int?> done)
    {
        if (State.IsOwner && Map.AllLocal(block * (long)Sim.BlockSize, Sim.BlockSize))
        {
            done(Image.Volatile[block]);
            return;
        }
        void Local() => Ask(reply => { if (Complete) reply(new Ready()); else Ensure(block, reply, new Ready()); },
            r => done(r is Ready ? Image.Volatile[block] : null));
        if (!State.IsOwner)
        {
            Ask(reply => OnReadThrough(block, reply), r =>
            {
                if (r is ThroughData t) done(t.Version);
                else if (r is Ready) Local();
                else done(null);
            });
            return;
        }
        Local();
    }

    /// <summary>VirtualDiskActor: Command&lt;ReadThrough&gt; (BlockFetcher.ReadThroughAsync when not the owner)</summary>
    private void OnReadThrough(int block, Action<object> reply)
    {
        if (Complete) { reply(new Ready()); return; }
        if (State.IsOwner) { Ensure(block, reply, new Ready()); return; }
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
                () => Answer(data is null ? new Failed("read from the source failed") : new ThroughData(data[0])), nbd: true);
        }, nbd: true);
        _sim.After(Sim.MissTimeoutMs, () => Answer(new Failed("read from the source timed out")));
    }

    /// <summary>RelocatingDisk.FlushAsync: Sync.</summary>
    public void GuestFlush(Action<bool> done) => Ask(reply => OnSync(() => reply(new Ready())), r => done(r is Ready));

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
        _sim.After(Sim.GuestAskTimeoutMs, () => Answer(new Failed("disk actor did not answer in time")));
    }
}
