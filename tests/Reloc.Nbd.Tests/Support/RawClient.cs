using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using Reloc.Nbd.Protocol;

namespace Reloc.Nbd.Tests.Support;

/// <summary>A byte-level NBD client for tests that must send what no well-behaved client would.</summary>
public sealed class RawClient : IAsyncDisposable
{
    private readonly TcpClient _tcp;
    private Stream _s;

    private RawClient(TcpClient tcp)
    {
        _tcp = tcp;
        var s = tcp.GetStream();
        s.ReadTimeout = 10_000;
        _s = s;
    }

    public static async Task<RawClient> ConnectAsync(int port)
    {
        var tcp = new TcpClient { NoDelay = true };
        await tcp.ConnectAsync("127.0.0.1", port);
        return new RawClient(tcp);
    }

    /// <summary>Reads the greeting and answers with fixed-newstyle + no-zeroes.</summary>
    public async Task<ushort> GreetAsync()
    {
        var g = await ReadAsync(18);
        Xunit.Assert.Equal(NbdMagic.InitPasswd, BinaryPrimitives.ReadUInt64BigEndian(g));
        Xunit.Assert.Equal(NbdMagic.IHaveOpt, BinaryPrimitives.ReadUInt64BigEndian(g.AsSpan(8)));
        await WriteU32Async((uint)(ClientFlags.FixedNewstyle | ClientFlags.NoZeroes));
        return BinaryPrimitives.ReadUInt16BigEndian(g.AsSpan(16));
    }

    public Task SendOptionAsync(NbdOption option, byte[] body) => SendOptionAsync((uint)option, body);

