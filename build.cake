// Reloc build script (Cake). Targets:
//   Build  - compile the solution (Release)
//   Test   - install the real NBD clients the tests drive if missing, run every test, print "N passed, N failed"
//   Serve  - serve a demo image over NBD on 127.0.0.1:10809 until Ctrl-C
//   Demo   - the main job: reloc-node demo (two sites, a WAN link, a live disk relocated and verified)
//   Publish - artifacts/reloc-node/ (the node, self-contained linux-x64) and artifacts/packages/ (the reloc dotnet tool)
using System.Xml.Linq;

var target = Argument("target", "Test");
var configuration = Argument("configuration", "Release");
var solution = "./Reloc.Actors.sln";
var resultsDir = MakeAbsolute(Directory("./artifacts/test-results"));

Task("Build").Does(() =>
{
    DotNetBuild(solution, new DotNetBuildSettings { Configuration = configuration });
});

// The tests talk NBD to real clients (and drive the dashboard in chromium); on a fresh Debian machine (as root) install them.
Task("TestDependencies").Does(() =>
{
    var needed = new[] { "qemu-io", "qemu-img", "nbdinfo", "nbdcopy", "nbdsh", "fio", "nbdkit", "qemu-system-x86_64", "as", "ld", "chromium", "chromedriver", "prometheus", "systemd-analyze", "certtool" };
    var missing = needed.Where(t => StartProcess("sh", new ProcessSettings { Arguments = $"-c \"command -v {t} >/dev/null\"" }) != 0).ToList();
    var pythonNbd = StartProcess("/usr/bin/python3", new ProcessSettings { Arguments = "-c \"import nbd\"", RedirectStandardError = true }) == 0;
    var postgres = FileExists("/usr/lib/postgresql/15/bin/initdb"); // the persistence tests start their own server
    if (missing.Count == 0 && pythonNbd && postgres) return;
    Information($"missing test tools: {string.Join(", ", missing)}{(pythonNbd ? "" : " python3-libnbd")}{(postgres ? "" : " postgresql")}; installing with apt-get");
    // prometheus: the metrics test runs /usr/bin/prometheus itself, on a free port and a temporary store.
    // gnutls-bin: certtool makes the throwaway PKI of the TLS tests (tests/Reloc.Testing/TestPki.cs).
    var install = "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-utils libnbd-bin nbdkit fio python3-libnbd postgresql qemu-system-x86 binutils chromium chromium-driver prometheus systemd gnutls-bin >/dev/null";
    if (StartProcess("sh", new ProcessSettings { Arguments = $"-c \"{install}\"" }) != 0)
        throw new Exception("could not install what the tests need (run as root on Debian, or install qemu-utils libnbd-bin nbdkit fio python3-libnbd postgresql qemu-system-x86 binutils chromium chromium-driver prometheus systemd gnutls-bin)");
});

Task("Test").IsDependentOn("Build").IsDependentOn("TestDependencies").Does(() =>
{
    CleanDirectory(resultsDir);
    Exception failure = null;
    // One results folder per project: TRX file names are only unique to the second.
    foreach (var project in GetFiles("./tests/*/*.Tests.csproj"))
    {
        try
        {
            DotNetTest(project.FullPath, new DotNetTestSettings
            {
                Configuration = configuration,
                NoBuild = true,
                ResultsDirectory = resultsDir.Combine(project.GetFilenameWithoutExtension().ToString()),
                Loggers = new[] { "trx", "console;verbosity=minimal" },
            });
        }
        catch (Exception ex) { failure ??= ex; }
    }

    // CI reads this line, not dotnet test's summary.
    int passed = 0, failed = 0;
    foreach (var trx in GetFiles($"{resultsDir}/**/*.trx"))
    {
        var counters = XDocument.Load(trx.FullPath).Descendants().First(e => e.Name.LocalName == "Counters");
        passed += int.Parse(counters.Attribute("passed").Value);
        failed += int.Parse(counters.Attribute("failed").Value) + int.Parse(counters.Attribute("error").Value)
                + int.Parse(counters.Attribute("timeout").Value) + int.Parse(counters.Attribute("aborted").Value);
    }
    Console.WriteLine($"{passed} passed, {failed} failed");
    if (failure != null) throw failure;
    if (failed > 0 || passed == 0) throw new Exception("tests failed or none ran");
});

Task("Serve").IsDependentOn("Build").Does(() =>
{
    var dir = MakeAbsolute(Directory("./artifacts/demo"));
    EnsureDirectoryExists(dir);
    var image = dir.CombineWithFilePath("disk.img").FullPath;
    if (!FileExists(image))
    {
        using (var f = System.IO.File.Create(image)) f.SetLength(1L << 30); // 1 GiB, sparse
    }
    var port = Argument("port", "10809");
    Information($"serving {image} as nbd://127.0.0.1:{port}/disk (Ctrl-C to stop)");
    StartProcess("dotnet", new ProcessSettings
    {
        Arguments = $"src/Reloc.Node/bin/{configuration}/net10.0/reloc-node.dll serve --listen 127.0.0.1:{port} --export disk={image}",
    });
});

// The main job: two sites on loopback with a WAN link between them; a disk relocates under a guest
// workload, verified byte for byte. Options pass through: --demo-args="--size 1GiB --rtt 100ms --mode hybrid".
Task("Demo").IsDependentOn("Build").Does(() =>
{
    var exit = StartProcess("dotnet", new ProcessSettings
    {
        Arguments = $"src/Reloc.Node/bin/{configuration}/net10.0/reloc-node.dll demo {Argument("demo-args", "")}",
    });
    if (exit != 0) throw new Exception($"reloc-node demo failed (exit {exit})");
});

// What deploy/README.md installs: the node self-contained (no .NET runtime on the sites) and the console as a
// dotnet tool package. Versions come from git (MinVer): `git tag v0.1.0` first for a release.
Task("Publish").Does(() =>
{
    var artifacts = MakeAbsolute(Directory("./artifacts"));
    CleanDirectory(artifacts.Combine("reloc-node"));
    CleanDirectory(artifacts.Combine("packages"));
    DotNetPublish("./src/Reloc.Node/Reloc.Node.csproj", new DotNetPublishSettings
    {
        Configuration = configuration,
        Runtime = "linux-x64",
        SelfContained = true,
        // ReadyToRun: start-up to the ready line 2.5 s -> 1.6-1.9 s (docs/benchmarks.md, Start-up); LanguageExt.Core excluded (Reloc.Node.csproj).
        PublishReadyToRun = true,
        OutputDirectory = artifacts.Combine("reloc-node"),
    });
    DotNetPack("./src/Reloc.Cli/Reloc.Cli.csproj", new DotNetPackSettings
    {
        Configuration = configuration,
        OutputDirectory = artifacts.Combine("packages"),
    });
    Information($"node: {artifacts}/reloc-node/reloc-node; console: {string.Join(", ", GetFiles($"{artifacts}/packages/*.nupkg").Select(f => f.GetFilename().ToString()))}");
});

RunTarget(target);
