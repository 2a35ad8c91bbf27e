"""Follows N concurrent relocations on one link budget through the management API and judges the shares.

usage: link_budget.py MGMT_ADDR BUDGET_BPS WEIGHTS CAPS OUT_TSV LABEL REP
  WEIGHTS, CAPS: comma-separated, one per disk vm0..vmN-1 (cap 0: none); BUDGET_BPS 0: no budget.
Polls GET /api/v1/relocations/{disk} (the destination's progress) every 0.5 s until every disk is relocated.
Steady window: from 2 s after every relocation has copied something to 1 s before the first one is done
(their shares change then). Per relocation x_i = fetched bytes in the window / its length. Prints one TSV row:
label rep n budget aggregate_Bps aggregate/budget jain whole_run_Bps whole/budget window_s
where jain = Jain's index of x_i / expected_i (expected_i: the weighted max-min fair share, as LinkShares.Divide),
so a weight or a cap that is honoured counts as fair; whole_run: every byte from the first relocation's first
byte to the last one's completion. Appends per-relocation rows to OUT_TSV.
"""
import sys, time
sys.path.insert(0, __import__("os").path.dirname(__file__))
from mgmt import call

addr, budget, weights, caps, out, label, rep = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
weights = [int(w) for w in weights.split(",")]
caps = [int(c) for c in caps.split(",")]
n = len(weights)
disks = [f"vm{i}" for i in range(n)]

def expected():
    # Weighted max-min fair (water-filling), as src/Reloc.Actors/Coordinator/LinkShares.cs.
    if budget == 0:
        return [None] * n
    rates, left, wsum = [0.0] * n, float(budget), float(sum(weights))
    for i in sorted(range(n), key=lambda i: (caps[i] / weights[i]) if caps[i] else float("inf")):
        fair = left * weights[i] / wsum
        rates[i] = caps[i] if caps[i] and caps[i] <= fair else fair
        left -= rates[i]; wsum -= weights[i]
    return rates

samples = {d: [] for d in disks}   # (t, fetched)
done = {}
while len(done) < n:
    t = time.time()
    for d in disks:
        if d in done:
            continue
        try:
            p = call(addr, "relocation.show", {"name": d})["progress"]
            samples[d].append((t, p["fetchedBytes"], p["totalBytes"]))
        except RuntimeError as e:   # not relocating any more: done (or not begun yet)
            if samples[d] and "not relocating" in str(e):
                done[d] = t
        except OSError:
            pass
    time.sleep(0.5)

def at(d, when):
    """fetched bytes of d at time `when`, interpolated between samples."""
    s = samples[d]
    for (t0, f0, _), (t1, f1, _) in zip(s, s[1:]):
        if t0 <= when <= t1:
            return f0 + (f1 - f0) * (when - t0) / (t1 - t0) if t1 > t0 else f1
    return s[-1][1] if when > s[-1][0] else s[0][1]

all_copying = max(next(t for t, f, _ in samples[d] if f > 0) for d in disks)
first_done = min(min(done.values()), min(next((t for t, f, total in samples[d] if f >= total), float("inf")) for d in disks))
w0, w1 = all_copying + 2, first_done - 1
if w1 - w0 < 2:
    sys.exit(f"steady window too short: {w1 - w0:.1f} s")
x = [(at(d, w1) - at(d, w0)) / (w1 - w0) for d in disks]
exp = expected()
norm = [xi / e for xi, e in zip(x, exp)] if budget else x   # no budget: equal weights, so x itself
jain = sum(norm) ** 2 / (n * sum(v * v for v in norm))
aggregate = sum(x)
start = min(next(t for t, f, _ in samples[d] if f > 0) for d in disks)
total = sum(samples[d][-1][2] for d in disks)
whole = total / (max(done.values()) - start)
with open(out, "a") as f:
    for d, xi, e in zip(disks, x, exp):
        f.write(f"{label}\t{rep}\t{d}\t{xi:.0f}\t{'' if e is None else f'{e:.0f}'}\n")
ratio = lambda v: f"{v / budget:.3f}" if budget else "-"
print(f"{label}\t{rep}\t{n}\t{budget}\t{aggregate:.0f}\t{ratio(aggregate)}\t{jain:.4f}\t{whole:.0f}\t{ratio(whole)}\t{w1 - w0:.1f}")
