using Reloc.Actors.Site;
using Xunit;

namespace Reloc.Actors.Tests;

/// <summary>Released and deleted images leave their path at once and are unlinked off the site actor's thread;
/// what a crash left set aside goes at the next start.</summary>
public sealed class ImageBinTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("reloc-bin-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Image(string name)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllBytes(path, new byte[4096]);
        return path;
    }

    [Fact]
    public void A_discarded_image_leaves_its_path_at_once_and_is_gone_once_the_bin_is_disposed()
    {
        var vm = Image("vm.img");
        var other = Image("other.img");
        var bin = new ImageBin(_dir);
        bin.Discard(vm);
        Assert.False(File.Exists(vm)); // a disk of the same name may be created at once
        bin.Dispose();
        Assert.Equal([other], Directory.GetFiles(_dir));
    }

    [Fact]
    public void Discarding_an_image_that_is_not_there_does_nothing()
    {
        using var bin = new ImageBin(_dir);
        bin.Discard(Path.Combine(_dir, "gone.img"));
        Assert.Equal(0, bin.Pending);
    }

    [Fact]
    public void Sweep_removes_what_a_crash_left_set_aside_and_nothing_else()
    {
        var left = Image(ImageBin.Prefix + "0123-vm.img");
        var vm = Image("vm.img");
        var journal = Image("reloc.db");
        using (var bin = new ImageBin(_dir)) bin.Sweep();
        Assert.False(File.Exists(left));
        Assert.Equal([journal, vm], Directory.GetFiles(_dir).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Sweep_of_a_site_directory_not_made_yet_does_nothing()
    {
        using var bin = new ImageBin(Path.Combine(_dir, "not-yet"));
        bin.Sweep();
        Assert.Equal(0, bin.Pending);
    }
}
