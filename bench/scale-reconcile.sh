#!/usr/bin/env bash
# Issue 13 goal 6: the coordinator's reconcile round as the disks grow, on a real cluster and over its pure core.
#   site-a (started first: the oldest member, so the coordinator singleton runs there) and site-b, loopback, SQLite.
#   Disks are created at site-b through the API (sparse, 1 GiB, C at a time), so every round's largest list crosses
#   remoting. For each level of LEVELS (cumulative: 0, then up to 10, 100 ...), after SETTLE s, REPS windows of W s:
#   from site-a's /metrics (the counters MigrationCoordinator reports: reloc_coordinator_reconcile_rounds_total,
#   _copies_total, _duration_seconds, _judge_duration_seconds, reloc_coordinator_messages_total by direction and
#   kind), the CPU time of each process (/proc/PID/stat utime+stime), and the bytes site-a's remoting connections
#   received and sent (ss -ti bytes_received/bytes_acked of the TCP connections between the two remoting ports).
#   Per round = window delta / rounds in the window; CPU and bytes also less the level-0 rate (the idle cluster's
#   heartbeats and gossip) so what is left is the round's.
# Then bench/Reloc.Bench.Reconcile (the pure core, no cluster) for CORE_DISKS, and the plots.
# Usage: bench/scale-reconcile.sh   env: PLOTS_ONLY=1 (redraw from $OUT) LEVELS="0 10 100 300 1000" REPS=3 W=20 SETTLE=4 C=8 INTERVAL=2s
#                                        CORE_DISKS=10,100,300,1000,3000,10000 SKIP_BUILD=0 KEEP=0
# Files in $OUT: scale-reconcile.windows.tsv (every window), scale-reconcile.summary.tsv (medians per level),
# scale-reconcile.core.tsv; plots docs/img/scale-reconcile-cpu.png, scale-reconcile-bytes.png.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
LEVELS=${LEVELS:-"0 10 100 300 1000"}; REPS=${REPS:-3}; W=${W:-20}; SETTLE=${SETTLE:-4}; C=${C:-8}; INTERVAL=${INTERVAL:-2s}
CORE_DISKS=${CORE_DISKS:-10,100,300,1000,3000,10000}
bench_init scale-reconcile
WIN=$OUT/scale-reconcile.windows.tsv; CORE=$OUT/scale-reconcile.core.tsv; SUM=$OUT/scale-reconcile.summary.tsv
LONG=$WORK/plot-cpu.tsv; LONGB=$WORK/plot-bytes.tsv
# PLOTS_ONLY=1: the summary and plots again from the TSV files in $OUT.
if [ "${PLOTS_ONLY:-0}" != 1 ]; then
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  dotnet build -c Release -nologo -v q "$BENCH_DIR/Reloc.Bench.Reconcile" >> "$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; exit 1; }
fi
M="$PY $BENCH_DIR/mgmt.py"
cp "$ROOT/hocon/reloc.conf" "$WORK/reloc.conf"
AA=$(free_port) AB=$(free_port) NA=$(free_port) NB=$(free_port) MA=$(free_port) MB=$(free_port)
SEEDS="\"akka.tcp://reloc@127.0.0.1:$AA\""
site_conf site-a "$AA" "$NA" "$MA" "127.0.0.1:$NA" "$SEEDS" "reloc.coordinator.reconcile-interval = $INTERVAL"
site_conf site-b "$AB" "$NB" "$MB" "127.0.0.1:$NB" "$SEEDS" "reloc.coordinator.reconcile-interval = $INTERVAL"
spawn site-a dotnet "$NODE" --config "$WORK/site-a.conf"; PA=$SPAWNED
wait_for "$WORK/site-a.out" 'reloc-node: site' 240
spawn site-b dotnet "$NODE" --config "$WORK/site-b.conf"; PB=$SPAWNED
wait_for "$WORK/site-b.out" 'reloc-node: site' 240
until $M "127.0.0.1:$MA" cluster.show 2>/dev/null | grep -q '"site": "site-b", "reachable": true'; do sleep 0.2; done
until $M "127.0.0.1:$MA" relocation.list > /dev/null 2>&1; do sleep 0.2; done
$M "127.0.0.1:$MA" cluster.show | grep -q "\"coordinator\": \"akka.tcp://reloc@127.0.0.1:$AA\"" || { log "the coordinator is not on site-a"; exit 1; }

