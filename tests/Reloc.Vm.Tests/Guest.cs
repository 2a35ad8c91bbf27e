using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Reloc.Testing;

namespace Reloc.Vm.Tests;

/// <summary>
/// The test guest (guest/guest.S): a BIOS program that writes pattern(k) to slot k, k = 1, 2, 3, ...,
/// flushes, reads it back, re-reads an older slot and prints "k=N" on COM1, or "ERR ..." and halts.
/// This class assembles it, lays out the disk image it boots from, and predicts the image after any k.
/// </summary>
/// <remarks>
/// The slots are spread over the whole disk (an affine permutation, two per relocation block, at varying
/// sectors) and the image is sparse: a disk relocated while the guest runs is mostly holes, and the guest
/// keeps writing into blocks that were holes when the relocation started (issue 9: such writes were lost).
/// </remarks>
public sealed class Guest
{
    /// <summary>Slots the guest cycles through (a power of two). A migration test (150-270 rounds a second under
    /// TCG) writes into a tenth of the blocks before the relocation starts, and wraps around once near its end.</summary>
    public const int Slots = 2048;
    /// <summary>First sector of the slot area: 1 MiB in, on a relocation block boundary, past the program.</summary>
    public const int FirstSector = 2048;
    /// <summary>Sectors of the slot area per slot (a power of two): 32 KiB, two slots per relocation block.</summary>
    public const int Stride = 64;
    /// <summary>Place of a slot: (SpreadA * slot + SpreadB) mod Slots; SpreadA odd makes it a permutation,
    /// near Slots / golden ratio so that consecutive slots land far apart.</summary>
    public const int SpreadA = 1265, SpreadB = 123;
    /// <summary>Sector of a slot inside its place: (place * OffsetMul) mod Stride, so writes hit varied sectors of a block.</summary>
    public const int OffsetMul = 37;
    public const int SectorSize = 512;
    /// <summary>The relocation's tracking block (RelocationProtocol.TrackingBlockSize): the unit of holes and invalidations.</summary>
    public const int BlockSize = 64 << 10;
    /// <summary>The program's first MiB, then 64 MiB of slots.</summary>
    public const long DiskSize = (long)(FirstSector + Slots * Stride) * SectorSize;
    private const uint Magic = 0x434F4C52; // "RLOC"

    private static readonly Dictionary<long, int> SlotAtSector = Enumerable.Range(0, Slots).ToDictionary(s => SectorOf(s), s => s);

    private Guest(byte[] program) => Program = program;

    /// <summary>The assembled program: boot sector and what follows it; the image holds nothing else before boot.</summary>
    public byte[] Program { get; }

    public static string Source => Path.Combine(AppContext.BaseDirectory, "guest", "guest.S");

    /// <summary>Assembles guest.S with binutils (as, ld) in <paramref name="dir"/>.</summary>
    public static async Task<Guest> BuildAsync(string dir)
    {
        var obj = Path.Combine(dir, "guest.o");
        var bin = Path.Combine(dir, "guest.bin");
        await Require("as", "binutils");
        await Tool.CheckAsync("as", "--32", "--defsym", $"SLOTS={Slots}", "--defsym", $"FIRST={FirstSector}", "--defsym", $"STRIDE={Stride}",
            "--defsym", $"SPREAD_A={SpreadA}", "--defsym", $"SPREAD_B={SpreadB}", "--defsym", $"OFFSET_MUL={OffsetMul}", Source, "-o", obj);
        await Tool.CheckAsync("ld", "-m", "elf_i386", "-Ttext=0x7c00", "--oformat", "binary", obj, "-o", bin);
        var program = await File.ReadAllBytesAsync(bin);
        if (program.Length < 1024 || program.Length > FirstSector * SectorSize || program[510] != 0x55 || program[511] != 0xAA)
            throw new InvalidOperationException($"guest.bin looks wrong: {program.Length} bytes");
        return new Guest(program);
    }

    /// <summary>Fails with a clear message when a tool the VM tests need is not installed.</summary>
    public static async Task Require(string tool, string package)
    {
        var r = await Tool.RunAsync("sh", "-c", $"command -v {tool}");
        if (r.ExitCode != 0)
            throw new InvalidOperationException($"{tool} is not installed: the VM tests need it (apt-get install {package})");
    }

