using System.Text.Json;
using System.Text.Json.Nodes;

namespace Reloc.Management;

/// <summary>
/// The management protocol between the <c>reloc</c> console and a site node (default 127.0.0.1:9110):
/// one JSON object per line each way over TCP. A request names a command and its arguments; the reply
/// says ok with a result, or not ok with a one-line reason. Requests on one connection are answered in
/// order. Sizes and rates are plain numbers of bytes (per second): parsing "10GiB" is the console's job.
/// </summary>
/// <remarks>
/// Commands: cluster.show, cluster.leave {address}, cluster.down {address}, disk.create {name, site, size,
/// from?}, disk.list, disk.show {name}, disk.delete {name}, relocate {disk, to, mode (postcopy|hybrid),
/// rate, prefetch}, relocation.list, relocation.status {disk}, relocation.rate {disk, rate},
/// relocation.handover {disk}, relocation.cancel {disk}.
/// </remarks>
public static class ManagementWire
{
    public const int DefaultPort = 9110;
    /// <summary>Longest request line accepted; longer ones close the connection.</summary>
    public const int MaxLine = 64 * 1024;

    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull,
    };

    public sealed record Request(string Command, JsonObject? Args = null);

    public sealed record Reply(bool Ok, JsonNode? Result = null, string? Error = null);

    public static string Encode<T>(T value) => JsonSerializer.Serialize(value, Json);
}
