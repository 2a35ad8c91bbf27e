using System.Diagnostics;
using System.Text;

namespace Reloc.Vm.Tests;

/// <summary>One clock for a test: what the test did, when, on the same scale as the NBD taps and QMP events.</summary>
public sealed class Timeline
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly List<(double At, string What)> _marks = [];

    public double Now => _clock.Elapsed.TotalSeconds;

    public double Mark(string what)
    {
        var at = Now;
        lock (_marks) _marks.Add((at, what));
        return at;
    }

    public IReadOnlyList<(double At, string What)> Marks { get { lock (_marks) return _marks.ToList(); } }

    public override string ToString()
    {
        var sb = new StringBuilder();
        foreach (var (at, what) in Marks) sb.AppendLine($"{at,8:F3}s  {what}");
        return sb.ToString();
    }
}
