using static Reloc.Actors.Coordinator.RelocationPhase;
using Reloc.Actors.Site;
using static Reloc.Actors.Coordinator.RelocationProtocol;

namespace Reloc.Actors.Coordinator;

/// <summary>The coordinator's link budgets: each pair's budget divided among the relocations copying on it
/// (<see cref="LinkShares"/>), and the destinations told when their share changes.</summary>
public sealed partial class CoordinatorCore
{
    /// <summary>A pair's budget each way (0: none): set at run time, else reloc.links.</summary>
    private long BudgetOf(LinkPair pair) =>
        _linksSet.TryGetValue(pair, out var set) ? set.BandwidthBytesPerSecond : _linksConfigured.GetValueOrDefault(pair);

    /// <summary>A budget a site holds durably (its answer to a store, or its report in a round): adopted when newer than
    /// the one held (last writer wins); <paramref name="site"/> names who said it, for the log.</summary>
    private void Learn(RememberedBudget b, string site)
    {
        _highestStamp = Math.Max(_highestStamp, b.Stamp);
        if (!LinkMemory.Supersedes(b, _linksSet.GetValueOrDefault(b.Pair))) return;
        _linksSet[b.Pair] = b;
        Log(CoreLogLevel.Info, $"link {b.Pair}: budget {(b.BandwidthBytesPerSecond == 0 ? "none" : $"{b.BandwidthBytesPerSecond} B/s")} each way, "
            + $"set at run time (stamp {b.Stamp}, held at {site})");
    }

    /// <summary>What the sites that answered remember: the newest per pair is adopted.</summary>
    private void LearnLinks(IReadOnlyList<SiteProtocol.DiskList> lists)
    {
        foreach (var l in lists) foreach (var b in l.Links ?? []) _highestStamp = Math.Max(_highestStamp, b.Stamp);
        foreach (var b in LinkMemory.Adopt(_linksSet, lists.SelectMany(l => l.Links ?? [])))
            Learn(b, string.Join(", ", lists.Where(l => (l.Links ?? []).Contains(b)).Select(l => l.Site)));
    }

    /// <summary>A round's answers: the budgets they remember are adopted, and a site of a pair that lacks the budget held
    /// for it (it was down at the set, or the store's answer got lost) is told it again.</summary>
    private void ReconcileLinks(IReadOnlyList<SiteProtocol.DiskList> lists)
    {
        LearnLinks(lists);
        var answered = lists.GroupBy(l => l.Site, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => (IReadOnlyList<RememberedBudget>)[.. g.SelectMany(l => l.Links ?? [])], StringComparer.Ordinal);
        foreach (var (site, b) in LinkMemory.Repairs(_linksSet, answered)) Tell(site, new RememberLinkBudget(b));
    }

    /// <summary>A site's answer to a store: the first site that holds the set applies it and answers the operator (it
    /// outlives this coordinator now); when both failed, nothing changed and the operator is told why.</summary>
    private void OnLinkStored(CoordinatorInput.LinkStored m)
    {
        if (m.Held is { } held) Learn(held, m.Site);
        if (!_storing.TryGetValue(m.Asked, out var waiting)) return; // answered already
        if (m.Held is not null)
        {
            _storing.Remove(m.Asked);
            if (m.Held != m.Asked) Log(CoreLogLevel.Warning, $"link {m.Asked.Pair}: a newer budget was set meanwhile ({m.Held}); it stays");
            Rebalance(); // before the answer, so that it shows the new rates
            Answer(waiting.ReplyTo, LinkInfoOf(m.Asked.Pair));
            return;
        }
        waiting.Failed.Add($"{m.Site}: {m.Error}");
        if (waiting.Failed.Count < 2) return;
        _storing.Remove(m.Asked);
        Answer(waiting.ReplyTo, new RelocationRefused($"the budget of link {m.Asked.Pair} was not changed: neither site stored it ({string.Join("; ", waiting.Failed)}); "
            + "set it again once one of them answers (if one stored it late, the coordinator adopts it at its next reconcile round)"));
    }

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
