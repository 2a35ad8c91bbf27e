using System.Net;
using Akka.Actor;
using Akka.Cluster;
using Akka.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Microsoft.OpenApi;
using Reloc.Actors.Coordinator;
using Reloc.Actors.Site;
using Reloc.Management;

namespace Reloc.Actors.Management;

/// <summary>
/// The node's management port (Kestrel, <c>reloc.management.listen</c>): the API (<see cref="ManagementRoutes"/>),
/// its OpenAPI document, health (<c>/healthz</c>: the actor system runs; <c>/readyz</c>: this node is an Up
/// member and its site actor answered, which it does only once it recovered its journal and serves its disks).
/// </summary>
public static class ManagementWeb
{
    public const string LiveTag = "live", ReadyTag = "ready";

    /// <summary>Adds the management port to a generic host (Akka.Hosting's services must be registered first, so the actor system starts before Kestrel).</summary>
    /// <param name="security">TLS and authentication (<see cref="ManagementAuth"/>); <see cref="ManagementSecuritySettings.Open"/>: plain HTTP, no authentication.</param>
    /// <param name="site">This node's site, named in the audit records of the changes its API was asked for.</param>
    public static void Configure(IWebHostBuilder web, IPEndPoint listen, string version, ManagementSecuritySettings security, string site)
    {
        web.UseKestrel((context, k) => k.Listen(listen, l =>
        {
            if (security.Tls)
                ManagementAuth.UseTls(l, security, k.ApplicationServices.GetRequiredService<ILoggerFactory>().CreateLogger("Reloc.Management"));
        }));
        web.ConfigureServices(services =>
        {
            services.AddRouting();
            services.AddRelocAuth(security);
            // A body that does not bind (malformed JSON, a wrong type) is a 400 problem that says why.
            services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
            services.AddProblemDetails(o => o.CustomizeProblemDetails = c =>
            {
                if (c.Exception is not BadHttpRequestException bad) return;
                c.ProblemDetails.Status = c.HttpContext.Response.StatusCode = bad.StatusCode;
                c.ProblemDetails.Title = "bad request";
                c.ProblemDetails.Type = "https://tools.ietf.org/html/rfc9110#section-15.5.1";
                c.ProblemDetails.Detail = CliSafe(bad.InnerException?.Message ?? bad.Message);
            });
            services.ConfigureHttpJsonOptions(o => o.SerializerOptions.TypeInfoResolverChain.Insert(0, ManagementJson.Default));
            services.AddOpenApi("v1", o => o.AddDocumentTransformer((doc, _, _) =>
            {
                doc.Info.Title = "Reloc management API";
                doc.Info.Version = version;
                doc.Info.Description = "Disks, relocations and the cluster of a Reloc site node; any node answers for the whole cluster.";
                if (security.Enabled) DeclareSecurity(doc, security);
                return Task.CompletedTask;
            }));
            services.AddHealthChecks();
            services.AddSingleton(sp => new ManagementService(sp.GetRequiredService<ActorSystem>(),
                sp.GetRequiredService<ActorRegistry>().Get<MigrationCoordinator>(), version));
        });
        web.Configure(app =>
        {
            app.UseExceptionHandler();
            app.UseStatusCodePages();
            app.UseRelocDashboard(); // its files hold no data: open, so a browser can show the login form
            app.UseRouting();
            app.UseAuthentication();
            app.UseAudit(site); // knows who (after authentication), sees refusals (before authorization)
            app.UseAuthorization();
            app.UseEndpoints(endpoints =>
            {
                ManagementRoutes.Map(endpoints);
                ManagementAuth.MapLogin(endpoints);
                endpoints.MapOpenApi(ManagementApi.OpenApi.Replace("v1", "{documentName}")).AllowAnonymous();
                // OpenTelemetry's exporter (AddRelocTelemetry); Prometheus sends a bearer token (authorization.credentials_file).
                endpoints.MapPrometheusScrapingEndpoint(ManagementApi.Metrics).RequireAuthorization(ManagementAuth.ViewerPolicy);
                // Status only: open to load balancers and systemd checks.
                endpoints.MapHealthChecks(ManagementApi.Health, Checks(LiveTag)).AllowAnonymous();
                endpoints.MapHealthChecks(ManagementApi.Ready, Checks(ReadyTag)).AllowAnonymous();
            });
        });
    }

