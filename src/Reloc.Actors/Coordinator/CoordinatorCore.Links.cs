using static Reloc.Actors.Coordinator.RelocationPhase;
using static Reloc.Actors.Coordinator.RelocationProtocol;

namespace Reloc.Actors.Coordinator;

/// <summary>The coordinator's link budgets: each pair's budget divided among the relocations copying on it
/// (<see cref="LinkShares"/>), and the destinations told when their share changes.</summary>
public sealed partial class CoordinatorCore
{
    /// <summary>A pair's budget each way (0: none): set at run time, else reloc.links.</summary>
    private long BudgetOf(LinkPair pair) =>
        _linksSet.TryGetValue(pair, out var set) ? set : _linksConfigured.GetValueOrDefault(pair);

    /// <summary>Whether the flow's destination copies in the background now: it claims a share of its link. A postcopy
    /// relocation waits for the handover; one copied only on demand (no prefetch) never claims.</summary>
    private static bool Copies(Flow f) => f.Prefetch && (f.Phase is Fencing or Transferring or Postcopy
        || (f.Hybrid && f.Phase is Preparing or Serving));

    /// <summary>Whether the flow will copy in the background once handed over: a postcopy relocation before its handover.</summary>
    private static bool WillCopy(Flow f) => f.Prefetch && !f.Hybrid && f.Phase is Starting or Preparing or Serving;

    /// <summary>The rate each flow should have now (disk → bytes per second, 0: unlimited): on a link with a budget,
    /// a copying flow gets its share (<see cref="LinkShares.Divide"/>), and a flow that will copy after its handover
    /// the share it would get among them, so its destination holds it from the first byte rather than from the
    /// first rebalance after the handover; every other flow its operator's cap.</summary>
    private Dictionary<string, long> RatesNow()
    {
        var rates = _flows.Values.ToDictionary(f => f.Disk, f => f.Rate, StringComparer.Ordinal);
        foreach (var direction in _flows.Values.Where(f => Copies(f) || WillCopy(f)).GroupBy(f => f.Direction))
        {
            var budget = BudgetOf(direction.Key.Pair);
            if (budget == 0) continue;
            var on = direction.Where(Copies).OrderBy(f => f.Disk, StringComparer.Ordinal).ToList();
            var shares = Divide(on);
            for (int i = 0; i < on.Count; i++) rates[on[i].Disk] = shares[i];
            foreach (var next in direction.Where(WillCopy))
            {
                var with = on.Append(next).OrderBy(f => f.Disk, StringComparer.Ordinal).ToList();
                rates[next.Disk] = Divide(with)[with.IndexOf(next)];
            }

            IReadOnlyList<long> Divide(List<Flow> flows) => LinkShares.Divide(budget, flows.Select(f => new LinkShares.Claim(f.Weight, f.Rate)).ToList());
        }
        return rates;
    }

    /// <summary>After every input: a destination whose rate should change is told (through the one SetRate path, which
    /// it persists), so a relocation that starts copying, ends, or changes weight or cap moves the others' shares at once.
    /// An adopted flow on a link without a budget is left alone: its operator's cap is the destination's, not known here.</summary>
    private void Rebalance()
    {
        var rates = RatesNow();
        foreach (var f in _flows.Values.OrderBy(f => f.Disk, StringComparer.Ordinal))
        {
            if (f.Phase is Starting or Releasing or Cancelling || (f.Phase == Preparing && f.Sent is null)) continue; // no copy to steer
            var rate = rates[f.Disk];
            if (rate == f.Sent || (f.Sent is null && !f.RateKnown && BudgetOf(f.Direction.Pair) == 0)) continue;
            f.Sent = rate;
            Tell(f.To, new SetRate(f.Disk, rate));
        }
    }

    private LinkInfo LinkInfoOf(LinkPair pair)
    {
        var rates = RatesNow();
        var shares = _flows.Values.Where(f => f.Direction.Pair == pair).OrderBy(f => f.Disk, StringComparer.Ordinal)
            .Select(f => new LinkShare(f.Disk, f.From, f.To, f.Weight, f.RateKnown ? f.Rate : 0, Copies(f) ? rates[f.Disk] : f.Sent ?? 0)).ToList();
        return new LinkInfo(pair.A, pair.B, BudgetOf(pair), _linksSet.ContainsKey(pair), shares);
    }
}
