namespace Reloc.Actors.Site.Core;

/// <summary>
/// Which files <c>disk create --from FILE</c> may read: only under the site's <c>reloc.site.import-dir</c> (none set:
/// no imports from files at all). The path is judged by where it really leads: the shell canonicalizes both it and
/// the import directory (<see cref="Reloc.Storage.RealPaths"/>: every symbolic link and ".." resolved) and this pure
/// decision compares the results, so neither "../" nor a link inside the directory that points out of it gets through.
/// </summary>
public static class ImportPaths
{
    /// <summary>A decision: <see cref="Path"/> (canonical) may be read, or <see cref="Refusal"/> says why not.</summary>
    public sealed record Decision(string? Path, string? Refusal);

    /// <param name="site">This site's name (for the messages).</param>
    /// <param name="importDir">reloc.site.import-dir as configured (null or empty: imports from files are off).</param>
    /// <param name="importDirReal">Its canonical path, or null when it does not exist.</param>
    /// <param name="requested">The path the operator gave.</param>
    /// <param name="requestedReal">Its canonical path, or null when it leads nowhere.</param>
    public static Decision Decide(string site, string? importDir, string? importDirReal, string requested, string? requestedReal)
    {
        if (string.IsNullOrEmpty(importDir))
            return Refuse($"site {site} does not import disks from files: reloc.site.import-dir is not set there (or import over NBD: --from nbd://HOST:PORT/EXPORT)");
        if (!System.IO.Path.IsPathFullyQualified(requested))
            return Refuse($"'{requested}' is not an absolute path: give the file's full path on site {site}");
        if (importDirReal is null)
            return Refuse($"the import directory {importDir} of site {site} does not exist");
        if (requestedReal is null)
            return Refuse(Inside(System.IO.Path.GetFullPath(requested), importDirReal)
                ? $"no file {requested} on site {site}"
                : $"'{requested}' is outside site {site}'s import directory {importDir}: only files under it can be imported");
        if (!Inside(requestedReal, importDirReal))
            return Refuse(requestedReal == System.IO.Path.GetFullPath(requested)
                ? $"'{requested}' is outside site {site}'s import directory {importDir}: only files under it can be imported"
                : $"'{requested}' leads to {requestedReal}, outside site {site}'s import directory {importDir}: only files under it can be imported");
        return new Decision(requestedReal, null);
    }

    /// <summary>Strictly below <paramref name="dir"/> (both canonical): "/imports-old/x" is not under "/imports".</summary>
    private static bool Inside(string path, string dir)
    {
        var prefix = dir.EndsWith('/') ? dir : dir + "/";
        return path.StartsWith(prefix, StringComparison.Ordinal) && path.Length > prefix.Length;
    }

    private static Decision Refuse(string why) => new(null, why);
}
