using System.IO.Enumeration;
using System.Net;

namespace Reloc.Nbd.Server;

/// <summary>
/// Who is on the other end of an NBD connection, as far as the server knows it during the option phase.
/// </summary>
/// <param name="Display">The remote end point as text ("unix" for a Unix socket), for logs.</param>
/// <param name="Address">The remote IP address; null for a Unix socket.</param>
/// <param name="IsTls">STARTTLS completed.</param>
/// <param name="CertificateSubject">Subject of the client certificate, only when one was presented and verified against the CA.</param>
/// <param name="CertificateCommonName">Its common name (CN), likewise.</param>
public sealed record NbdPeer(string Display, IPAddress? Address, bool IsTls = false, string? CertificateSubject = null,
    string? CertificateCommonName = null)
{
    public bool IsUnix => Address is null;

    /// <summary>The verified identity for logs: the certificate's subject, or "anonymous".</summary>
    public string Identity => CertificateSubject ?? "anonymous";

    public static NbdPeer FromEndPoint(EndPoint? remote) => remote switch
    {
        IPEndPoint ip => new NbdPeer(remote.ToString()!, ip.Address.IsIPv4MappedToIPv6 ? ip.Address.MapToIPv4() : ip.Address),
        _ => new NbdPeer("unix", null),
    };
}

/// <summary>The outcome of an access check; <see cref="Reason"/> goes to the client and the log.</summary>
public readonly record struct AccessDecision(bool Allowed, string Reason)
{
    public static AccessDecision Allow(string reason) => new(true, reason);
    public static AccessDecision Deny(string reason) => new(false, reason);
}

/// <summary>Decides whether a peer may use (see, query, open) an export. Called during the option phase for
/// every export a client names (INFO, GO, EXPORT_NAME, meta contexts) and for every export LIST would show.</summary>
public interface IExportAccessPolicy
{
    AccessDecision Decide(NbdPeer peer, string export);
}

/// <summary>Every peer may use every export (the default).</summary>
public sealed class AllowAllExports : IExportAccessPolicy
{
    public static AllowAllExports Instance { get; } = new();
    public AccessDecision Decide(NbdPeer peer, string export) => AccessDecision.Allow("no access rules");
}

/// <summary>
/// One rule of an <see cref="ExportAcl"/>: exports matching <see cref="Export"/> (a name, or a glob with * and ?)
/// are open to peers that meet every condition given: a verified client certificate whose CN or full subject
/// is in <see cref="Identities"/>, and an address inside one of <see cref="Networks"/>. A rule with neither
/// opens its exports to everyone. Unix-socket peers have no address, so a network condition never admits them.
/// </summary>
public sealed record ExportAclRule(string Export, IReadOnlyList<string> Identities, IReadOnlyList<IPNetwork> Networks)
{
    public bool Covers(string export) => FileSystemName.MatchesSimpleExpression(Export, export, ignoreCase: false);

    public bool Admits(NbdPeer peer)
    {
        bool identity = Identities.Count == 0
                        || (peer.CertificateCommonName is { } cn && Identities.Contains(cn, StringComparer.Ordinal))
                        || (peer.CertificateSubject is { } subject && Identities.Contains(subject, StringComparer.Ordinal));
        var address = peer.Address is { IsIPv4MappedToIPv6: true } mapped ? mapped.MapToIPv4() : peer.Address;
        bool network = Networks.Count == 0 || (address is not null && Networks.Any(n => n.Contains(address)));
        return identity && network;
    }

    public override string ToString() =>
        $"{Export} <- " + (Identities.Count == 0 && Networks.Count == 0
            ? "anyone"
            : string.Join(", ", Identities.Select(i => $"cert {i}").Concat(Networks.Select(n => $"net {n}"))));
}

/// <summary>
/// Export access rules. An export covered by some rule is open to a peer admitted by at least one of the rules
/// that cover it; an export no rule covers follows <see cref="DefaultAllow"/>. Pure: the same peer and export
/// always give the same answer.
/// </summary>
public sealed record ExportAcl(IReadOnlyList<ExportAclRule> Rules, bool DefaultAllow = false) : IExportAccessPolicy
{
    /// <summary>
    /// Reads the text form (<c>reloc-node serve --acl FILE</c>): one rule a line, <c>EXPORT-GLOB [cert=NAME]... [net=CIDR]...</c>,
    /// where NAME is a certificate CN or full subject (double quotes around one with spaces), plus at most one
    /// <c>default allow</c> or <c>default deny</c> line (deny when absent). <c>#</c> starts a comment.
    /// </summary>
    /// <exception cref="FormatException">A line that does not parse, with its number.</exception>
    public static ExportAcl Parse(string text)
    {
        var rules = new List<ExportAclRule>();
        bool? defaultAllow = null;
        var lines = text.Split('\n');
        for (int n = 1; n <= lines.Length; n++)
        {
            var line = lines[n - 1];
            int hash = line.IndexOf('#');
            var tokens = Tokens(hash >= 0 ? line[..hash] : line, n);
            if (tokens.Count == 0) continue;
            if (tokens[0] == "default")
            {
                if (tokens.Count != 2 || tokens[1] is not ("allow" or "deny")) throw Bad(n, "expected 'default allow' or 'default deny'");
                if (defaultAllow is not null) throw Bad(n, "a second 'default' line");
                defaultAllow = tokens[1] == "allow";
                continue;
            }
            var identities = new List<string>();
            var networks = new List<IPNetwork>();
            foreach (var t in tokens.Skip(1))
            {
                if (t.StartsWith("cert=", StringComparison.Ordinal) && t.Length > 5) identities.Add(t[5..]);
                else if (t.StartsWith("net=", StringComparison.Ordinal) && IPNetwork.TryParse(t[4..], out var net)) networks.Add(net);
                else throw Bad(n, $"'{t}': expected cert=NAME or net=CIDR (e.g. net=10.0.0.0/8)");
            }
            rules.Add(new ExportAclRule(tokens[0], identities, networks));
        }
        return new ExportAcl(rules, defaultAllow ?? false);
    }

    private static List<string> Tokens(string line, int n)
    {
        var tokens = new List<string>();
        var current = new System.Text.StringBuilder();
        bool quoted = false, any = false;
        foreach (var c in line.TrimEnd('\r'))
        {
            if (c == '"') { quoted = !quoted; any = true; }
            else if (char.IsWhiteSpace(c) && !quoted)
            {
                if (any) tokens.Add(current.ToString());
                current.Clear();
                any = false;
            }
            else { current.Append(c); any = true; }
        }
        if (quoted) throw Bad(n, "unterminated quote");
        if (any) tokens.Add(current.ToString());
        return tokens;
    }

    private static FormatException Bad(int line, string why) => new($"ACL line {line}: {why}");

    public AccessDecision Decide(NbdPeer peer, string export)
    {
        var covering = Rules.Where(r => r.Covers(export)).ToList();
        if (covering.Count == 0)
            return DefaultAllow ? AccessDecision.Allow("no rule covers the export; default allow")
                                : AccessDecision.Deny("no rule covers the export; default deny");
        var admitting = covering.FirstOrDefault(r => r.Admits(peer));
        return admitting is not null
            ? AccessDecision.Allow($"rule '{admitting}'")
            : AccessDecision.Deny($"not admitted by the rules for this export ({string.Join("; ", covering)})");
    }
}
