using System.Text.Json;
using Microsoft.AspNetCore.Http.Json;
using Reloc.Actors.Management;
using Reloc.Management;

namespace Reloc.Fuzz.Targets;

/// <summary>
/// The management API's request bodies. The first byte picks the request (create disk, relocate, rate),
/// the rest is the JSON body, bound twice: with <see cref="ManagementJson"/> directly and with the options
/// ASP.NET Core binds with on the node (web defaults with ManagementJson first in the resolver chain, as
/// ManagementWeb configures them), then checked with <see cref="RequestChecks"/> as the server does before
/// it acts. Each must give a value or a clean refusal: JsonException (a 400 from the binder) or a 400
/// ManagementException.
/// </summary>
public static class ManagementTarget
{
    private static readonly JsonSerializerOptions Bound = BoundOptions();

    public static void Run(byte[] input)
    {
        if (input.Length == 0) return;
        var body = input.AsSpan(1);
        switch (input[0] % 3)
        {
            case 0:
                Bind(body, ManagementJson.Default.CreateDiskRequest, r => RequestChecks.Check(r));
                Bind(body, Bound, r => RequestChecks.Check(r), default(CreateDiskRequest));
                break;
            case 1:
                Bind(body, ManagementJson.Default.RelocateRequest, Checked);
                Bind(body, Bound, Checked, default(RelocateRequest));
                break;
            default:
                Bind(body, ManagementJson.Default.RateRequest, r => RequestChecks.CheckRate(r.Rate));
                Bind(body, Bound, r => RequestChecks.CheckRate(r.Rate), default(RateRequest));
                break;
        }
    }

    /// <summary>What the coordinator is given must be a request it can act on.</summary>
    private static void Checked(RelocateRequest r)
    {
        RequestChecks.Check(r);
        if (!Enum.IsDefined(r.Mode)) throw new FuzzFinding($"relocation mode {(int)r.Mode} passed the checks");
    }

    private static void Bind<T>(ReadOnlySpan<byte> body, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type, Action<T> check) where T : class
    {
        T? value;
        try { value = JsonSerializer.Deserialize(body, type); }
        catch (JsonException) { return; }
        Check(value, check);
    }

    private static void Bind<T>(ReadOnlySpan<byte> body, JsonSerializerOptions options, Action<T> check, T? _) where T : class
    {
        T? value;
        try { value = JsonSerializer.Deserialize<T>(body, options); }
        catch (JsonException) { return; }
        Check(value, check);
    }

    private static void Check<T>(T? value, Action<T> check) where T : class
    {
        if (value is null) return; // a body of `null`: the binder answers 400 (a required body is missing)
        try { check(value); }
        catch (ManagementException ex) when (ex.Status == System.Net.HttpStatusCode.BadRequest) { }
    }

    private static JsonSerializerOptions BoundOptions()
    {
        var options = new JsonOptions().SerializerOptions;
        options.TypeInfoResolverChain.Insert(0, ManagementJson.Default);
        options.MakeReadOnly();
        return options;
    }
}
