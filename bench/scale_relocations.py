"""Starts N relocations at once among the sites and follows them to the end (issue 13 goal 6).

usage: scale_relocations.py PLAN BUDGET_BPS PIDS OUT_PREFIX REP
  PLAN: TSV lines "disk<TAB>from<TAB>to<TAB>mgmt address of the destination"; the first site's address takes the requests.
  BUDGET_BPS: the budget of each site pair (reloc.links); each pair carries one direction here.
  PIDS: "site<TAB>pid" lines (CPU and RSS read from /proc).
Asks every relocation at once (one thread each), then scrapes each destination's /metrics every 0.5 s
(reloc_relocation_bytes_fetched_bytes per disk: the destination's fetched bytes) until the events API shows a
`completed` event for every disk (a `cancelled` or `stalled` one counts as a failure). Steady window: from 2 s after
every relocation has fetched something to 1 s before the first one is done. x_i = fetched bytes in the window / its
length; expected_i = its pair's budget / the relocations on that pair (equal weights); Jain over x_i / expected_i.
Prints one TSV row: rep n pairs budget_Bps aggregate_Bps aggregate/(pairs*budget) jain whole_s ideal_s whole/ideal
dur_p50 dur_p99 dur_max failures window_s ask_s duplicate_completed dur_min last_first_byte_s busy_util busy_jain busy_s (see below); then per-process lines to OUT_PREFIX.procs.tsv and durations to
OUT_PREFIX.durations.tsv.
"""
import json, re, sys, time, urllib.request
from concurrent.futures import ThreadPoolExecutor
sys.path.insert(0, __import__("os").path.dirname(__file__))
from mgmt import call

plan_file, budget, pids_file, prefix, rep = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
plan = [l.rstrip("\n").split("\t") for l in open(plan_file) if l.strip()]
disks = [p[0] for p in plan]
pair = {p[0]: (p[1], p[2]) for p in plan}
dest_addr = sorted({p[3] for p in plan})
entry = dest_addr[0]
pids = dict(l.rstrip("\n").split("\t") for l in open(pids_file) if l.strip())
TICK = 100  # clock ticks per second (USER_HZ)

def cpu_s(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK

def status(pid, key):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith(key + ":"):
            return int(l.split()[1]) * 1024
    return 0

cpu0 = {s: cpu_s(p) for s, p in pids.items()}
rss0 = {s: status(p, "VmRSS") for s, p in pids.items()}
rss_max = dict(rss0)

t_ask = time.time()
def ask(p):
    try:
        call(entry, "relocate", {"disk": p[0], "to": p[2], "mode": "postcopy"})
        return None
    except (RuntimeError, OSError) as e:
        return f"{p[0]}: {e}"
with ThreadPoolExecutor(len(plan)) as pool:
    refused = [r for r in pool.map(ask, plan) if r]
t_asked = time.time()
for r in refused:
    print(f"refused: {r}", file=sys.stderr)

LINE = re.compile(r'^reloc_relocation_bytes_(fetched|total)_bytes\{([^}]*)\}\s+(\S+)')
def scrape(addr):
    out = {}
    text = urllib.request.urlopen(f"http://{addr}/metrics", timeout=30).read().decode()
    for l in text.splitlines():
        m = LINE.match(l)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m[2]))
            out.setdefault(labels.get("disk"), {})[m[1]] = float(m[3])
    return out

samples = {d: [] for d in disks}   # (t, fetched)
totals = {}
completed, failed = {}, {}
completions = {}   # disk -> ids of the completed events seen (more than one: the coordinator announced it twice)
deadline = time.time() + 1800
while len(completed) + len(failed) < len(disks) and time.time() < deadline:
    t = time.time()
    for addr in dest_addr:
        try:
            for d, v in scrape(addr).items():
                if d in samples and "fetched" in v:
                    samples[d].append((t, v["fetched"]))
                    totals[d] = v.get("total", 0)
        except OSError:
            pass
    try:
        events = json.loads(urllib.request.urlopen(f"http://{entry}/api/v1/events?newest=true&limit=5000", timeout=30).read())["events"]
        for e in events:
            if e["disk"] in pair and e["kind"] == "completed" and e["toSite"] == pair[e["disk"]][1]:
                completed.setdefault(e["disk"], e)   # oldest first: the first one
                completions.setdefault(e["disk"], set()).add(e["id"])
            elif e["disk"] in pair and e["kind"] in ("cancelled", "stalled"):
                failed[e["disk"]] = e
    except (RuntimeError, OSError):
        pass
    for s, p in pids.items():
        rss_max[s] = max(rss_max[s], status(p, "VmRSS"))
    time.sleep(0.5)
t_end = time.time()
cpu1 = {s: cpu_s(p) for s, p in pids.items()}
hwm = {s: status(p, "VmHWM") for s, p in pids.items()}
missing = [d for d in disks if d not in completed and d not in failed]

def at(d, when):
    s = samples[d]
    for (t0, f0), (t1, f1) in zip(s, s[1:]):
        if t0 <= when <= t1:
            return f0 + (f1 - f0) * (when - t0) / (t1 - t0) if t1 > t0 else f1
    return s[-1][1] if when > s[-1][0] else s[0][1]

def first_byte(d):
    return next((t for t, f in samples[d] if f > 0), float("inf"))

def done_at(d):
    full = next((t for t, f in samples[d] if totals.get(d) and f >= totals[d] * 0.999), float("inf"))
    return full

