using System.Net;
using System.Security.Authentication;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Encodings.Web;
using Akka.Actor;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Certificate;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Reloc.Actors.History;
using Reloc.Management;
using PubSub = Akka.Cluster.Tools.PublishSubscribe;

namespace Reloc.Actors.Management;

/// <summary>
/// The management port's security, all ASP.NET Core's own pieces: Kestrel's HTTPS (<see cref="UseTls"/>), the
/// authentication schemes (bearer tokens from <see cref="TokenStore"/>, client certificates mapped by CN, the
/// dashboard's cookie got at <c>/login</c>) behind one policy scheme that picks by what the request carries, the
/// two authorization policies (<see cref="ViewerPolicy"/>, <see cref="OperatorPolicy"/>), and the audit of every
/// change (<see cref="UseAudit"/>).
/// </summary>
public static class ManagementAuth
{
    public const string ViewerPolicy = "viewer", OperatorPolicy = "operator";
    public const string TokenScheme = "Bearer", SelectScheme = "Reloc";
    public const string CookieName = "reloc-session";
    public const string Login = "/login", Logout = "/logout";
    /// <summary>Claim naming how the principal was recognised (an <see cref="AuditAuth"/>).</summary>
    public const string AuthClaim = "reloc:auth";

    public static string RoleName(ManagementRole role) => role == ManagementRole.Operator ? "operator" : "viewer";

    public static ClaimsPrincipal Principal(string name, ManagementRole role, AuditAuth auth, string scheme)
    {
        var claims = new List<Claim> { new(ClaimTypes.Name, name), new(AuthClaim, auth.ToString()), new(ClaimTypes.Role, RoleName(ManagementRole.Viewer)) };
        if (role == ManagementRole.Operator) claims.Add(new Claim(ClaimTypes.Role, RoleName(ManagementRole.Operator)));
        return new ClaimsPrincipal(new ClaimsIdentity(claims, scheme));
    }

    // ---- TLS ----

    public static void UseTls(ListenOptions listen, ManagementSecuritySettings settings, ILogger logger)
    {
        var certificate = new ReloadingCertificate(settings.ServerCert, settings.ServerKey, logger);
        var ca = X509CertificateLoader.LoadCertificateFromFile(settings.CaCert);
        listen.UseHttps(new HttpsConnectionAdapterOptions
        {
            ServerCertificateSelector = (_, _) => certificate.Current,
            SslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            ClientCertificateMode = settings.ClientCertificates ? ClientCertificateMode.AllowCertificate : ClientCertificateMode.NoCertificate,
            // Only our CA's certificates pass the handshake; which CN may do what is the certificate scheme's business.
            ClientCertificateValidation = (cert, _, _) => ChainsTo(cert, ca),
        });
    }