# sample: one line of every figure the windows difference, now.
sample() {
  $PY - "127.0.0.1:$MA" "$PA" "$PB" "$AA" "$AB" <<'PYEOF'
import re, subprocess, sys, time, urllib.request
addr, pa, pb, aa, ab = sys.argv[1:]
text = urllib.request.urlopen(f"http://{addr}/metrics", timeout=30).read().decode()
def metric(name, **labels):
    total = 0.0
    for l in text.splitlines():
        m = re.match(r'^' + name + r'(\{([^}]*)\})?\s+(\S+)', l)
        if m and all(f'{k}="{v}"' in (m[2] or "") for k, v in labels.items()):
            total += float(m[3])
    return total
cpu = lambda pid: sum(int(v) for v in open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[11:13]) / 100
# site-a's ends of its remoting connections with site-b: inbound (local port AA) and outbound (to AB, local port not AB).
ss = subprocess.run(["ss", "-tinH", "state", "established"], capture_output=True, text=True).stdout.split("\n")
recv = sent = 0
for head, info in zip(ss, ss[1:]):
    f = head.split()
    if len(f) < 4: continue
    local, peer = f[2].rsplit(":", 1)[1], f[3].rsplit(":", 1)[1]
    if (local == aa and peer != ab) or (peer == ab and local != aa):
        r = re.search(r"bytes_received:(\d+)", info); s = re.search(r"bytes_acked:(\d+)", info)
        recv += int(r[1]) if r else 0; sent += int(s[1]) if s else 0
c = lambda kind, d: metric("reloc_coordinator_messages_total", direction=d, kind=kind)
print("\t".join(str(v) for v in [time.time(), metric("reloc_coordinator_reconcile_rounds_total"), metric("reloc_coordinator_reconcile_copies_total"),
    metric("reloc_coordinator_reconcile_duration_seconds_sum"), metric("reloc_coordinator_reconcile_judge_duration_seconds_sum"),
    c("list-disks", "sent") + c("step", "sent"), c("disk-list", "received") + c("report", "received"), cpu(pa), cpu(pb), recv, sent]))
PYEOF
}

