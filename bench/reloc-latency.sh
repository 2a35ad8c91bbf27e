#!/usr/bin/env bash
# Latency of 4 KiB guest reads on a relocating proxy behind the WAN link emulator (serve <- wanlink <- proxy),
# timed one by one with libnbd (bench/read_latency.py): reads of blocks not yet local (misses) and of blocks
# read before (local), (a) with prefetch on, its background copy filling the link, and (b) with --prefetch off
# (idle link). A fresh proxy (image, state) per run; runs interleaved on/off; REPS of each.
# The proxy must still be relocating when the last read is done (checked: the run fails otherwise).
# Usage: bench/reloc-latency.sh     env: RTT=50ms RATE=40MB/s QUEUE=100ms SIZE=1G REPS=3 MISSES=150 LOCAL_PER_MISS=5 SKIP_BUILD=0 KEEP=0
set -euo pipefail
source "$(dirname "$0")/lib.sh"
RTT=${RTT:-50ms}; RATE=${RATE:-40MB/s}; QUEUE=${QUEUE:-100ms}; SIZE=${SIZE:-1G}; REPS=${REPS:-3}
MISSES=${MISSES:-150}; LOCAL_PER_MISS=${LOCAL_PER_MISS:-5}
bench_init reloc-latency

SRC=${SRC_IMG:-${TMPDIR:-/tmp}/reloc-bench-src-$SIZE.img}
make_random_image "$SRC" "$SIZE"
SPORT=$(free_port)
start_serve source "$SPORT" "disk=$SRC:ro"
SAMPLES=$OUT/reloc-latency.samples.tsv PROG=$OUT/reloc-latency.progress.tsv
: > "$SAMPLES"; printf 'label\trep\tstate\tlocal_MiB\trate_MBps\twindow\n' > "$PROG"
for rep in $(seq "$REPS"); do
  for prefetch in on off; do
    WPORT=$(free_port); PPORT=$(free_port)
    start_wanlink wan "$WPORT" "$SPORT" "$RTT" "$RATE" "$QUEUE"; WPID=$SPAWNED
    rm -rf "$WORK/state" "$WORK/dst.img"
    start_proxy proxy "$PPORT" "$WORK/dst.img" "nbd://127.0.0.1:$WPORT/disk" "$WORK/state" --prefetch "$prefetch"
    wait_proxy_listening proxy "$PPORT"
    $PY "$BENCH_DIR/read_latency.py" "nbd://127.0.0.1:$PPORT/disk" "prefetch-$prefetch" "$rep" "$SAMPLES" "$MISSES" "$LOCAL_PER_MISS" "$rep"
    last=$(tail -1 "$WORK/proxy.jsonl" | cut -f2)
    stop "$PROXY_PID" "$WPID"
    $PY - "$last" "prefetch-$prefetch" "$rep" >> "$PROG" <<'EOF'
import json, sys
j = json.loads(sys.argv[1])
print(f"{sys.argv[2]}\t{sys.argv[3]}\t{j['state']}\t{j['local_bytes']/2**20:.0f}\t{j['rate_bps']/1e6:.2f}\t{j['prefetch_window']}")
EOF
    [[ $last == *'"state":"relocating"'* ]] || { log "the proxy completed before the reads ended: misses not measured under load"; exit 1; }
    log "prefetch $prefetch rep $rep: at the last read $(tail -1 "$PROG")"
  done
done

RUNS=$OUT/reloc-latency.runs.tsv SUM=$OUT/reloc-latency.summary.tsv
$PY - "$SAMPLES" "$RUNS" "$SUM" "${RTT%ms}" <<'EOF'
import sys, statistics as st, collections
samples, runs_out, sum_out, rtt = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
rows = [l.rstrip("\n").split("\t") for l in open(samples)][1:]
by = collections.defaultdict(list)
for r in rows: by[(r[0], r[2], r[1])].append(float(r[5]))
def p(v, q):  # nearest-rank percentile
    v = sorted(v); return v[min(len(v) - 1, max(0, int(round(q / 100 * len(v) + 0.5)) - 1))]
runs = collections.defaultdict(list)
with open(runs_out, "w") as f:
    f.write("label\tkind\trep\tn\tmedian_ms\tp99_ms\tmin_ms\tmax_ms\tbelow_rtt\n")
    for (label, kind, rep), v in sorted(by.items()):
        row = (len(v), st.median(v), p(v, 99), min(v), max(v), sum(x < rtt for x in v))
        runs[(label, kind)].append(row)
        f.write(f"{label}\t{kind}\t{rep}\t{row[0]}\t{row[1]:.3f}\t{row[2]:.3f}\t{row[3]:.3f}\t{row[4]:.3f}\t{row[5]}\n")
with open(sum_out, "w") as f:
    f.write("label\tkind\tmedian_ms\tp99_ms\tmedian_runs\tp99_runs\tbelow_rtt\tn\n")
    for (label, kind), rs in sorted(runs.items()):
        f.write(f"{label}\t{kind}\t{st.median(r[1] for r in rs):.3f}\t{st.median(r[2] for r in rs):.3f}\t"
                f"{'/'.join(f'{r[1]:.2f}' for r in rs)}\t{'/'.join(f'{r[2]:.2f}' for r in rs)}\t{sum(r[5] for r in rs)}\t{sum(r[0] for r in rs)}\n")
# CDFs (all reps pooled) for the plots
for kind in ("miss", "local"):
    with open(f"{sum_out}.cdf-{kind}.tsv", "w") as f:
        f.write("series\tlatency_ms\tpercentile\n")
        for label in sorted({k[0] for k in by}):
            v = sorted(x for (l, k, _), xs in by.items() if l == label and k == kind for x in xs)
            for i, x in enumerate(v):
                f.write(f"{label}\t{x:.3f}\t{100 * (i + 1) / len(v):.2f}\n")
EOF
cat "$PROG"; echo; cat "$RUNS"; echo; cat "$SUM"
plot line --in "$SUM.cdf-miss.tsv" --out "$IMG_DIR/reloc-latency-miss.png" --x latency_ms --y percentile --series series \
  --title "4 KiB reads of missing blocks, RTT $RTT, $RATE (all reps): CDF" --xlabel 'latency (ms)' --ylabel 'percentile' --legend LowerRight
plot line --in "$SUM.cdf-local.tsv" --out "$IMG_DIR/reloc-latency-local.png" --x latency_ms --y percentile --series series \
  --title "4 KiB reads of local blocks during relocation (all reps): CDF" --xlabel 'latency (ms)' --ylabel 'percentile' --legend LowerRight