    public static bool ChainsTo(X509Certificate2 certificate, X509Certificate2 ca)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(certificate);
    }

    /// <summary>The server certificate, read again when its files change (checked at most once a second), so a renewed
    /// certificate is served without a restart; a pair that does not load keeps the previous one (logged).</summary>
    private sealed class ReloadingCertificate(string certPath, string keyPath, ILogger logger)
    {
        private readonly Lock _lock = new();
        private X509Certificate2? _current;
        private (DateTime, DateTime) _version;
        private DateTime _checked;

        public X509Certificate2 Current
        {
            get
            {
                lock (_lock)
                {
                    var now = DateTime.UtcNow;
                    if (_current is not null && now - _checked < TimeSpan.FromSeconds(1)) return _current;
                    _checked = now;
                    var version = (File.GetLastWriteTimeUtc(certPath), File.GetLastWriteTimeUtc(keyPath));
                    if (_current is not null && version == _version) return _current;
                    try
                    {
                        _current = X509Certificate2.CreateFromPemFile(certPath, keyPath);
                        _version = version;
                    }
                    catch (Exception ex) when (_current is not null && ex is CryptographicException or IOException)
                    {
                        logger.LogError("management TLS: {Cert} no longer loads ({Reason}); still serving the previous certificate", certPath, ex.Message);
                        _version = version;
                    }
                    return _current;
                }
            }
        }
    }

    // ---- authentication and authorization ----

    public static void AddRelocAuth(this IServiceCollection services, ManagementSecuritySettings settings)
    {
        services.AddSingleton(settings);
        services.AddSingleton(sp => new TokenStore(settings.TokensFile,
            m => sp.GetRequiredService<ILoggerFactory>().CreateLogger("Reloc.Management").LogError("{Message}", m)).Load());
        // Cookies are signed with keys that live as long as the process: a restart means logging in again, and no key files to keep.
        services.AddDataProtection().UseEphemeralDataProtectionProvider();
        var auth = services.AddAuthentication(SelectScheme);
        auth.AddPolicyScheme(SelectScheme, "token, certificate or cookie", o => o.ForwardDefaultSelector = context =>
            context.Request.Headers.Authorization.Count > 0 ? TokenScheme
            : context.Request.Cookies.ContainsKey(CookieName) ? CookieAuthenticationDefaults.AuthenticationScheme
            : context.Connection.ClientCertificate is not null && settings.ClientCertificates ? CertificateAuthenticationDefaults.AuthenticationScheme
            : TokenScheme);
        auth.AddScheme<AuthenticationSchemeOptions, TokenHandler>(TokenScheme, null);
        auth.AddCookie(o =>
        {
            o.Cookie.Name = CookieName;
            o.Cookie.HttpOnly = true;
            o.Cookie.SameSite = SameSiteMode.Strict;
            o.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
            o.ExpireTimeSpan = settings.CookieLifetime;
            o.SlidingExpiration = false;
            // An API answers with a status, not a redirect to a login page.
            o.Events.OnRedirectToLogin = c => { c.Response.StatusCode = StatusCodes.Status401Unauthorized; return Task.CompletedTask; };
            o.Events.OnRedirectToAccessDenied = c => { c.Response.StatusCode = StatusCodes.Status403Forbidden; return Task.CompletedTask; };
            // A token removed from the file (or its role changed) ends the sessions it opened.
            o.Events.OnValidatePrincipal = c =>
            {
                var store = c.HttpContext.RequestServices.GetRequiredService<TokenStore>();
                var name = c.Principal?.Identity?.Name;
                var role = c.Principal?.IsInRole(RoleName(ManagementRole.Operator)) == true ? ManagementRole.Operator : ManagementRole.Viewer;
                if (name is null || !store.Has(name, role)) c.RejectPrincipal();
                return Task.CompletedTask;
            };
        });
        if (settings.ClientCertificates)
        {
            var ca = X509CertificateLoader.LoadCertificateFromFile(settings.CaCert);
            auth.AddCertificate(o =>
            {
                o.AllowedCertificateTypes = CertificateTypes.Chained;
                o.ChainTrustValidationMode = X509ChainTrustMode.CustomRootTrust;
                o.CustomTrustStore = [ca];
                o.RevocationMode = X509RevocationMode.NoCheck;
                o.Events = new CertificateAuthenticationEvents
                {
                    OnCertificateValidated = c =>
                    {
                        var cn = c.ClientCertificate.GetNameInfo(X509NameType.SimpleName, forIssuer: false);
                        if (settings.CertificateRoles.TryGetValue(cn, out var role))
                        {
                            c.Principal = Principal("CN=" + cn, role, AuditAuth.Certificate, c.Scheme.Name);
                            c.Success();
                        }
                        else c.Fail($"certificate CN '{cn}' has no role (reloc.management.auth.certificates)");
                        return Task.CompletedTask;
                    },
                };
            });
        }
        services.AddAuthorization(o =>
        {
            if (settings.Enabled)
            {
                o.AddPolicy(ViewerPolicy, p => p.RequireRole(RoleName(ManagementRole.Viewer), RoleName(ManagementRole.Operator)));
                o.AddPolicy(OperatorPolicy, p => p.RequireRole(RoleName(ManagementRole.Operator)));
            }
            else
            {
                // auth off: the same policies on the same routes, letting everyone through.
                o.AddPolicy(ViewerPolicy, p => p.RequireAssertion(_ => true));
                o.AddPolicy(OperatorPolicy, p => p.RequireAssertion(_ => true));
            }
        });
    }

    /// <summary>Bearer tokens from the tokens file: <c>Authorization: Bearer TOKEN</c>; a challenge is 401 with
    /// <c>WWW-Authenticate: Bearer</c>.</summary>
    private sealed class TokenHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder, TokenStore store)
        : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
    {
        protected override Task<AuthenticateResult> HandleAuthenticateAsync()
        {
            var header = Request.Headers.Authorization.ToString();
            if (header.Length == 0) return Task.FromResult(AuthenticateResult.NoResult());
            if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
                return Task.FromResult(AuthenticateResult.Fail("expected Authorization: Bearer TOKEN"));
            var entry = store.Match(header["Bearer ".Length..].Trim());
            return Task.FromResult(entry is null
                ? AuthenticateResult.Fail("unknown token")
                : AuthenticateResult.Success(new AuthenticationTicket(Principal(entry.Name, entry.Role, AuditAuth.Token, Scheme.Name), Scheme.Name)));
        }

        protected override Task HandleChallengeAsync(AuthenticationProperties properties)
        {
            Response.StatusCode = StatusCodes.Status401Unauthorized;
            Response.Headers.WWWAuthenticate = "Bearer realm=\"reloc\"";
            return Task.CompletedTask;
        }
    }

    /// <summary>The dashboard's login: POST /login with a form field <c>token</c> → the HttpOnly, SameSite=Strict cookie
    /// (EventSource cannot send an Authorization header), then back to the dashboard; a wrong token → 401.
    /// POST /logout ends it.</summary>
    public static void MapLogin(IEndpointRouteBuilder app)
    {
        app.MapPost(Login, async (HttpContext context, TokenStore store) =>
        {
            var form = await context.Request.ReadFormAsync(context.RequestAborted);
            var entry = form.TryGetValue("token", out var token) ? store.Match(token.ToString().Trim()) : null;
            if (entry is null)
                return Results.Problem("unknown token", statusCode: StatusCodes.Status401Unauthorized, title: "not authenticated");
            await context.SignInAsync(CookieAuthenticationDefaults.AuthenticationScheme,
                Principal(entry.Name, entry.Role, AuditAuth.Cookie, CookieAuthenticationDefaults.AuthenticationScheme));
            return Results.Redirect("/");
        }).AllowAnonymous().DisableAntiforgery().ExcludeFromDescription();
        app.MapPost(Logout, async (HttpContext context) =>
        {
            await context.SignOutAsync(CookieAuthenticationDefaults.AuthenticationScheme);
            return Results.Redirect("/");
        }).AllowAnonymous().ExcludeFromDescription();
    }

    // ---- audit ----

    /// <summary>
    /// Records every change asked of the API (every non-GET route), allowed or not: after authentication (so who is
    /// known) and around authorization and the route (so a 401/403 is recorded as well as the cluster's answer), it
    /// publishes one <see cref="AuditRecord"/> per request for every node's history.
    /// </summary>
    public static IApplicationBuilder UseAudit(this IApplicationBuilder app, string site) => app.Use(async (context, next) =>
    {
        var endpoint = context.GetEndpoint();
        var route = endpoint?.Metadata.GetMetadata<IEndpointNameMetadata>()?.EndpointName;
        if (HttpMethods.IsGet(context.Request.Method) || HttpMethods.IsHead(context.Request.Method) || HttpMethods.IsOptions(context.Request.Method)
            || !context.Request.Path.StartsWithSegments(ManagementApi.Prefix) || route is null)
        {
            await next(context);
            return;
        }
        string? body = null;
        if (context.Request.ContentLength is null or <= MaxAuditedBody)
        {
            context.Request.EnableBuffering();
            using var reader = new StreamReader(context.Request.Body, leaveOpen: true);
            var buffer = new char[MaxAuditedBody];
            int read = await reader.ReadBlockAsync(buffer, context.RequestAborted);
            body = new string(buffer, 0, read);
            context.Request.Body.Position = 0;
        }
        int status = StatusCodes.Status500InternalServerError;
        try
        {
            await next(context);
            status = context.Response.StatusCode;
        }
        finally
        {
            var values = context.Request.RouteValues.ToDictionary(kv => kv.Key, kv => kv.Value?.ToString());
            var (action, target, detail) = AuditMapping.Describe(route, values, body);
            var user = context.User;
            var name = user.Identity?.IsAuthenticated == true ? user.Identity.Name ?? "?" : "anonymous";
            var auth = Enum.TryParse<AuditAuth>(user.FindFirst(AuthClaim)?.Value, out var a) ? a : AuditAuth.None;
            var source = context.Connection.RemoteIpAddress is { } ip ? new IPEndPoint(ip, context.Connection.RemotePort).ToString() : "?";
            var record = new AuditRecord(Guid.CreateVersion7(), DateTime.UtcNow, site, name, auth, source, action, target, detail,
                AuditMapping.OutcomeOf(status), status);
            var system = context.RequestServices.GetRequiredService<ActorSystem>();
            PubSub.DistributedPubSub.Get(system).Mediator.Tell(new PubSub.Publish(AuditTopic.Name, record));
        }
    });

    /// <summary>Bodies of changes are small JSON documents; a larger one is recorded without its detail.</summary>
    private const int MaxAuditedBody = 16 * 1024;
}
