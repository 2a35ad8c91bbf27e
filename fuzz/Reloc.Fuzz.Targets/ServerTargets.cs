using System.Buffers;
using System.Buffers.Binary;
using Reloc.Nbd.Protocol;
using Reloc.Nbd.Server;

namespace Reloc.Fuzz.Targets;

/// <summary>The NBD server: the input is what a client sends, fed to a real <see cref="NbdConnection"/>
/// serving a small in-memory export until the input ends.</summary>
public static class ServerTargets
{
    public const string ExportName = "disk";
    private const int DiskSize = 128 * 1024;

    // Small limits keep each run fast and let the fuzzer reach the too-big paths.
    private static readonly NbdServerSettings Settings = new NbdServerSettings
    {
        MaxInFlightPerConnection = 8,
        MaxRequestBytes = 64 * 1024,
        MaxOptionBytes = 4096,
        MaxExtentsPerReply = 16,
    }.Validate();

    /// <summary>What a client sends to reach transmission with structured replies and base:allocation on
    /// <see cref="ExportName"/>: the prefix of every transmission-phase input.</summary>
    public static byte[] TransmissionPrelude { get; } = BuildPrelude();

    public static void Handshake(byte[] input)
    {
        ParseOptionBodies(input);
        Serve(input);
    }

    public static void Transmission(byte[] input)
    {
        var seq = new ReadOnlySequence<byte>(input);
        Span<byte> again = stackalloc byte[NbdLimits.RequestHeaderSize];
        // RequestCodec alone, at every header boundary the input could have.
        for (int at = 0; at + NbdLimits.RequestHeaderSize <= input.Length; at += NbdLimits.RequestHeaderSize)
        {
            if (RequestCodec.TryParse(seq.Slice(at), out var request) == ParseStatus.Ok)
            {
                RequestCodec.Write(again, request);
                if (!again.SequenceEqual(input.AsSpan(at, NbdLimits.RequestHeaderSize)))
                    throw new FuzzFinding($"request header at {at} does not round-trip: {request}");
            }
        }
        Serve([.. TransmissionPrelude, .. input]);
    }

    /// <summary>The option body parsers on the raw input: a body they accept must encode back to itself.</summary>
    private static void ParseOptionBodies(byte[] input)
    {
        var seq = new ReadOnlySequence<byte>(input);
        OptionCodec.TryParseHeader(seq, out _);
        if (OptionCodec.ParseExportInfo(seq) is { } info && !OptionCodec.EncodeExportInfo(info).AsSpan().SequenceEqual(input))
            throw new FuzzFinding($"NBD_OPT_INFO body does not round-trip: {info.Name} with {info.Requests.Count} requests");
        if (OptionCodec.ParseMetaContext(seq) is { } meta && !OptionCodec.EncodeMetaContext(meta).AsSpan().SequenceEqual(input))
            throw new FuzzFinding($"meta context body does not round-trip: {meta.ExportName} with {meta.Queries.Count} queries");
    }

    private static void Serve(byte[] clientBytes)
    {
        var device = new MemoryDevice(DiskSize);
        var catalog = new ExportCatalog([new NbdExport(ExportName, device, "fuzzed export"), new NbdExport("other", new MemoryDevice(4096))]);
        var log = new ErrorLog();
        var connection = new NbdConnection(new ScriptedStream(clientBytes), new NbdPeer("fuzz", null), catalog, Settings, log);
        FuzzTargets.RunWithin(RunAsync(connection), "the server connection");
        if (log.FirstError is { } error) throw new FuzzFinding($"the server logged an error: {error}", log.FirstException);
        if (device.Violation is { } violation) throw new FuzzFinding(violation);
        if (catalog.All.Any(e => e.Clients.Count != 0)) throw new FuzzFinding("an export still counts a client after its connection ended");
    }

    private static async Task RunAsync(NbdConnection connection)
    {
        try { await connection.RunAsync(); }
        finally { await connection.DisposeAsync(); }
    }

    private static byte[] BuildPrelude()
    {
        var bytes = new List<byte>();
        Span<byte> u32 = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(u32, (uint)(ClientFlags.FixedNewstyle | ClientFlags.NoZeroes));
        bytes.AddRange(u32);
        AddOption(bytes, NbdOption.StructuredReply, []);
        AddOption(bytes, NbdOption.SetMetaContext, OptionCodec.EncodeMetaContext(new MetaContextRequest(ExportName, [NbdLimits.BaseAllocation])));
        AddOption(bytes, NbdOption.Go, OptionCodec.EncodeExportInfo(new ExportInfoRequest(ExportName, [])));
        return [.. bytes];
    }

    internal static void AddOption(List<byte> bytes, NbdOption option, byte[] body)
    {
        var header = new byte[NbdLimits.OptionHeaderSize];
        OptionCodec.WriteOptionHeader(header, option, body.Length);
        bytes.AddRange(header);
        bytes.AddRange(body);
    }
}
