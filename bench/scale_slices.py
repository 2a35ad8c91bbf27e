"""Per time bin figures of concurrent relocations on per-pair budgets, from scale_relocations.py's samples.

usage: scale_slices.py SAMPLES_TSV BUDGET_BPS [BIN_S]
  SAMPLES_TSV: rep, disk, from, to, t (s since the asks), fetched bytes, size (scale-relocations.samples.tsv).
A relocation is copying in a bin if it had fetched something at the bin's start and had not yet fetched its last
byte (its final fetched count; the holes are never fetched) at the bin's end. Per bin and pair with one copying:
the pair's rate / its budget, and Jain's index of its copying relocations' rates. Busy bins: every pair has one
copying. Prints per rep: busy seconds, median and mean pair utilisation over the busy bins, mean Jain, and the
same over the "all copying" bins (every relocation begun, none of a pair's all done: after the start-up ramp).
"""
import collections, statistics as st, sys

path, budget = sys.argv[1], float(sys.argv[2])
width = float(sys.argv[3]) if len(sys.argv) > 3 else 3.0
runs = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(path):
    rep, disk, a, b, t, fetched, _size = line.rstrip("\n").split("\t")
    runs[rep][(disk, a + ">" + b)].append((float(t), float(fetched)))

def at(s, t):
    for (t0, f0), (t1, f1) in zip(s, s[1:]):
        if t0 <= t <= t1:
            return f0 + (f1 - f0) * (t - t0) / (t1 - t0) if t1 > t0 else f1
    return s[-1][1] if t > s[-1][0] else s[0][1]

print("rep\tbin_s\tbusy_s\tbusy_util_median\tbusy_util_mean\tbusy_jain_mean\tall_copying_s\tall_copying_util_mean\tall_copying_jain_mean")
for rep, series in sorted(runs.items()):
    pairs = sorted({p for _, p in series})
    last = {k: s[-1][1] for k, s in series.items()}
    begun = {k: next((t for t, f in s if f > 0), float("inf")) for k, s in series.items()}
    end = max(s[-1][0] for s in series.values())
    busy, allc = [], []
    t = 0.0
    while t + width <= end:
        rates = {p: [] for p in pairs}
        for (d, p), s in series.items():
            f0, f1 = at(s, t), at(s, t + width)
            if f0 > 0 and f1 < last[(d, p)] * 0.999:
                rates[p].append((f1 - f0) / width)
        if all(rates[p] for p in pairs):
            utils = [sum(r) / budget for r in rates.values()]
            jains = [sum(r) ** 2 / (len(r) * sum(v * v for v in r)) if any(r) else 1.0 for r in rates.values()]
            busy.append((st.mean(utils), st.mean(jains)))
            if t >= max(begun.values()):
                allc.append((st.mean(utils), st.mean(jains)))
        t += width
    f = lambda xs, i, how: f"{how(x[i] for x in xs):.3f}" if xs else "-"
    print(f"{rep}\t{width:g}\t{len(busy) * width:.0f}\t{f(busy, 0, st.median)}\t{f(busy, 0, st.mean)}\t{f(busy, 1, st.mean)}"
          f"\t{len(allc) * width:.0f}\t{f(allc, 0, st.mean)}\t{f(allc, 1, st.mean)}")
