namespace Reloc.Actors.Site;

/// <summary>Messages of <see cref="SiteActor"/>: the disks one site hosts. All may cross nodes.</summary>
public static class SiteProtocol
{
    /// <summary>Creates an empty (sparse) disk, or one filled from a local image file.</summary>
    public sealed record CreateDisk(string Name, long Size, string? FromFile = null) : IRelocMessage;

    public sealed record DeleteDisk(string Name) : IRelocMessage;

    public sealed record ListDisks : IRelocMessage;

    public sealed record DiskInfo(string Name, long Size, string Site, long Epoch, string Phase, string NbdUri) : IRelocMessage;

    public sealed record DiskList(string Site, IReadOnlyList<DiskInfo> Disks) : IRelocMessage;

    public sealed record Deleted(string Name) : IRelocMessage;

    /// <summary>The request was refused; nothing changed.</summary>
    public sealed record Refused(string Reason) : IRelocMessage;
}

/// <summary>Persisted events of a site's disk registry.</summary>
public static class SiteEvents
{
    public sealed record DiskAdded(string Name, long Size, string ImagePath, long Epoch) : IRelocMessage;

    public sealed record DiskRemoved(string Name) : IRelocMessage;

    /// <summary>A disk arriving from another site: served here at once, relocating from <see cref="SourceUri"/>.</summary>
    public sealed record IncomingAdded(string Name, long Size, string ImagePath, string SourceUri, long Epoch) : IRelocMessage;

    /// <summary>The disk was handed over at <see cref="NewEpoch"/>: this site refuses its writes from now on, even after a restart.</summary>
    public sealed record DiskFenced(string Name, long NewEpoch) : IRelocMessage;
}

/// <summary>A disk this site owns (pure registry state, rebuilt from <see cref="SiteEvents"/>).</summary>
public sealed record SiteDisk(string Name, long Size, string ImagePath, long Epoch, string Phase = SiteDisk.Owned, string? SourceUri = null)
{
    public const string Owned = "owned", Incoming = "incoming", Fenced = "fenced";
}

public sealed class SiteState
{
    private readonly Dictionary<string, SiteDisk> _disks = new(StringComparer.Ordinal);

    public IReadOnlyCollection<SiteDisk> Disks => _disks.Values;

    public bool TryGet(string name, out SiteDisk disk) => _disks.TryGetValue(name, out disk!);

    public void Apply(object evt)
    {
        switch (evt)
        {
            case SiteEvents.DiskAdded a:
                _disks[a.Name] = new SiteDisk(a.Name, a.Size, a.ImagePath, a.Epoch);
                break;
            case SiteEvents.DiskRemoved r:
                _disks.Remove(r.Name);
                break;
            case SiteEvents.IncomingAdded i:
                _disks[i.Name] = new SiteDisk(i.Name, i.Size, i.ImagePath, i.Epoch, SiteDisk.Incoming, i.SourceUri);
                break;
            case SiteEvents.DiskFenced f when _disks.TryGetValue(f.Name, out var d):
                _disks[f.Name] = d with { Phase = SiteDisk.Fenced, Epoch = f.NewEpoch };
                break;
            default:
                throw new ArgumentException($"not a site event: {evt.GetType().Name}");
        }
    }

    /// <summary>Disk names are NBD export names and file names: keep them to a safe alphabet.</summary>
    public static string? ValidateName(string name) =>
        name.Length is 0 or > 64 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.') || name.StartsWith('.')
            ? $"disk name '{name}' must be 1-64 characters of letters, digits, '-', '_' or '.', not starting with '.'"
            : null;
}
