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
public sealed class Guest
{
    /// <summary>Slots the guest cycles through (a power of two): 8 MiB of 512-byte sectors.</summary>
    public const int Slots = 16384;
    /// <summary>First sector of the slots: 1 MiB in, on a relocation block boundary, past the program.</summary>
    public const int FirstSector = 2048;
    public const int SectorSize = 512;
    public const long DiskSize = 16 << 20;
    private const uint Magic = 0x434F4C52; // "RLOC"

    private Guest(byte[] program, byte[] initialImage)
    {
        Program = program;
        InitialImage = initialImage;
    }

    /// <summary>The assembled program: boot sector and what follows it.</summary>
    public byte[] Program { get; }

    /// <summary>The image the guest boots from: the program, every slot holding what a k &lt;= 0 "wrote" there
    /// (so older-slot reads have something to verify from the start, and the data is not a hole), zeros elsewhere.</summary>
    public byte[] InitialImage { get; }

    public static string Source => Path.Combine(AppContext.BaseDirectory, "guest", "guest.S");

    /// <summary>Assembles guest.S with binutils (as, ld) in <paramref name="dir"/>.</summary>
    public static async Task<Guest> BuildAsync(string dir)
    {
        var obj = Path.Combine(dir, "guest.o");
        var bin = Path.Combine(dir, "guest.bin");
        await Require("as", "binutils");
        await Tool.CheckAsync("as", "--32", "--defsym", $"SLOTS={Slots}", "--defsym", $"FIRST={FirstSector}", Source, "-o", obj);
        await Tool.CheckAsync("ld", "-m", "elf_i386", "-Ttext=0x7c00", "--oformat", "binary", obj, "-o", bin);
        var program = await File.ReadAllBytesAsync(bin);
        if (program.Length < 1024 || program.Length > FirstSector * SectorSize || program[510] != 0x55 || program[511] != 0xAA)
            throw new InvalidOperationException($"guest.bin looks wrong: {program.Length} bytes");
        var image = new byte[DiskSize];
        program.CopyTo(image, 0);
        WriteSlots(image, 0);
        return new Guest(program, image);
    }

    /// <summary>Fails with a clear message when a tool the VM tests need is not installed.</summary>
    public static async Task Require(string tool, string package)
    {
        var r = await Tool.RunAsync("sh", "-c", $"command -v {tool}");
        if (r.ExitCode != 0)
            throw new InvalidOperationException($"{tool} is not installed: the VM tests need it (apt-get install {package})");
    }

    public async Task<string> WriteImageAsync(string path)
    {
        await File.WriteAllBytesAsync(path, InitialImage);
        return path;
    }

    /// <summary>The slot k writes (k may be &lt;= 0 for what the image held before boot).</summary>
    public static int SlotOf(int k) => k & (Slots - 1);

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

    /// <summary>The last k &lt;= <paramref name="lastK"/> that wrote <paramref name="slot"/>.</summary>
    public static int LastWriterOf(int slot, int lastK) => lastK - ((lastK - slot) & (Slots - 1));

    /// <summary>The whole image as it must be once the guest has written k = 1..<paramref name="lastK"/>.</summary>
    public byte[] ExpectedImage(int lastK)
    {
        var image = (byte[])InitialImage.Clone();
        WriteSlots(image, lastK);
        return image;
    }

    private static void WriteSlots(byte[] image, int lastK)
    {
        for (int slot = 0; slot < Slots; slot++)
            Pattern(LastWriterOf(slot, lastK), image.AsSpan((FirstSector + slot) * SectorSize, SectorSize));
    }

    /// <summary>
    /// Compares a final image with what the guest's pattern predicts. The serial log proves k = 1..lastK
    /// were written, flushed and verified; a stop may have caught k = lastK+1 written but not yet printed,
    /// so exactly one of the two predictions must match, byte for byte over the whole image.
    /// </summary>
    public ImageCheck Check(byte[] actual, int lastK)
    {
        foreach (var k in new[] { lastK, lastK + 1 })
        {
            var expected = ExpectedImage(k);
            if (actual.AsSpan().SequenceEqual(expected)) return new ImageCheck(true, k, Convert.ToHexString(SHA256.HashData(actual)), "");
        }
        return new ImageCheck(false, -1, Convert.ToHexString(SHA256.HashData(actual)), Describe(actual, lastK));
    }

    /// <summary>What differs from the prediction for lastK: sectors outside the slots, and slots holding another k.</summary>
    private string Describe(byte[] actual, int lastK)
    {
        var sb = new StringBuilder();
        if (actual.Length != DiskSize) sb.AppendLine($"image is {actual.Length} bytes, not {DiskSize}");
        var expected = ExpectedImage(lastK);
        int shown = 0, differing = 0;
        for (long sector = 0; sector < Math.Min(actual.Length, DiskSize) / SectorSize; sector++)
        {
            var a = actual.AsSpan((int)(sector * SectorSize), SectorSize);
            var e = expected.AsSpan((int)(sector * SectorSize), SectorSize);
            if (a.SequenceEqual(e)) continue;
            differing++;
            if (shown++ >= 12) continue;
            if (sector >= FirstSector && sector < FirstSector + Slots)
            {
                int slot = (int)(sector - FirstSector);
                var holds = BinaryPrimitives.ReadUInt32LittleEndian(a) == Magic ? $"k={BinaryPrimitives.ReadInt32LittleEndian(a[4..])}" : "no pattern";
                var wellFormed = holds != "no pattern" && IsPattern(a, BinaryPrimitives.ReadInt32LittleEndian(a[4..]));
                sb.AppendLine($"slot {slot} (sector {sector}): expected k={LastWriterOf(slot, lastK)}, holds {holds}{(wellFormed ? "" : " (torn or foreign data)")}");
            }
            else sb.AppendLine($"sector {sector} (outside the slots) differs");
        }
        sb.Insert(0, $"{differing} sectors differ from the prediction for last k={lastK} (and k={lastK + 1}):\n");
        return sb.ToString();
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
