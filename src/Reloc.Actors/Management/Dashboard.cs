using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.FileProviders;

namespace Reloc.Actors.Management;

/// <summary>
/// The read-only dashboard at <c>/</c>: static HTML, CSS and JavaScript modules embedded in this assembly
/// (Management/Dashboard), which call the management API from the browser. Nothing to build or fetch elsewhere.
/// </summary>
public static class Dashboard
{
    /// <summary>Where the files are among the assembly's resources (the project's EmbeddedResource items).</summary>
    public const string ResourceNamespace = "Reloc.Actors.Management.Dashboard";

    public static IFileProvider Files { get; } = new EmbeddedFileProvider(typeof(Dashboard).Assembly, ResourceNamespace);

    /// <summary>Serves index.html at <c>/</c> and the files next to it; before routing, so the API's routes never see them.</summary>
    public static IApplicationBuilder UseRelocDashboard(this IApplicationBuilder app) => app
        .UseDefaultFiles(new DefaultFilesOptions { FileProvider = Files })
        .UseStaticFiles(new StaticFileOptions
        {
            FileProvider = Files,
            OnPrepareResponse = c =>
            {
                // Revalidate: a node upgraded in place must not leave a browser on the old page.
                c.Context.Response.Headers.CacheControl = "no-cache";
                // Only this node's own files and API: no inline script, nothing from elsewhere.
                c.Context.Response.Headers.ContentSecurityPolicy = "default-src 'self'";
            },
        });
}
