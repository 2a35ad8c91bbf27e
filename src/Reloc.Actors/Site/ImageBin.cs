namespace Reloc.Actors.Site;

/// <summary>
/// Where a site's released and deleted images go. Unlinking a large image takes long (0.38 s for a cached 1 GiB file
/// on this machine's ext4 with online discard; more per TiB), and it ran on the site actor's thread, holding up every
/// other disk of the site and a relocation's release. An image is renamed aside at once (same directory, so a rename,
/// never a copy) and unlinked on the thread pool. A crash in between leaves the renamed file: <see cref="Sweep"/> at the
/// next start removes it. The unlinks under way are awaited when the site stops.
/// </summary>
internal sealed class ImageBin(string directory) : IDisposable
{
    /// <summary>The prefix of an image set aside; never a disk's image name (those are the disk's name + ".img").</summary>
    public const string Prefix = ".reloc-discarded-";

    private readonly List<Task> _unlinking = [];

    /// <summary>Sets <paramref name="path"/> aside and unlinks it in the background; nothing if it is not there.</summary>
    public void Discard(string path)
    {
        var full = Path.GetFullPath(path);
        if (!File.Exists(full)) return;
        var aside = Path.Combine(Path.GetDirectoryName(full)!, Prefix + Guid.NewGuid().ToString("N") + "-" + Path.GetFileName(full));
        File.Move(full, aside);
        Unlink(aside);
    }

    /// <summary>Removes what a crash left set aside in the site's directory (in the background, as any discard).</summary>
    public void Sweep()
    {
        if (!Directory.Exists(directory)) return;
        foreach (var left in Directory.EnumerateFiles(directory, Prefix + "*")) Unlink(left);
    }

    /// <summary>Unlinks not yet finished (for tests and the site's status).</summary>
    public int Pending
    {
        get
        {
            _unlinking.RemoveAll(t => t.IsCompleted);
            return _unlinking.Count;
        }
    }

    private void Unlink(string path)
    {
        _unlinking.RemoveAll(t => t.IsCompleted);
        // A failed unlink leaves the file to the next start's sweep; it is never a disk's image any more.
        _unlinking.Add(Task.Run(() => { try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { } }));
    }

    /// <summary>Waits (bounded) for the unlinks under way, so a stopping site leaves nothing it could have removed.</summary>
    public void Dispose() => Task.WaitAll(_unlinking.ToArray(), TimeSpan.FromSeconds(30));
}