    /// <summary>Writes the boot image sparse: the program, then a hole to the end of the disk.</summary>
    public async Task<string> WriteImageAsync(string path)
    {
        await using var f = new FileStream(path, FileMode.Create, FileAccess.Write);
        await f.WriteAsync(Program);
        f.SetLength(DiskSize);
        return path;
    }

    /// <summary>The slot k writes (k may be &lt;= 0: a slot no round has written yet).</summary>
    public static int SlotOf(int k) => k & (Slots - 1);

    /// <summary>The sector of a slot, as guest.S's set_lba computes it.</summary>
    public static long SectorOf(int slot)
    {
        int place = (SpreadA * slot + SpreadB) & (Slots - 1);
        return FirstSector + (long)place * Stride + ((place * OffsetMul) & (Stride - 1));
    }

    /// <summary>The relocation block round k writes into.</summary>
    public static long BlockOf(int k) => SectorOf(SlotOf(k)) * SectorSize / BlockSize;

    /// <summary>How many of the rounds k in (<paramref name="from"/>, <paramref name="to"/>] write into a block
    /// that no round up to <paramref name="holesAt"/> had written: a hole at the source when k = holesAt.</summary>
    public static int WritesIntoHoles(int holesAt, int from, int to)
    {
        var data = Enumerable.Range(1, Math.Max(0, holesAt)).Select(BlockOf).ToHashSet();
        return Enumerable.Range(from + 1, Math.Max(0, to - from)).Count(k => !data.Contains(BlockOf(k)));
    }

    /// <summary>pattern(k): 'RLOC', k, then an LCG seeded from k (see guest.S).</summary>
    public static void Pattern(int k, Span<byte> sector)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(sector, Magic);
        BinaryPrimitives.WriteInt32LittleEndian(sector[4..], k);
        uint x = (uint)k ^ 0x9E3779B9;
        for (int i = 2; i < 128; i++)
        {
            x = unchecked(x * 1664525 + 1013904223);
            BinaryPrimitives.WriteUInt32LittleEndian(sector[(i * 4)..], x);
        }
    }

    /// <summary>The last k &lt;= <paramref name="lastK"/> that wrote <paramref name="slot"/>; &lt;= 0 when none did.</summary>
    public static int LastWriterOf(int slot, int lastK) => lastK - ((lastK - slot) & (Slots - 1));

    /// <summary>The whole image as it must be once the guest has written k = 1..<paramref name="lastK"/>:
    /// the program, each slot written so far holding its last writer's pattern, zeros elsewhere.</summary>
    public byte[] ExpectedImage(int lastK)
    {
        var image = new byte[DiskSize];
        for (long sector = 0; sector < DiskSize / SectorSize; sector++)
            ExpectedSector(sector, lastK, image.AsSpan((int)(sector * SectorSize), SectorSize));
        return image;
    }

    /// <summary>One sector of <see cref="ExpectedImage"/>.</summary>
    private void ExpectedSector(long sector, int lastK, Span<byte> into)
    {
        into.Clear();
        long start = sector * SectorSize;
        if (start < Program.Length) Program.AsSpan((int)start, (int)Math.Min(SectorSize, Program.Length - start)).CopyTo(into);
        else if (SlotAtSector.TryGetValue(sector, out int slot) && LastWriterOf(slot, lastK) is var k and > 0) Pattern(k, into);
    }

    private bool Matches(byte[] actual, int lastK)
    {
        if (actual.Length != DiskSize) return false;
        Span<byte> expected = stackalloc byte[SectorSize];
        for (long sector = 0; sector < DiskSize / SectorSize; sector++)
        {
            ExpectedSector(sector, lastK, expected);
            if (!actual.AsSpan((int)(sector * SectorSize), SectorSize).SequenceEqual(expected)) return false;
        }
        return true;
    }

    /// <summary>
    /// Compares a final image with what the guest's pattern predicts. The serial log proves k = 1..lastK
    /// were written, flushed and verified; a stop may have caught k = lastK+1 written but not yet printed,
    /// so exactly one of the two predictions must match, byte for byte over the whole image. When neither
    /// does, the differences are those from the closer one.
    /// </summary>
    public ImageCheck Check(byte[] actual, int lastK)
    {
        var sha = Convert.ToHexString(SHA256.HashData(actual));
        foreach (var k in new[] { lastK, lastK + 1 })
            if (Matches(actual, k)) return new ImageCheck(true, k, sha, "");
        var (_, differences) = new[] { Describe(actual, lastK), Describe(actual, lastK + 1) }.MinBy(d => d.Differing);
        return new ImageCheck(false, -1, sha, differences);
    }

    /// <summary>What differs from the prediction for lastK: sectors outside the slots, and slots holding another k or zeros.</summary>
    private (int Differing, string Text) Describe(byte[] actual, int lastK)
    {
        var sb = new StringBuilder();
        if (actual.Length != DiskSize) sb.AppendLine($"image is {actual.Length} bytes, not {DiskSize}");
        Span<byte> e = stackalloc byte[SectorSize];
        int shown = 0, differing = 0, zeros = 0;
        var blocks = new HashSet<long>();
        for (long sector = 0; sector < Math.Min(actual.Length, DiskSize) / SectorSize; sector++)
        {
            var a = actual.AsSpan((int)(sector * SectorSize), SectorSize);
            ExpectedSector(sector, lastK, e);
            if (a.SequenceEqual(e)) continue;
            differing++;
            blocks.Add(sector * SectorSize / BlockSize);
            bool hole = a.IndexOfAnyExcept((byte)0) < 0;
            if (hole) zeros++;
            if (shown++ >= 12) continue;
            if (SlotAtSector.TryGetValue(sector, out int slot))
            {
                var holds = hole ? "zeros" : BinaryPrimitives.ReadUInt32LittleEndian(a) == Magic ? $"k={BinaryPrimitives.ReadInt32LittleEndian(a[4..])}" : "no pattern";
                var wellFormed = hole || holds != "no pattern" && IsPattern(a, BinaryPrimitives.ReadInt32LittleEndian(a[4..]));
                int writer = LastWriterOf(slot, lastK);
                var want = writer > 0 ? $"k={writer}" : "zeros (not written yet)";
                sb.AppendLine($"slot {slot} (sector {sector}, block {sector * SectorSize / BlockSize}): expected {want}, holds {holds}{(wellFormed ? "" : " (torn or foreign data)")}");
            }
            else sb.AppendLine($"sector {sector} (outside the slots) differs");
        }
        sb.Insert(0, $"{differing} sectors in {blocks.Count} blocks differ from the prediction for last k={lastK}; {zeros} of them hold zeros:\n");
        return (differing, sb.ToString());
    }

    private static bool IsPattern(ReadOnlySpan<byte> sector, int k)
    {
        Span<byte> p = stackalloc byte[SectorSize];
        Pattern(k, p);
        return sector.SequenceEqual(p);
    }
}

