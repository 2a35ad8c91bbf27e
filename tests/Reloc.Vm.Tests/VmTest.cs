using System.Text;
using Xunit;
using Xunit.Abstractions;

namespace Reloc.Vm.Tests;

/// <summary>
/// What every VM test shares: a work directory (images, sockets; deleted afterwards), a log directory kept
/// next to the test binaries (vm-logs/&lt;test&gt;: serial logs and the report), one timeline, and the final
/// verification of a migrated guest.
/// </summary>
public abstract class VmTest : IAsyncLifetime
{
    protected static readonly TimeSpan Boot = TimeSpan.FromSeconds(60);
    protected static readonly TimeSpan Run = TimeSpan.FromSeconds(90);
    protected static readonly TimeSpan Exit = TimeSpan.FromSeconds(30);

    /// <summary>Rounds (write, flush, read back, read an older slot) the guest makes at the source before the
    /// migration (or the relocation): few, one new relocation block each, so the disk is still mostly holes;
    /// and at the destination after it: past <see cref="Guest.Slots"/>, so the guest wraps around and rewrites slots there.</summary>
    protected const int RoundsBefore = 100, RoundsAfter = 3000;

    private readonly StringBuilder _report = new();

    protected VmTest(ITestOutputHelper output, string name)
    {
        Output = output;
        Dir = Directory.CreateTempSubdirectory("reloc-vm-").FullName;
        NameLogs(name);
    }

    protected ITestOutputHelper Output { get; }
    protected string Dir { get; }
    protected string Logs { get; private set; } = "";

    /// <summary>Keeps this test's logs in vm-logs/<paramref name="name"/> (emptied first).</summary>
    protected void NameLogs(string name)
    {
        Logs = Path.Combine(AppContext.BaseDirectory, "vm-logs", name);
        if (Directory.Exists(Logs)) Directory.Delete(Logs, recursive: true);
        Directory.CreateDirectory(Logs);
    }
    protected Timeline Time { get; } = new();

    public virtual Task InitializeAsync() => Task.CompletedTask;

    public virtual async Task DisposeAsync()
    {
        await File.WriteAllTextAsync(Path.Combine(Logs, "report.txt"), _report + "\ntimeline:\n" + Time);
        Output.WriteLine(_report.ToString());
        Output.WriteLine("timeline:\n" + Time);
        Output.WriteLine($"logs: {Logs}");
        try { if (Directory.Exists(Dir)) Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }

    protected void Report(string text) => _report.AppendLine(text);

    protected Task<QemuVm> StartVmAsync(string name, string diskUri, bool incoming, string? tlsCertificates = null) =>
        QemuVm.StartAsync(name, Dir, Logs, diskUri, incoming, Time, tlsCertificates);

    /// <summary>
    /// The proof: no "ERR" on either serial port and no BLOCK_IO_ERROR from either QEMU; k went 1, 2, 3, ... without a gap or repeat across the
    /// migration and went on at the destination; the final image equals the guest's deterministic
    /// prediction byte for byte (the program, every slot written so far, zeros elsewhere).
    /// </summary>
    protected void Verify(Guest guest, QemuVm source, QemuVm destination, MigrationReport migration, int reachedK, byte[] finalImage)
    {
        var whole = new SerialTranscript(source.SerialText + destination.SerialText);
        var atSource = new SerialTranscript(source.SerialText);
        foreach (var vm in new[] { source, destination })
        {
            var ioErrors = vm.Qmp.Events.Where(e => e.Name == "BLOCK_IO_ERROR").ToList();
            Assert.True(ioErrors.Count == 0, $"{vm.Name}: QEMU reported I/O errors: {string.Join(" | ", ioErrors)}");
        }
        Report($"serial: {whole.Ks.Count} progress lines, source printed up to k={atSource.LastK}, destination to k={whole.LastK}");
        Assert.True(whole.Errors.Count == 0, $"the guest reported: {string.Join(" | ", whole.Errors)}");
        Assert.True(whole.Ready, "the guest never said it was ready");
        Assert.Null(whole.CounterProblem());
        Assert.True(atSource.LastK >= migration.SourceLastK, "the source's output shrank?");
        Assert.True(whole.LastK >= reachedK, $"the guest stopped at k={whole.LastK}, before k={reachedK}");
        Assert.True(whole.LastK > atSource.LastK + RoundsAfter / 2, $"the guest made too little progress at the destination: k {atSource.LastK} -> {whole.LastK}");

        var check = guest.Check(finalImage, whole.LastK);
        Report($"final image: sha256 {check.Sha256}; {(check.Matches ? $"equals the prediction for the last k={check.LastK}" : "DIFFERS from the prediction")}");
        Assert.True(check.Matches, check.Differences);
    }
}
