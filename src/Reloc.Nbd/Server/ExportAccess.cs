using System.IO.Enumeration;
using System.Net;

namespace Reloc.Nbd.Server;

/// <summary>
/// Who is on the other end of an NBD connection, as far as the server knows it during the option phase.
/// </summary>
/// <param name="Display">The remote end point as text ("unix" for a Unix socket), for logs.</param>
/// <param name="Address">The remote IP address; null for a Unix socket.</param>
/// <param name="IsTls">STARTTLS completed.</param>
/// <param name="CertificateSubject">Subject of the client certificate, only when it was verified (verify-peer).</param>
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
