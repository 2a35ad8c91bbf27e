using System.Security.Cryptography;
using System.Text;

namespace Reloc.Actors.Management;

/// <summary>One principal of the tokens file: its name, its role, and the SHA-256 of its token (a token written in
/// the clear is hashed when read, so every comparison is of two hashes).</summary>
public sealed record TokenEntry(string Name, ManagementRole Role, byte[] Sha256);

/// <summary>
/// The bearer tokens file (reloc.management.auth.tokens-file), pure: one principal a line, <c>NAME ROLE TOKEN</c>
/// separated by blanks; ROLE viewer or operator; TOKEN <c>sha256:</c> and 64 hex digits, or the token itself
/// (at least <see cref="MinTokenLength"/> characters); '#' starts a comment; blank lines are skipped.
/// </summary>
public static class TokenFile
{
    public const int MinTokenLength = 16;

    /// <summary>The entries, or a <see cref="FormatException"/> naming the first bad line.</summary>
    public static IReadOnlyList<TokenEntry> Parse(string text)
    {
        var entries = new List<TokenEntry>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        int n = 0;
        foreach (var raw in text.Split('\n'))
        {
            n++;
            int hash = raw.IndexOf('#');
            var line = (hash >= 0 ? raw[..hash] : raw).Trim();
            if (line.Length == 0) continue;
            var parts = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length != 3) throw new FormatException($"line {n}: expected NAME ROLE TOKEN, found {parts.Length} field(s)");
            var role = parts[1].ToLowerInvariant() switch
            {
                "viewer" => ManagementRole.Viewer,
                "operator" => ManagementRole.Operator,
                _ => throw new FormatException($"line {n}: role '{parts[1]}': expected viewer or operator"),
            };
            if (!names.Add(parts[0])) throw new FormatException($"line {n}: '{parts[0]}' is listed twice");
            entries.Add(new TokenEntry(parts[0], role, Digest(parts[2], n)));
        }
        return entries;
    }

    private static byte[] Digest(string token, int line)
    {
        if (token.StartsWith("sha256:", StringComparison.OrdinalIgnoreCase))
        {
            var hex = token["sha256:".Length..];
            if (hex.Length != 64) throw new FormatException($"line {line}: sha256: needs 64 hex digits, found {hex.Length}");
            try { return Convert.FromHexString(hex); }
            catch (FormatException) { throw new FormatException($"line {line}: sha256: '{hex}' is not hexadecimal"); }
        }
        if (token.Length < MinTokenLength) throw new FormatException($"line {line}: a token needs at least {MinTokenLength} characters");
        return Hash(token);
    }

    public static byte[] Hash(string token) => SHA256.HashData(Encoding.UTF8.GetBytes(token));

    /// <summary>The principal whose token this is, or null. Constant time in the token: every entry is compared in full.</summary>
    public static TokenEntry? Match(IReadOnlyList<TokenEntry> entries, string token)
    {
        var digest = Hash(token);
        TokenEntry? found = null;
        foreach (var e in entries)
            if (CryptographicOperations.FixedTimeEquals(e.Sha256, digest)) found ??= e;
        return found;
    }
}

/// <summary>
/// The tokens file as the node holds it: read again when its time or size changed (checked at most once a second),
/// a file that does not parse keeping the previous tokens (and logged once), so a bad edit locks nobody out.
/// </summary>
/// <param name="time">The clock of the once-a-second check (tests move it on instead of waiting); the system's by default.</param>
public sealed class TokenStore(string? path, Action<string> logError, TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private static readonly TimeSpan CheckEvery = TimeSpan.FromSeconds(1);
    private readonly Lock _lock = new();
    private IReadOnlyList<TokenEntry> _entries = [];
    private (DateTime Time, long Length) _version;
    private DateTime _checked = DateTime.MinValue;

    public IReadOnlyList<TokenEntry> Entries
    {
        get
        {
            if (path is null) return [];
            lock (_lock)
            {
                var now = _time.GetUtcNow().UtcDateTime;
                if (now - _checked < CheckEvery) return _entries;
                _checked = now;
                var info = new FileInfo(path);
                var version = info.Exists ? (info.LastWriteTimeUtc, info.Length) : default;
                if (version == _version) return _entries;
                _version = version;
                try { _entries = TokenFile.Parse(File.ReadAllText(path)); }
                catch (Exception ex) when (ex is FormatException or IOException or UnauthorizedAccessException)
                {
                    logError($"reloc.management.auth.tokens-file = {path}: {ex.Message}; the previous tokens stay in force");
                }
                return _entries;
            }
        }
    }

    /// <summary>Reads the file now: a bad file at start is an error at start.</summary>
    public TokenStore Load()
    {
        if (path is null) return this;
        lock (_lock)
        {
            var info = new FileInfo(path);
            _entries = TokenFile.Parse(File.ReadAllText(path));
            _version = (info.LastWriteTimeUtc, info.Length);
            _checked = _time.GetUtcNow().UtcDateTime;
        }
        return this;
    }

    public TokenEntry? Match(string token) => TokenFile.Match(Entries, token);

    public bool Has(string name, ManagementRole role) => Entries.Any(e => e.Name == name && e.Role == role);
}
