using System.Globalization;
using System.Text;

namespace Reloc.Nbd.Client;

/// <summary>
/// An NBD URI as libnbd, qemu and nbdkit write them (NetworkBlockDevice/nbd doc/uri.md):
/// <c>nbd://host[:port][/export]</c> over TCP or <c>nbd+unix:///export?socket=/path</c> over a Unix socket.
/// TLS schemes are refused rather than silently downgraded.
/// </summary>
public sealed record NbdUri(string? Host, int Port, string Export, string? SocketPath)
{
    public const int DefaultPort = 10809;

    public bool IsUnix => SocketPath is not null;

    public static NbdUri Parse(string uri)
    {
        if (string.IsNullOrWhiteSpace(uri)) throw new FormatException("NBD URI is empty");
        int sep = uri.IndexOf("://", StringComparison.Ordinal);
        if (sep <= 0)
            throw Bad(uri, "expected nbd://host[:port]/export or nbd+unix:///export?socket=PATH");
        var scheme = uri[..sep].ToLowerInvariant();
        if (scheme.StartsWith("nbds", StringComparison.Ordinal)) throw Bad(uri, $"TLS ({scheme}://) is not supported");
        if (scheme is not ("nbd" or "nbd+unix"))
            throw Bad(uri, $"unknown scheme '{scheme}' (expected nbd or nbd+unix)");

        var rest = uri[(sep + 3)..];
        if (rest.Contains('#')) throw Bad(uri, "a fragment (#) is not allowed");
        string query = "";
        int q = rest.IndexOf('?');
        if (q >= 0) (rest, query) = (rest[..q], rest[(q + 1)..]);
        int slash = rest.IndexOf('/');
        var authority = slash < 0 ? rest : rest[..slash];
        var export = slash < 0 ? "" : Unescape(uri, rest[(slash + 1)..]);
        var parameters = ParseQuery(uri, query);

        if (scheme == "nbd+unix")
        {
            if (authority.Length != 0) throw Bad(uri, "nbd+unix takes no host or port (write nbd+unix:///export?socket=PATH)");
            if (!parameters.Remove("socket", out var socket) || socket.Length == 0)
                throw Bad(uri, "nbd+unix needs ?socket=PATH");
            RejectUnknown(uri, parameters);
            return new NbdUri(null, DefaultPort, export, socket);
        }

        RejectUnknown(uri, parameters);
        var (host, port) = ParseAuthority(uri, authority);
        return new NbdUri(host, port, export, null);
    }

    public static bool TryParse(string uri, out NbdUri? result)
    {
        try
        {
            result = Parse(uri);
            return true;
        }
        catch (FormatException)
        {
            result = null;
            return false;
        }
    }

    public override string ToString()
    {
        var export = Uri.EscapeDataString(Export).Replace("%2F", "/", StringComparison.Ordinal);
        if (SocketPath is not null) return $"nbd+unix:///{export}?socket={SocketPath}";
        var host = Host!.Contains(':') ? $"[{Host}]" : Host;
        return $"nbd://{host}:{Port}/{export}";
    }

    private static (string Host, int Port) ParseAuthority(string uri, string authority)
    {
        if (authority.Contains('@')) throw Bad(uri, "user information (user@host) is not supported");
        string host;
        string? port = null;
        if (authority.StartsWith('['))
        {
            int close = authority.IndexOf(']');
            if (close < 0) throw Bad(uri, "unterminated IPv6 address (missing ']')");
            host = authority[1..close];
            var after = authority[(close + 1)..];
            if (after.Length > 0)
            {
                if (after[0] != ':') throw Bad(uri, $"unexpected '{after}' after the IPv6 address");
                port = after[1..];
            }
        }
        else
        {
            int colon = authority.LastIndexOf(':');
            host = colon < 0 ? authority : authority[..colon];
            if (colon >= 0) port = authority[(colon + 1)..];
            if (host.Contains(':')) throw Bad(uri, "an IPv6 address must be written in brackets, e.g. nbd://[::1]:10809/export");
        }
        if (host.Length == 0) throw Bad(uri, "nbd:// needs a host (for a Unix socket use nbd+unix:///export?socket=PATH)");
        if (port is null || port.Length == 0) return (host, DefaultPort);
        if (!port.All(char.IsAsciiDigit) || !int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out var p) || p is < 1 or > 65535)
            throw Bad(uri, $"port '{port}' is not a number from 1 to 65535");
        return (host, p);
    }

    private static Dictionary<string, string> ParseQuery(string uri, string query)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var part in query.Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = part.IndexOf('=');
            var key = Unescape(uri, eq < 0 ? part : part[..eq]);
            var value = eq < 0 ? "" : Unescape(uri, part[(eq + 1)..]);
            if (!result.TryAdd(key, value)) throw Bad(uri, $"query parameter '{key}' is given twice");
        }
        return result;
    }

    private static void RejectUnknown(string uri, Dictionary<string, string> parameters)
    {
        if (parameters.Count > 0) throw Bad(uri, $"query parameter '{parameters.Keys.First()}' is not supported");
    }

    private static string Unescape(string uri, string s)
    {
        var value = Uri.UnescapeDataString(s);
        if (value.Contains('\0') || Encoding.UTF8.GetByteCount(value) > 4096)
            throw Bad(uri, "export names and parameters must be at most 4096 bytes and contain no NUL");
        return value;
    }

    private static FormatException Bad(string uri, string why) => new($"invalid NBD URI '{uri}': {why}");
}