create_upto() {
  $PY - "127.0.0.1:$MA" "$1" "$2" "$C" <<'PYEOF'
import json, sys, urllib.request
from concurrent.futures import ThreadPoolExecutor
addr, lo, hi, c = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def create(i):
    body = json.dumps({"name": f"d{i:05d}", "site": "site-b", "size": 1 << 30}).encode()
    req = urllib.request.Request(f"http://{addr}/api/v1/disks", data=body, method="POST", headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r: r.read()
with ThreadPoolExecutor(c) as pool: list(pool.map(create, range(lo, hi)))
PYEOF
}

printf 'disks\trep\tseconds\trounds\tcopies_per_round\tround_ms\tjudge_ms\tsent_per_round\treceived_per_round\tcpu_a_ms_per_round\tcpu_b_ms_per_round\trecv_bytes_per_round\tsent_bytes_per_round\tload\n' > "$WIN"
have=0
for level in $LEVELS; do
  if [ "$level" -gt "$have" ]; then t0=$EPOCHREALTIME; create_upto "$have" "$level"; have=$level
    log "$level disks at site-b (created in $($PY -c "print(f'{$EPOCHREALTIME-$t0:.1f}')") s)"; fi
  sleep "$SETTLE"
  for rep in $(seq "$REPS"); do
    s0=$(sample); sleep "$W"; s1=$(sample)
    $PY - "$level" "$rep" "$(cut -d' ' -f1 /proc/loadavg)" "$s0" "$s1" >> "$WIN" <<'PYEOF'
import sys
level, rep, load = sys.argv[1:4]
a, b = ([float(v) for v in s.split("\t")] for s in sys.argv[4:6])
d = [y - x for x, y in zip(a, b)]
secs, rounds = d[0], d[1]
per = lambda v, k=1: f"{v * k / rounds:.2f}" if rounds else "-"
print(f"{level}\t{rep}\t{secs:.1f}\t{rounds:.0f}\t{per(d[2])}\t{per(d[3], 1e3)}\t{per(d[4], 1e3)}\t{per(d[5])}\t{per(d[6])}\t{per(d[7], 1e3)}\t{per(d[8], 1e3)}\t{per(d[9])}\t{per(d[10])}\t{load}")
PYEOF
    log "$(tail -1 "$WIN")"
  done
done
log "RSS at the end: site-a $(awk '/VmRSS/ {print $2/1024}' /proc/$PA/status) MiB, site-b $(awk '/VmRSS/ {print $2/1024}' /proc/$PB/status) MiB"
stop "$PB" "$PA"

dotnet "$BENCH_DIR/Reloc.Bench.Reconcile/bin/Release/net10.0/reloc-bench-reconcile.dll" --disks "$CORE_DISKS" > "$CORE"
fi

$PY - "$WIN" "$CORE" "$SUM" "$LONG" "$LONGB" <<'PYEOF'
import sys, statistics as st, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
head, rows = rows[0], rows[1:]
by = collections.defaultdict(list)
for r in rows: by[int(r[0])].append(dict(zip(head, r)))
def m(rs, k):
    v = [float(r[k]) for r in rs if r[k] != "-"]
    return st.median(v) if v else float("nan")
base = by.get(0)
# The idle cluster's rate (level 0), per round: what every window holds besides the rounds themselves.
bcpu_a, bcpu_b, brecv = (m(base, k) for k in ("cpu_a_ms_per_round", "cpu_b_ms_per_round", "recv_bytes_per_round")) if base else (0, 0, 0)
cols = ["copies_per_round", "round_ms", "judge_ms", "sent_per_round", "received_per_round", "cpu_a_ms_per_round", "cpu_b_ms_per_round", "recv_bytes_per_round", "sent_bytes_per_round"]
with open(sys.argv[3], "w") as out, open(sys.argv[4], "w") as cpu, open(sys.argv[5], "w") as byt:
    out.write("disks\trounds_per_window\t" + "\t".join(cols) + "\tcpu_a_over_idle_ms\tcpu_b_over_idle_ms\trecv_over_idle_bytes\twindows\n")
    cpu.write("disks\tseries\tms\n"); byt.write("disks\tseries\tKiB\n")
    for level, rs in sorted(by.items()):
        v = {k: m(rs, k) for k in cols}
        ca, cb, rb = v["cpu_a_ms_per_round"] - bcpu_a, v["cpu_b_ms_per_round"] - bcpu_b, v["recv_bytes_per_round"] - brecv
        out.write(f"{level}\t{m(rs, 'rounds'):.0f}\t" + "\t".join(f"{v[k]:.2f}" for k in cols) + f"\t{ca:.2f}\t{cb:.2f}\t{rb:.0f}\t{len(rs)}\n")
        # Plotted: the levels whose rounds saw every site's disks (above the frame size a round sees none of site-b's).
        if level and v["copies_per_round"] >= level * 0.99:
            cpu.write(f"{level}\tround, ask to judged (cluster, median)\t{v['round_ms']:.3f}\n")
            cpu.write(f"{level}\tjudging on the coordinator's actor (cluster)\t{v['judge_ms']:.3f}\n")
            byt.write(f"{level}\tremoting bytes site-a received per round, over idle (cluster)\t{max(rb, 1) / 1024:.2f}\n")
    core = [l.rstrip("\n").split("\t") for l in open(sys.argv[2])]
    ch, core = core[0], core[1:]
    for r in core:
        d = dict(zip(ch, r))
        cpu.write(f"{d['disks']}\tpure core, 3 sites, 100 relocating (median)\t{float(d['core_us_p50']) / 1e3:.3f}\n")
        cpu.write(f"{d['disks']}\tserialize + deserialize the 3 lists\t{(float(d['serialize_us_p50']) + float(d['deserialize_us_p50'])) / 1e3:.3f}\n")
        byt.write(f"{d['disks']}\tthe 3 lists serialized (pure)\t{int(d['list_bytes']) / 1024:.2f}\n")
PYEOF
plot line --in "$LONG" --out "$IMG_DIR/scale-reconcile-cpu.png" --x disks --y ms --series series --logx --logy --legend UpperLeft \
  --title "Reconcile round: time per round vs disks" --xlabel "disks" --ylabel "ms per round" 2>&1 | tail -1 || log "cpu plot failed"
plot line --in "$LONGB" --out "$IMG_DIR/scale-reconcile-bytes.png" --x disks --y KiB --series series --logx --logy --legend UpperLeft \
  --hline "125=Akka.Remote maximum-frame-size (128000 B): one site's list" \
  --title "Reconcile round: bytes per round vs disks" --xlabel "disks" --ylabel "KiB per round" 2>&1 | tail -1 || log "bytes plot failed"
cat "$WIN"; echo; cat "$SUM"; echo; cat "$CORE"
