using System.Net;
using Akka.Configuration;
using Akka.Configuration.Hocon;
using Reloc.Actors.Site.Core;
using Reloc.Nbd.Server;

namespace Reloc.Actors.Security;

/// <summary>
/// Who may open which of a site's exports. A disk's peer export (what other sites fetch through) is for site
/// certificates only once the site has TLS; guests' exports follow the site's ACL (<c>reloc.site.nbd.acl</c>).
/// Pure: the NBD server asks it in the option phase, and refuses with NBD_REP_ERR_POLICY and a log line.
/// </summary>
public sealed class SiteExportAccess(SiteTlsSettings tls, IExportAccessPolicy guests) : IExportAccessPolicy
{
    public AccessDecision Decide(NbdPeer peer, string export)
    {
        if (!SiteCore.IsPeerExport(export)) return guests.Decide(peer, export);
        if (!tls.Enabled) return AccessDecision.Allow("peer export; reloc.tls.mode = off, so no site identity is checked");
        if (peer.CertificateCommonName is { } cn && tls.IsSiteName(cn)) return AccessDecision.Allow($"peer export; site certificate '{cn}'");
        return AccessDecision.Deny(peer.CertificateCommonName is null
            ? "the peer export is for sites: present a site certificate"
            : $"the peer export is for sites: '{peer.CertificateCommonName}' is not a site's name (reloc.tls.site-names)");
    }

    /// <summary>
    /// The guests' ACL from <c>reloc.site.nbd.acl</c>: <c>default = allow|deny</c> for exports no rule covers, and
    /// <c>rules = [{ exports = GLOB, certificates = [CN or subject...], networks = [CIDR...] }]</c>.
    /// </summary>
    public static ExportAcl GuestAcl(Config config)
    {
        var c = config.GetConfig("reloc.site.nbd.acl");
        if (c is null || c.IsEmpty) return new ExportAcl([], DefaultAllow: true);
        var fallback = c.GetString("default", "allow");
        if (fallback is not ("allow" or "deny"))
            throw new ArgumentException($"reloc.site.nbd.acl.default = '{fallback}': expected allow or deny");
        var rules = new List<ExportAclRule>();
        var values = c.GetValue("rules")?.GetArray() ?? [];
        for (int i = 0; i < values.Count; i++)
        {
            var rule = new Config(new HoconRoot(values[i]));
            var key = $"reloc.site.nbd.acl.rules[{i}]";
            var exports = rule.GetString("exports", "");
            if (string.IsNullOrEmpty(exports)) throw new ArgumentException($"{key}.exports: a disk name or glob is needed");
            var networks = rule.GetStringList("networks", []).Select(n => IPNetwork.TryParse(n, out var net)
                ? net : throw new ArgumentException($"{key}.networks: '{n}' is not a CIDR network (e.g. 10.1.0.0/16)")).ToList();
            rules.Add(new ExportAclRule(exports, rule.GetStringList("certificates", []).ToList(), networks));
        }
        return new ExportAcl(rules, fallback == "allow");
    }
}
