using System.Diagnostics;

namespace Reloc.Testing;

/// <summary>
/// A throwaway X.509 PKI made with GnuTLS's <c>certtool</c> (Debian's gnutls-bin), the tool the NBD clients'
/// own docs use. <see cref="Folder"/> lays certificates out as nbdkit, qemu and libnbd expect them:
/// <c>ca-cert.pem</c>, <c>server-cert.pem</c>, <c>server-key.pem</c>, <c>client-cert.pem</c>, <c>client-key.pem</c>.
/// Keys are ECDSA P-256 (fast to make; every client here speaks it). Each instance is its own CA, so two
/// instances give the "certificate from another CA" of the negative tests. Keys are made by openssl (see GenerateKey).
/// </summary>
public sealed class TestPki : IDisposable
{
    private readonly string _caKey;
    private int _serial = 1;

    public string Root { get; }
    public string CaCert { get; }
    public string CaName { get; }

    private TestPki(string root, string caName)
    {
        Root = root;
        CaName = caName;
        _caKey = Path.Combine(root, "ca-key.pem");
        CaCert = Path.Combine(root, "ca-cert.pem");
        GenerateKey(_caKey);
        var template = WriteTemplate("ca", $"cn = \"{caName}\"\nca\ncert_signing_key\nexpiration_days = 30\n");
        Run("--generate-self-signed", "--load-privkey", _caKey, "--template", template, "--outfile", CaCert);
    }

    /// <summary>A new CA in a new temporary folder.</summary>
    public static TestPki Create(string caName = "Reloc test CA") =>
        new(Directory.CreateTempSubdirectory("reloc-pki-").FullName, caName);

    /// <summary>
    /// A certificate and its key signed by this CA. The server side names localhost and 127.0.0.1 (clients
    /// check the host name); a site's certificate is both server and client (it fetches from other sites).
    /// </summary>
    public (string Cert, string Key) Issue(string commonName, bool server = true, bool client = true, string? outDir = null, string prefix = "")
    {
        outDir ??= Root;
        Directory.CreateDirectory(outDir);
        var stem = prefix.Length > 0 ? prefix : $"{Sanitize(commonName)}-{_serial}";
        var key = Path.Combine(outDir, $"{stem}-key.pem");
        var cert = Path.Combine(outDir, $"{stem}-cert.pem");
        GenerateKey(key);
        var t = $"cn = \"{commonName}\"\nserial = {_serial++}\nexpiration_days = 30\nsigning_key\nencryption_key\n";
        if (server) t += "dns_name = \"localhost\"\nip_address = \"127.0.0.1\"\ntls_www_server\n";
        if (client) t += "tls_www_client\n";
        var template = WriteTemplate(stem, t);
        Run("--generate-certificate", "--load-privkey", key, "--load-ca-certificate", CaCert, "--load-ca-privkey", _caKey,
            "--template", template, "--outfile", cert);
        return (cert, key);
    }

    /// <summary>
    /// A certificates folder in the nbdkit/QEMU layout: this CA, a server pair named <paramref name="serverName"/>
    /// and, unless <paramref name="clientName"/> is null, a client pair (both sides of a site use one folder).
    /// </summary>
    public string Folder(string name, string serverName = "localhost", string? clientName = "client")
    {
        var dir = Path.Combine(Root, name);
        Directory.CreateDirectory(dir);
        File.Copy(CaCert, Path.Combine(dir, "ca-cert.pem"), overwrite: true);
        Issue(serverName, server: true, client: true, outDir: dir, prefix: "server");
        if (clientName is not null) Issue(clientName, server: false, client: true, outDir: dir, prefix: "client");
        return dir;
    }

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
    }

    private static string Sanitize(string s) => new(s.Select(c => char.IsLetterOrDigit(c) ? c : '-').ToArray());

    private string WriteTemplate(string stem, string text)
    {
        var path = Path.Combine(Root, $"{stem}-{Guid.NewGuid():N}.tmpl");
        File.WriteAllText(path, text);
        return path;
    }

    // Keys come from openssl as PKCS#8: certtool writes about half of its P-256 keys with a 33-byte scalar
    // (a leading zero), which .NET's PEM import rejects as corrupt ASN.1.
    private static void GenerateKey(string path) =>
        Exec("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path);

    private static void Run(params string[] args) => Exec("certtool", args);

    private static void Exec(string tool, params string[] args)
    {
        var psi = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {tool} (apt-get install gnutls-bin openssl)");
        var err = p.StandardError.ReadToEndAsync();
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{tool} {string.Join(' ', args)} failed: {err.Result}");
    }
}
