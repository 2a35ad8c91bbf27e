#!/usr/bin/env bash
# Diagnostic for the mail benchmark: how much background copy a relocating proxy keeps up while a guest
# misses at random. Per run a fresh proxy (prefetch on) behind the WAN link emulator (RTT, RATE), and for
# DURATION seconds either no client (idle) or fio 4 KiB random reads at QD1 over the whole disk (about 18
# misses a second), with the relocation block size 64 KiB (default) or 256 KiB (= the prefetch chunk, so
# every background read has the same size). Reports the medians of the proxy's per-second rate_bps and
# prefetch_window, and what was local after DURATION. Runs interleaved, REPS of each.
# Usage: bench/reloc-prefetch-misses.sh   env: RTT=50ms RATE=40MB/s QUEUE=100ms SIZE=1G DURATION=20 REPS=2 SKIP_BUILD=0 KEEP=0
set -euo pipefail
source "$(dirname "$0")/lib.sh"
RTT=${RTT:-50ms}; RATE=${RATE:-40MB/s}; QUEUE=${QUEUE:-100ms}; SIZE=${SIZE:-1G}; DURATION=${DURATION:-20}; REPS=${REPS:-2}
CONFIGS=${CONFIGS:-"idle/64KiB randread/64KiB randread/256KiB idle/256KiB"}
bench_init reloc-prefetch-misses

SRC=${SRC_IMG:-${TMPDIR:-/tmp}/reloc-bench-src-$SIZE.img}
make_random_image "$SRC" "$SIZE"
SPORT=$(free_port)
start_serve source "$SPORT" "disk=$SRC:ro"
RUNS=$OUT/reloc-prefetch-misses.runs.tsv
printf 'workload\tblock\trep\tlocal_MiB\trate_median_MBps\twindow_median\ton_demand\tiops\n' > "$RUNS"
for rep in $(seq "$REPS"); do
  for config in $CONFIGS; do
    workload=${config%/*} block=${config#*/}
    WPORT=$(free_port); PPORT=$(free_port)
    start_wanlink wan "$WPORT" "$SPORT" "$RTT" "$RATE" "$QUEUE"; WPID=$SPAWNED
    rm -rf "$WORK/state" "$WORK/dst.img" "$WORK/fio.json"
    start_proxy proxy "$PPORT" "$WORK/dst.img" "nbd://127.0.0.1:$WPORT/disk" "$WORK/state" --block-size "$block"
    wait_proxy_listening proxy "$PPORT"
    if [ "$workload" = idle ]; then
      sleep "$DURATION"
    else
      fio --name=misses --ioengine=nbd --uri="nbd://127.0.0.1:$PPORT/disk" --rw=randread --bs=4k --iodepth=1 --size="$SIZE" \
          --time_based --runtime="$DURATION" --norandommap --randseed="$rep" --output-format=json --output="$WORK/fio.json" > /dev/null
    fi
    stop "$PROXY_PID" "$WPID"
    $PY - "$WORK/proxy.jsonl" "$WORK/fio.json" "$workload" "$block" "$rep" >> "$RUNS" <<'EOF'
import json, os, statistics as st, sys
rows = [json.loads(l.split("\t", 1)[1]) for l in open(sys.argv[1])]
busy = [j for j in rows if j["state"] == "relocating" and j["local_bytes"] > 0][1:]
iops = "-"
if os.path.exists(sys.argv[2]):
    j = json.load(open(sys.argv[2]))["jobs"][0]
    iops = f"{j['read']['iops']:.1f}"
print(f"{sys.argv[3]}\t{sys.argv[4]}\t{sys.argv[5]}\t{rows[-1]['local_bytes'] / 2**20:.0f}\t{st.median(x['rate_bps'] for x in busy) / 1e6:.1f}"
      f"\t{st.median(x['prefetch_window'] for x in busy):g}\t{rows[-1]['on_demand_fetches']}\t{iops}")
EOF
    log "$(tail -1 "$RUNS")"
  done
done
SUM=$OUT/reloc-prefetch-misses.summary.tsv
$PY - "$RUNS" > "$SUM" <<'EOF'
import sys, statistics as st, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
by = collections.defaultdict(list)
for r in rows: by[(r[0], r[1])].append(r)
print("workload\tblock\tlocal_MiB\trate_median_MBps\twindow_median\trate_runs\twindow_runs\tn")
for (w, b), rs in by.items():
    m = lambda k: st.median(float(r[k]) for r in rs)
    print(f"{w}\t{b}\t{m(3):.0f}\t{m(4):.1f}\t{m(5):g}\t{'/'.join(r[4] for r in rs)}\t{'/'.join(r[5] for r in rs)}\t{len(rs)}")
EOF
cat "$RUNS"; echo; cat "$SUM"
