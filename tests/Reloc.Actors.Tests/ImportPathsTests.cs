using Reloc.Actors.Site.Core;
using Reloc.Storage;
using Xunit;

namespace Reloc.Actors.Tests;

/// <summary>Which files <c>disk create --from FILE</c> may read (<see cref="ImportPaths"/>): the pure decision as a
/// table over canonical paths, then the same decision over a real directory with ".." and symbolic-link escapes.</summary>
public sealed class ImportPathsTests : IDisposable
{
    private readonly string _root = RealPaths.TryResolve(Directory.CreateTempSubdirectory("reloc-import-").FullName)!;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    public static TheoryData<string, string?, string?, string, string?, string?> Table => new()
    {
        // name, import-dir, its real path, requested, its real path, the path allowed (null: refused)
        { "inside", "/imp", "/imp", "/imp/a.img", "/imp/a.img", "/imp/a.img" },
        { "deeper inside", "/imp", "/imp", "/imp/x/a.img", "/imp/x/a.img", "/imp/x/a.img" },
        { "the import dir itself is a link", "/imp", "/data/imp", "/imp/a.img", "/data/imp/a.img", "/data/imp/a.img" },
        { "imports off", null, null, "/imp/a.img", "/imp/a.img", null },
        { "imports off (empty)", "", null, "/imp/a.img", "/imp/a.img", null },
        { "relative", "/imp", "/imp", "a.img", "/imp/a.img", null },
        { "outside", "/imp", "/imp", "/etc/shadow", "/etc/shadow", null },
        { "dot-dot", "/imp", "/imp", "/imp/../etc/shadow", "/etc/shadow", null },
        { "a link out", "/imp", "/imp", "/imp/evil.img", "/etc/shadow", null },
        { "a sibling with the same prefix", "/imp", "/imp", "/imp-old/a.img", "/imp-old/a.img", null },
        { "the directory itself", "/imp", "/imp", "/imp", "/imp", null },
        { "missing inside", "/imp", "/imp", "/imp/none.img", null, null },
        { "missing outside", "/imp", "/imp", "/etc/none", null, null },
        { "the import dir does not exist", "/imp", null, "/imp/a.img", null, null },
    };

    [Theory]
    [MemberData(nameof(Table))]
    public void A_path(string name, string? dir, string? dirReal, string requested, string? requestedReal, string? allowed)
    {
        var d = ImportPaths.Decide("site-a", dir, dirReal, requested, requestedReal);
        Assert.True(allowed == d.Path, $"{name}: {d.Path ?? d.Refusal}");
        Assert.True((d.Refusal is null) == (allowed is not null), name);
    }

    [Fact]
    public void Refusals_say_why()
    {
        Assert.Contains("reloc.site.import-dir is not set", ImportPaths.Decide("site-a", null, null, "/x", "/x").Refusal);
        Assert.Equal("'/imp/evil.img' leads to /etc/shadow, outside site site-a's import directory /imp: only files under it can be imported",
            ImportPaths.Decide("site-a", "/imp", "/imp", "/imp/evil.img", "/etc/shadow").Refusal);
        Assert.Equal("no file /imp/none.img on site site-a", ImportPaths.Decide("site-a", "/imp", "/imp", "/imp/none.img", null).Refusal);
        // A missing file outside is "outside", not "missing": the answer does not tell what exists elsewhere.
        Assert.Contains("outside", ImportPaths.Decide("site-a", "/imp", "/imp", "/etc/none", null).Refusal);
    }

    /// <summary>The same decision over a real file system: realpath resolves what the table takes as given.</summary>
    [Fact]
    public void Dot_dot_and_symbolic_links_out_of_the_import_directory_are_refused()
    {
        var imp = Directory.CreateDirectory(Path.Combine(_root, "imp")).FullName;
        var outside = Path.Combine(_root, "secret.img");
        File.WriteAllBytes(outside, new byte[512]);
        File.WriteAllBytes(Path.Combine(imp, "good.img"), new byte[512]);
        File.CreateSymbolicLink(Path.Combine(imp, "evil.img"), outside);
        Directory.CreateSymbolicLink(Path.Combine(imp, "up"), _root);
        File.CreateSymbolicLink(Path.Combine(imp, "inner.img"), Path.Combine(imp, "good.img"));

        ImportPaths.Decision Decide(string requested) => ImportPaths.Decide("site-a", imp, RealPaths.TryResolve(imp), requested, RealPaths.TryResolve(requested));

        Assert.Equal(Path.Combine(imp, "good.img"), Decide(Path.Combine(imp, "good.img")).Path);
        Assert.Equal(Path.Combine(imp, "good.img"), Decide(Path.Combine(imp, "inner.img")).Path); // a link that stays inside
        Assert.Contains($"leads to {outside}, outside", Decide(Path.Combine(imp, "evil.img")).Refusal);
        Assert.Contains($"leads to {outside}, outside", Decide(Path.Combine(imp, "up", "secret.img")).Refusal);
        Assert.Contains("outside", Decide(imp + "/../secret.img").Refusal);
        Assert.Contains("outside", Decide(outside).Refusal);
    }
}
