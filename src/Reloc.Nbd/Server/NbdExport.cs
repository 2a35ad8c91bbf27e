using System.Collections.Immutable;
using Reloc.Nbd.Protocol;
using Reloc.Storage;

namespace Reloc.Nbd.Server;

/// <summary>A named disk offered to NBD clients.</summary>
public sealed record NbdExport(string Name, IBlockDevice Device, string Description = "")
{
    /// <summary>Clients in the transmission phase on this export (what a handover waits on).</summary>
    public ExportClients Clients { get; } = new();

    /// <summary>The transmission flags this export advertises: only what it really does.</summary>
    public TransmissionFlags FlagsFor(bool structuredReplies)
    {
        var f = TransmissionFlags.HasFlags | TransmissionFlags.SendFlush | TransmissionFlags.SendCache
              | TransmissionFlags.CanMultiConn;
        if (structuredReplies) f |= TransmissionFlags.SendDf;
        if (Device.IsReadOnly) f |= TransmissionFlags.ReadOnly;
        else f |= TransmissionFlags.SendFua | TransmissionFlags.SendTrim | TransmissionFlags.SendWriteZeroes
                  | TransmissionFlags.SendFastZero;
        return f;
    }
}

/// <summary>Counts an export's connected clients and tells who listens when the count changes.</summary>
public sealed class ExportClients
{
    private int _count;

    public int Count => Volatile.Read(ref _count);

    /// <summary>Raised with the new count, on the connection's thread: handlers must not block.</summary>
    public event Action<int>? Changed;

    // Count first: with no subscriber, `Changed?.Invoke(Interlocked.Increment(...))` would skip the increment too.
    internal void Connected()
    {
        int n = Interlocked.Increment(ref _count);
        Changed?.Invoke(n);
    }

    internal void Disconnected()
    {
        int n = Interlocked.Decrement(ref _count);
        Changed?.Invoke(n);
    }
}

/// <summary>The exports a server offers; replaceable at run time (sites add and remove disks).</summary>
public sealed class ExportCatalog
{
    private ImmutableList<NbdExport> _exports = ImmutableList<NbdExport>.Empty;

    public ExportCatalog(IEnumerable<NbdExport>? exports = null)
    {
        foreach (var e in exports ?? []) Add(e);
    }

    public IReadOnlyList<NbdExport> All => _exports;

    public void Add(NbdExport export)
    {
        if (string.IsNullOrEmpty(export.Name)) throw new ArgumentException("an export needs a name");
        ImmutableInterlocked.Update(ref _exports, list =>
            list.Any(e => e.Name == export.Name)
                ? throw new ArgumentException($"export '{export.Name}' is already defined")
                : list.Add(export));
    }

    public bool Remove(string name) =>
        ImmutableInterlocked.Update(ref _exports, list => list.RemoveAll(e => e.Name == name));

    /// <summary>Finds an export; the empty name (what `nbd://host/` asks for) means the first one.</summary>
    public bool TryGet(string name, out NbdExport export)
    {
        var list = _exports;
        export = name.Length == 0 ? list.FirstOrDefault()! : list.FirstOrDefault(e => e.Name == name)!;
        return export is not null;
    }
}
