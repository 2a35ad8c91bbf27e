using System.Diagnostics.CodeAnalysis;

namespace Reloc.Management;

/// <summary>
/// A disk's name: its NBD export name and the stem of its image file (<c>NAME.img</c> in the site's data directory),
/// so one alphabet keeps it safe in both. The one place names are judged: the management API (400) and the site
/// (defence in depth) both use <see cref="TryParse"/>.
/// </summary>
/// <remarks>
/// 1-<see cref="MaxLength"/> characters of ASCII letters, digits, '-', '_' and '.'; starting with a letter or digit
/// (not '.': no hidden files, no "." or ".."; not '-': it would read as an option on a command line). '@' is outside
/// the alphabet on purpose: the site exports a disk to other sites as <c>NAME@peer</c>, a name no disk can take.
/// </remarks>
public readonly record struct DiskName
{
    public const int MaxLength = 64;

    /// <summary>The separator of the site's internal export names (<c>NAME@peer</c>): never in a disk's name.</summary>
    public const char InternalSeparator = '@';

    private DiskName(string value) => Value = value;

    public string Value { get; }

    public override string ToString() => Value;

    /// <returns>null, or why <paramref name="text"/> is not a disk name.</returns>
    public static string? Validate(string? text) => TryParse(text, out _, out var why) ? null : why;

    public static bool TryParse([NotNullWhen(true)] string? text, out DiskName name, [NotNullWhen(false)] out string? why)
    {
        name = default;
        why = text switch
        {
            null or "" => "a disk needs a name",
            { Length: > MaxLength } => $"disk name '{Shown(text)}' is {text.Length} characters long: at most {MaxLength}",
            _ when !char.IsAsciiLetterOrDigit(text[0]) => $"disk name '{Shown(text)}' must start with a letter or a digit",
            _ when text.Contains(InternalSeparator) => $"disk name '{Shown(text)}' must not contain '{InternalSeparator}' (the site's internal export names use it)",
            _ when !text.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.') =>
                $"disk name '{Shown(text)}' may only hold letters, digits, '-', '_' and '.'",
            _ => null,
        };
        if (why is not null) return false;
        name = new DiskName(text!);
        return true;
    }

    /// <summary>Names are echoed in messages: no control characters, and not a screenful.</summary>
    private static string Shown(string text)
    {
        var clean = new string(text.Take(MaxLength + 8).Select(c => char.IsControl(c) ? '?' : c).ToArray());
        return text.Length > clean.Length ? clean + "..." : clean;
    }
}

/// <summary>
/// A new disk's size in bytes: positive, a whole number of <see cref="Sector"/>s (every NBD client and the kernel's
/// nbd device address disks in 512-byte sectors; a ragged tail is a size typed wrong), and at most
/// <see cref="Max"/> (far above any VM disk: a size past it is a unit mistake, e.g. bytes given as KiB twice).
/// A disk made from an image file or an NBD export takes that source's size as it is.
/// </summary>
public readonly record struct DiskSize
{
    public const long Sector = 512;
    public const long Max = 1L << 50; // 1 PiB

    private DiskSize(long bytes) => Bytes = bytes;

    public long Bytes { get; }

    public override string ToString() => Bytes.ToString(System.Globalization.CultureInfo.InvariantCulture);

    public static string? Validate(long bytes) => TryParse(bytes, out _, out var why) ? null : why;

    public static bool TryParse(long bytes, out DiskSize size, [NotNullWhen(false)] out string? why)
    {
        size = default;
        why = bytes switch
        {
            <= 0 => $"disk size must be positive, not {bytes}",
            > Max => $"disk size {bytes} bytes is more than the largest allowed, {Max} bytes (1 PiB)",
            _ when bytes % Sector != 0 => $"disk size {bytes} bytes is not a whole number of {Sector}-byte sectors (the nearest: {bytes / Sector * Sector} or {(bytes / Sector + 1) * Sector})",
            _ => null,
        };
        if (why is not null) return false;
        size = new DiskSize(bytes);
        return true;
    }
}