pairs = sorted({pair[d] for d in disks})
on_pair = {p: sum(1 for d in disks if pair[d] == p) for p in pairs}
fetched_total = sum(samples[d][-1][1] for d in disks if samples[d])
ideal = fetched_total / (budget * len(pairs))
# The events' times (UTC ISO) as epoch seconds.
def epoch(iso):
    from datetime import datetime
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
# Each relocation's duration: from the asks (all within ask_s) to its first completed event.
durs = sorted(epoch(e["time"]) - t_ask for e in completed.values())
duplicates = sum(len(ids) - 1 for ids in completions.values())
last_end = max(epoch(e["time"]) for e in completed.values()) if completed else t_end
whole_s = last_end - t_ask
q = lambda p: durs[min(len(durs) - 1, int(p * len(durs)))] if durs else float("nan")

all_copying = max(first_byte(d) for d in disks)
first_done = min(min(epoch(e["time"]) for e in completed.values()) if completed else t_end, min(done_at(d) for d in disks))
w0, w1 = all_copying + 2, first_done - 1
if w1 - w0 >= 2 and all(samples[d] for d in disks):
    x = {d: (at(d, w1) - at(d, w0)) / (w1 - w0) for d in disks}
    norm = [x[d] / (budget / on_pair[pair[d]]) for d in disks]
    jain = sum(norm) ** 2 / (len(norm) * sum(v * v for v in norm))
    aggregate = sum(x.values())
    agg_s, jain_s, win_s = f"{aggregate:.0f}", f"{jain:.4f}", f"{w1 - w0:.1f}"
    ratio_s = f"{aggregate / (budget * len(pairs)):.3f}"
else:
    agg_s = jain_s = ratio_s = "-"; win_s = f"{w1 - w0:.1f}"
    print(f"steady window too short: {w1 - w0:.1f} s", file=sys.stderr)

# Relocations do not all start copying at once (each relocate request is its own ask of every site's disks), so
# the steady window above can be short or empty. Per time slice instead (between two scrapes): on each pair with a
# relocation copying (fetched some, not all), the pair's rate / its budget, and Jain's index of the copying ones'
# rates; "busy" = the slices in which every pair had one copying. Time-weighted means over the busy slices.
grid = sorted({t for d in disks for t, _ in samples[d]})
busy_t = util_w = jain_w = 0.0
for t0, t1 in zip(grid, grid[1:]):
    if t1 - t0 <= 0: continue
    rates = {p: [] for p in pairs}
    for d in disks:
        if not samples[d]: continue
        f0, f1 = at(d, t0), at(d, t1)
        last = samples[d][-1][1]   # its last fetched count: the holes are never fetched
        if f0 > 0 and f0 < last * 0.999:
            rates[pair[d]].append((f1 - f0) / (t1 - t0))
    if all(rates[p] for p in pairs):
        dt = t1 - t0
        busy_t += dt
        util_w += dt * sum(sum(r) for r in rates.values()) / (budget * len(pairs))
        js = [sum(r) ** 2 / (len(r) * sum(v * v for v in r)) if sum(v * v for v in r) > 0 else 1.0 for r in rates.values()]
        jain_w += dt * sum(js) / len(js)
busy_util = f"{util_w / busy_t:.3f}" if busy_t else "-"
busy_jain = f"{jain_w / busy_t:.4f}" if busy_t else "-"
with open(prefix + ".samples.tsv", "a") as f:
    for d in disks:
        for t, v in samples[d]:
            f.write(f"{rep}\t{d}\t{pair[d][0]}\t{pair[d][1]}\t{t - t_ask:.2f}\t{v:.0f}\t{totals.get(d, 0):.0f}\n")

with open(prefix + ".durations.tsv", "a") as f:
    for d, e in completed.items():
        f.write(f"{rep}\t{d}\t{pair[d][0]}\t{pair[d][1]}\t{epoch(e['time']) - t_ask:.2f}\t{e.get('durationSeconds')}\t{e.get('fetchedBytes')}\t{e.get('skippedBytes')}\t{len(completions[d])}\t{first_byte(d) - t_ask:.2f}\n")
with open(prefix + ".procs.tsv", "a") as f:
    for s in pids:
        f.write(f"{rep}\t{s}\t{cpu1[s] - cpu0[s]:.1f}\t{(cpu1[s] - cpu0[s]) / (t_end - t_ask):.2f}\t{rss0[s] >> 20}\t{rss_max[s] >> 20}\t{hwm[s] >> 20}\n")
for d in failed:
    print(f"failed: {d}: {failed[d]['kind']} {failed[d].get('detail')}", file=sys.stderr)
for d in missing:
    print(f"not done in time: {d}", file=sys.stderr)
failures = len(refused) + len(failed) + len(missing)
print(f"{rep}\t{len(disks)}\t{len(pairs)}\t{budget}\t{agg_s}\t{ratio_s}\t{jain_s}\t{whole_s:.1f}\t{ideal:.1f}\t{whole_s / ideal:.3f}"
      f"\t{q(0.5):.1f}\t{q(0.99):.1f}\t{durs[-1] if durs else float('nan'):.1f}\t{failures}\t{win_s}\t{t_asked - t_ask:.1f}"
      f"\t{duplicates}\t{min(durs) if durs else float('nan'):.1f}\t{max(first_byte(d) for d in disks) - t_ask:.1f}"
      f"\t{busy_util}\t{busy_jain}\t{busy_t:.1f}")