    public async Task SendOptionAsync(uint option, byte[] body)
    {
        var b = new byte[16 + body.Length];
        BinaryPrimitives.WriteUInt64BigEndian(b, NbdMagic.IHaveOpt);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(8), option);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(12), (uint)body.Length);
        body.CopyTo(b, 16);
        await WriteAsync(b);
    }

    public async Task<(uint Option, OptionReplyType Type, byte[] Data)> ReadOptionReplyAsync()
    {
        var h = await ReadAsync(20);
        Xunit.Assert.Equal(NbdMagic.OptionReply, BinaryPrimitives.ReadUInt64BigEndian(h));
        var len = BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(16));
        return (BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(8)), (OptionReplyType)BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(12)),
            await ReadAsync((int)len));
    }

    public static byte[] ExportInfoBody(string name, params InfoType[] infos)
    {
        var n = Encoding.UTF8.GetBytes(name);
        var b = new byte[4 + n.Length + 2 + 2 * infos.Length];
        BinaryPrimitives.WriteUInt32BigEndian(b, (uint)n.Length);
        n.CopyTo(b, 4);
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(4 + n.Length), (ushort)infos.Length);
        for (int i = 0; i < infos.Length; i++) BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(6 + n.Length + 2 * i), (ushort)infos[i]);
        return b;
    }

    public static byte[] MetaContextBody(string export, params string[] queries)
    {
        var ms = new MemoryStream();
        void U32(uint v) { var t = new byte[4]; BinaryPrimitives.WriteUInt32BigEndian(t, v); ms.Write(t); }
        var n = Encoding.UTF8.GetBytes(export);
        U32((uint)n.Length); ms.Write(n);
        U32((uint)queries.Length);
        foreach (var q in queries) { var qb = Encoding.UTF8.GetBytes(q); U32((uint)qb.Length); ms.Write(qb); }
        return ms.ToArray();
    }

    /// <summary>Greets, optionally negotiates structured replies and base:allocation, then GO.</summary>
    public static async Task<RawClient> OpenAsync(int port, string export = "disk", bool structured = false, bool blockStatus = false)
    {
        var c = await ConnectAsync(port);
        await c.GreetAsync();
        if (structured)
        {
            await c.SendOptionAsync(NbdOption.StructuredReply, []);
            Xunit.Assert.Equal(OptionReplyType.Ack, (await c.ReadOptionReplyAsync()).Type);
        }
        if (blockStatus)
        {
            await c.SendOptionAsync(NbdOption.SetMetaContext, MetaContextBody(export, NbdLimits.BaseAllocation));
            Xunit.Assert.Equal(OptionReplyType.MetaContext, (await c.ReadOptionReplyAsync()).Type);
            Xunit.Assert.Equal(OptionReplyType.Ack, (await c.ReadOptionReplyAsync()).Type);
        }
        await c.SendOptionAsync(NbdOption.Go, ExportInfoBody(export));
        while (true)
        {
            var r = await c.ReadOptionReplyAsync();
            if (r.Type == OptionReplyType.Ack) break;
            Xunit.Assert.Equal(OptionReplyType.Info, r.Type);
            if (BinaryPrimitives.ReadUInt16BigEndian(r.Data) == (ushort)InfoType.Export)
            {
                c.Size = (long)BinaryPrimitives.ReadUInt64BigEndian(r.Data.AsSpan(2));
                c.Flags = (TransmissionFlags)BinaryPrimitives.ReadUInt16BigEndian(r.Data.AsSpan(10));
            }
        }
        return c;
    }

    public long Size { get; private set; }
    public TransmissionFlags Flags { get; private set; }

    public async Task SendRequestAsync(NbdCommand cmd, ulong offset, uint length, ulong cookie, CommandFlags flags = 0, byte[]? payload = null)
    {
        var b = new byte[28 + (payload?.Length ?? 0)];
        RequestCodec.Write(b, new NbdRequest(flags, cmd, cookie, offset, length));
        payload?.CopyTo(b, 28);
        await WriteAsync(b);
    }

    /// <summary>Reads one simple reply; returns (error, cookie, data of dataLength bytes if no error).</summary>
    public async Task<(NbdError Error, ulong Cookie, byte[] Data)> ReadSimpleReplyAsync(int dataLength = 0)
    {
        var h = await ReadAsync(16);
        Xunit.Assert.Equal(NbdMagic.SimpleReply, BinaryPrimitives.ReadUInt32BigEndian(h));
        var err = (NbdError)BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(4));
        var cookie = BinaryPrimitives.ReadUInt64BigEndian(h.AsSpan(8));
        return (err, cookie, err == NbdError.None && dataLength > 0 ? await ReadAsync(dataLength) : []);
    }

    public async Task<(ReplyFlags Flags, ReplyType Type, ulong Cookie, byte[] Body)> ReadChunkAsync()
    {
        var h = await ReadAsync(20);
        Xunit.Assert.Equal(NbdMagic.StructuredReply, BinaryPrimitives.ReadUInt32BigEndian(h));
        var len = BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(16));
        return ((ReplyFlags)BinaryPrimitives.ReadUInt16BigEndian(h.AsSpan(4)), (ReplyType)BinaryPrimitives.ReadUInt16BigEndian(h.AsSpan(6)),
            BinaryPrimitives.ReadUInt64BigEndian(h.AsSpan(8)), await ReadAsync((int)len));
    }

    /// <summary>After an acknowledged NBD_OPT_STARTTLS: the TLS handshake (server checked against ca-cert.pem in
    /// <paramref name="dir"/>), then everything goes over TLS.</summary>
    public async Task UpgradeToTlsAsync(string dir)
    {
        var roots = new System.Security.Cryptography.X509Certificates.X509Certificate2Collection();
        roots.ImportFromPemFile(Path.Combine(dir, "ca-cert.pem"));
        var policy = new System.Security.Cryptography.X509Certificates.X509ChainPolicy
        {
            TrustMode = System.Security.Cryptography.X509Certificates.X509ChainTrustMode.CustomRootTrust,
            RevocationMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck,
        };
        policy.CustomTrustStore.AddRange(roots);
        var ssl = new System.Net.Security.SslStream(_s, leaveInnerStreamOpen: false);
        await ssl.AuthenticateAsClientAsync(new System.Net.Security.SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            CertificateChainPolicy = policy,
            RemoteCertificateValidationCallback = (_, _, _, errors) => errors == System.Net.Security.SslPolicyErrors.None,
        });
        _s = ssl;
    }

    public async Task WriteU32Async(uint v)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, v);
        await WriteAsync(b);
    }

    public async Task WriteAsync(byte[] bytes) => await _s.WriteAsync(bytes);

    public async Task<byte[]> ReadAsync(int count)
    {
        var b = new byte[count];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await _s.ReadExactlyAsync(b, cts.Token);
        return b;
    }

    /// <summary>True if the server closed the connection (EOF or reset) within the timeout.</summary>
    public async Task<bool> IsClosedByServerAsync()
    {
        var b = new byte[1];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            while (true)
            {
                if (await _s.ReadAsync(b, cts.Token) == 0) return true;
            }
        }
        catch (IOException) { return true; }
        catch (OperationCanceledException) { return false; }
    }

    public ValueTask DisposeAsync()
    {
        _tcp.Dispose();
        return ValueTask.CompletedTask;
    }
}