public sealed record ImageCheck(bool Matches, int LastK, string Sha256, string Differences);

/// <summary>What the guest printed, parsed as it arrives. A migrated guest's serial output continues on the
/// destination, possibly mid-line, so the final check reads the source's and the destination's output as one stream.</summary>
public sealed class SerialTranscript
{
    private static readonly Regex Progress = new(@"^k=(\d+)$", RegexOptions.Compiled);
    private readonly StringBuilder _text = new();
    private readonly StringBuilder _partial = new();

    public SerialTranscript(string text = "") => Append(text);

    public string Text => _text.ToString();
    public List<string> Lines { get; } = [];
    public List<string> Errors { get; } = [];
    public List<int> Ks { get; } = [];
    public int LastK => Ks.Count == 0 ? 0 : Ks[^1];
    public bool Ready { get; private set; }

    /// <summary>Adds output; only complete lines count (the last piece may still be being printed).</summary>
    public void Append(string chunk)
    {
        _text.Append(chunk);
        foreach (var c in chunk)
        {
            if (c != '\n') { _partial.Append(c); continue; }
            var line = _partial.ToString().TrimEnd('\r');
            _partial.Clear();
            Lines.Add(line);
            if (line.StartsWith("ERR", StringComparison.Ordinal) || line == "HALT") Errors.Add(line);
            else if (line == "RELOC-GUEST ready") Ready = true;
            else if (line.StartsWith("k=", StringComparison.Ordinal) && Progress.Match(line) is { Success: true } m) Ks.Add(int.Parse(m.Groups[1].Value));
        }
    }

    /// <summary>Null when k went 1, 2, 3, ... LastK with none missing, repeated or out of order; else the first gap.</summary>
    public string? CounterProblem()
    {
        for (int i = 0; i < Ks.Count; i++)
            if (Ks[i] != i + 1) return $"progress line {i} is k={Ks[i]}, expected k={i + 1} (previous: {(i > 0 ? Ks[i - 1] : 0)})";
        return null;
    }
}
