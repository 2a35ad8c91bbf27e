using System.Globalization;
using System.Text;

namespace Reloc.Nbd.Client;

/// <summary>
/// An NBD URI as libnbd, qemu and nbdkit write them (NetworkBlockDevice/nbd doc/uri.md):
/// <c>nbd://host[:port][/export]</c> over TCP or <c>nbd+unix:///export?socket=/path</c> over a Unix socket;
/// <c>nbds://</c> and <c>nbds+unix://</c> require TLS, with libnbd's query parameters <c>tls-certificates=DIR</c>,
/// <c>tls-hostname=NAME</c> and <c>tls-verify-peer=false</c>.
/// </summary>
public sealed record NbdUri(string? Host, int Port, string Export, string? SocketPath)
{
    public const int DefaultPort = 10809;

    /// <summary>nbds: STARTTLS is required.</summary>
    public bool Tls { get; init; }

    /// <summary>tls-certificates: the folder with ca-cert.pem and, optionally, client-cert.pem and client-key.pem.</summary>
    public string? TlsCertificates { get; init; }

    /// <summary>tls-hostname: the name the server certificate must carry instead of the host.</summary>
    public string? TlsHostname { get; init; }

    /// <summary>tls-verify-peer: false skips the server certificate check (tests, never production).</summary>
    public bool TlsVerifyPeer { get; init; } = true;

    public bool IsUnix => SocketPath is not null;

    public static NbdUri Parse(string uri)
    {
        if (string.IsNullOrWhiteSpace(uri)) throw new FormatException("NBD URI is empty");
        int sep = uri.IndexOf("://", StringComparison.Ordinal);
        if (sep <= 0)
            throw Bad(uri, "expected nbd://host[:port]/export or nbd+unix:///export?socket=PATH");
        var scheme = uri[..sep].ToLowerInvariant();
        if (scheme is not ("nbd" or "nbd+unix" or "nbds" or "nbds+unix"))
            throw Bad(uri, $"unknown scheme '{scheme}' (expected nbd, nbd+unix, nbds or nbds+unix)");
        bool tls = scheme.StartsWith("nbds", StringComparison.Ordinal);

        var rest = uri[(sep + 3)..];
        if (rest.Contains('#')) throw Bad(uri, "a fragment (#) is not allowed");
        string query = "";
        int q = rest.IndexOf('?');
        if (q >= 0) (rest, query) = (rest[..q], rest[(q + 1)..]);
        int slash = rest.IndexOf('/');
        var authority = slash < 0 ? rest : rest[..slash];
        var export = slash < 0 ? "" : Unescape(uri, rest[(slash + 1)..]);
        var parameters = ParseQuery(uri, query);
        var withTls = ParseTls(uri, tls, parameters);

        if (scheme.EndsWith("+unix", StringComparison.Ordinal))
        {
            if (authority.Length != 0) throw Bad(uri, $"{scheme} takes no host or port (write {scheme}:///export?socket=PATH)");
            if (!parameters.Remove("socket", out var socket) || socket.Length == 0)
                throw Bad(uri, $"{scheme} needs ?socket=PATH");
            RejectUnknown(uri, parameters);
            return withTls(new NbdUri(null, DefaultPort, export, socket));
        }

        RejectUnknown(uri, parameters);
        var (host, port) = ParseAuthority(uri, authority);
        return withTls(new NbdUri(host, port, export, null));
    }

    private static Func<NbdUri, NbdUri> ParseTls(string uri, bool tls, Dictionary<string, string> parameters)
    {
        parameters.Remove("tls-certificates", out var certificates);
        parameters.Remove("tls-hostname", out var hostname);
        bool verify = true;
        if (parameters.Remove("tls-verify-peer", out var v))
        {
            verify = v switch
            {
                "true" or "1" => true,
                "false" or "0" => false,
                _ => throw Bad(uri, $"tls-verify-peer must be true or false, not '{v}'"),
            };
        }
        if (!tls && (certificates is not null || hostname is not null || !verify))
            throw Bad(uri, "tls-* parameters need a TLS scheme (nbds:// or nbds+unix://)");
        if (certificates is { Length: 0 } || hostname is { Length: 0 }) throw Bad(uri, "tls-certificates and tls-hostname must not be empty");
        return u => u with { Tls = tls, TlsCertificates = certificates, TlsHostname = hostname, TlsVerifyPeer = verify };
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
        var scheme = Tls ? "nbds" : "nbd";
        var tls = new List<string>();
        if (TlsCertificates is not null) tls.Add($"tls-certificates={EscapeValue(TlsCertificates)}");
        if (TlsHostname is not null) tls.Add($"tls-hostname={EscapeValue(TlsHostname)}");
        if (!TlsVerifyPeer) tls.Add("tls-verify-peer=false");
        if (SocketPath is not null) return $"{scheme}+unix:///{export}?{string.Join('&', tls.Prepend($"socket={SocketPath}"))}";
        var host = Host!.Contains(':') ? $"[{Host}]" : Host;
        return $"{scheme}://{host}:{Port}/{export}" + (tls.Count > 0 ? "?" + string.Join('&', tls) : "");
    }

    private static string EscapeValue(string value) => Uri.EscapeDataString(value).Replace("%2F", "/", StringComparison.Ordinal);

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
