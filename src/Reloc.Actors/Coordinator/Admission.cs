using Akka.Configuration;

namespace Reloc.Actors.Coordinator;

/// <summary>Validated reloc.coordinator.max-concurrent-relocations-per-site (reference.conf): how many relocations may
/// run at once with a given site at either end. 0: no limit.</summary>
public sealed record AdmissionSettings(int MaxPerSite)
{
    public const string Key = "reloc.coordinator.max-concurrent-relocations-per-site";
    /// <summary>Far above anything a site's disks and links could use; a larger number is a typo.</summary>
    public const int MaxLimit = 10_000;

    public static AdmissionSettings Unlimited { get; } = new(0);

    public bool Limited => MaxPerSite > 0;

    /// <summary>A number from 0 to <see cref="MaxLimit"/>, or off (0). Throws on anything else, at start.</summary>
    public static AdmissionSettings From(Config config)
    {
        if (!config.HasPath(Key)) return Unlimited;
        var text = config.GetString(Key, "").Trim();
        if (text is "off" or "false" or "0") return Unlimited; // HOCON reads a bare off as the boolean false
        if (!int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) || n > MaxLimit)
            throw new ArgumentException($"{Key} = '{text}': expected a number of relocations from 0 to {MaxLimit}, or off (0 and off: no limit)");
        return new AdmissionSettings(n);
    }
}

/// <summary>
/// The admission queue's one decision, pure: which waiting relocations start now. A relocation counts against both its
/// source and its destination site while it runs (from its start to its end: completed, cancelled, superseded). The
/// queue is served first come, first served per site: a waiting relocation holds its two sites for itself, so a later
/// one that shares a site with it does not start before it (else a stream of relocations to a busy destination could
/// starve one waiting for a busy source), while one between two other sites does.
/// </summary>
public static class Admission
{
    /// <summary>A relocation in the queue. <paramref name="Ready"/>: false while its place is not yet durable at its
    /// source (it cannot start, but it already holds its sites).</summary>
    public sealed record Waiting(string Disk, string From, string To, bool Ready = true);

    /// <param name="running">Each relocation under way (source, destination).</param>
    /// <param name="queue">The queue, first come first.</param>
    /// <param name="limit">Relocations per site at most (0: no limit).</param>
    /// <returns>The disks of the queue that start now, in queue order.</returns>
    public static IReadOnlyList<string> Admit(IEnumerable<(string From, string To)> running, IReadOnlyList<Waiting> queue, int limit)
    {
        var count = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (from, to) in running)
        {
            count[from] = count.GetValueOrDefault(from) + 1;
            count[to] = count.GetValueOrDefault(to) + 1;
        }
        var held = new HashSet<string>(StringComparer.Ordinal);
        var start = new List<string>();
        foreach (var w in queue)
        {
            bool free = limit == 0 || (count.GetValueOrDefault(w.From) < limit && count.GetValueOrDefault(w.To) < limit);
            if (w.Ready && free && !held.Contains(w.From) && !held.Contains(w.To))
            {
                start.Add(w.Disk);
                count[w.From] = count.GetValueOrDefault(w.From) + 1;
                count[w.To] = count.GetValueOrDefault(w.To) + 1;
            }
            else
            {
                held.Add(w.From);
                held.Add(w.To);
            }
        }
        return start;
    }
}
