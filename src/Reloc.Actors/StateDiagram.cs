using System.Text;

namespace Reloc.Actors;

/// <summary>A Mermaid <c>stateDiagram-v2</c> from a state machine's transitions, so that documentation is generated
/// from the table a core moves by (and a test can tell when README drifts from it).</summary>
public static class StateDiagram
{
    /// <param name="From">Null: from outside (the machine starts here).</param>
    /// <param name="To">Null: to outside (the machine ends here).</param>
    public sealed record Transition(string? From, string Event, string? To);

    /// <summary>The diagram as a fenced <c>mermaid</c> block. Events between the same two states share one arrow
    /// (drawn apart, they would overlap); arrows keep the order of their first transition.</summary>
    public static string Mermaid(IEnumerable<Transition> transitions)
    {
        var text = new StringBuilder("```mermaid\nstateDiagram-v2\n");
        foreach (var arrow in transitions.GroupBy(t => (t.From, t.To)))
            text.Append($"    {arrow.Key.From ?? "[*]"} --> {arrow.Key.To ?? "[*]"} : {string.Join(" / ", arrow.Select(t => t.Event).Distinct())}\n");
        return text.Append("```\n").ToString();
    }
}