    /// <summary>The OpenAPI document names how to authenticate: a bearer token, or a client certificate (mutual TLS).</summary>
    private static void DeclareSecurity(OpenApiDocument doc, ManagementSecuritySettings security)
    {
        doc.Components ??= new OpenApiComponents();
        doc.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
        doc.Components.SecuritySchemes["bearer"] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.Http, Scheme = "bearer",
            Description = "A token of reloc.management.auth.tokens-file; viewer: every GET, operator: every change.",
        };
        doc.Security ??= [];
        doc.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference("bearer", doc)] = [] });
        if (!security.ClientCertificates) return;
        doc.Components.SecuritySchemes["mutualTLS"] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.MutualTLS,
            Description = "A client certificate of the node's CA whose CN reloc.management.auth.certificates maps to a role.",
        };
        doc.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference("mutualTLS", doc)] = [] });
    }

    /// <summary>One line (the console prints problems on one line).</summary>
    private static string CliSafe(string text) => text.ReplaceLineEndings(" ");

    private static HealthCheckOptions Checks(string tag) => new()
    {
        Predicate = r => r.Tags.Contains(tag),
        ResponseWriter = (context, report) =>
        {
            context.Response.ContentType = "application/json";
            var health = new Health(report.Status.ToString(), report.Entries.ToDictionary(e => e.Key,
                e => e.Value.Status + (e.Value.Description is { Length: > 0 } d ? ": " + d : "")));
            return context.Response.WriteAsJsonAsync(health, ManagementJson.Default.Health);
        },
    };

    /// <summary>The health checks, registered with Akka.Hosting (which runs them with the actor system at hand).</summary>
    public static AkkaConfigurationBuilder WithRelocHealthChecks(this AkkaConfigurationBuilder builder) => builder
        .WithActorSystemLivenessCheck(tags: [LiveTag])
        .WithHealthCheck("member-up", (system, _, _) =>
        {
            var self = Akka.Cluster.Cluster.Get(system).SelfMember;
            return Task.FromResult(self.Status == MemberStatus.Up
                ? HealthCheckResult.Healthy($"{self.Address} Up")
                : HealthCheckResult.Unhealthy($"{self.Address} is {self.Status}"));
        }, tags: [ReadyTag])
        .WithHealthCheck("site-serving", async (system, registry, ct) =>
        {
            // The site actor answers only after recovering its registry from the journal (persistence reachable)
            // and exporting its disks; it is under a backoff supervisor, so a journal outage shows here.
            try
            {
                var list = await registry.Get<SiteActor>().Ask<SiteProtocol.DiskList>(new SiteProtocol.ListDisks(), TimeSpan.FromSeconds(5), ct);
                return HealthCheckResult.Healthy($"{list.Disks.Count} disk(s) at {list.Site}");
            }
            catch (Exception ex) when (ex is AskTimeoutException or TaskCanceledException)
            {
                return HealthCheckResult.Unhealthy("the site actor does not answer (recovering, or its journal is unreachable)");
            }
        }, tags: [ReadyTag]);

    /// <summary>Where Kestrel listens (the port chosen when the configured one was 0).</summary>
    public static IPEndPoint? BoundEndPoint(IServiceProvider services)
    {
        var addresses = services.GetService<IServer>()?.Features.Get<IServerAddressesFeature>()?.Addresses;
        var first = addresses?.FirstOrDefault();
        if (first is null) return null;
        var uri = new Uri(first);
        return new IPEndPoint(IPAddress.Parse(uri.Host.Trim('[', ']')), uri.Port);
    }
}
