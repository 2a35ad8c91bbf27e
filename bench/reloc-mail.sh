#!/usr/bin/env bash
# Mail-server-like workload (Postmark-style: small random synchronous reads and writes) on a disk being
# relocated over the WAN link emulator, against the same disk served locally:
#   fio --ioengine=nbd --rw=randrw --rwmixread=50 --bs=4k --iodepth=1 --fsync=1 (a FLUSH after every write),
#   time-based, RUNTIME seconds, over the whole disk, started as soon as the export answers.
# Configurations (runs interleaved, REPS of each, a fresh proxy image and state every run):
#   prefetch-on   proxy relocating from serve through wanlink (RTT, RATE), background copy on
#   prefetch-off  the same with --prefetch off: blocks come only on demand
#   local         reloc-node serve of a writable copy of the image, no WAN
# IOPS are reads+writes per second over the whole run (fio's figures); the per-second IOPS log and, for
# prefetch-on, the moment the relocation completed are kept for the plot.
# Usage: bench/reloc-mail.sh        env: RTT=50ms RATE=40MB/s QUEUE=100ms SIZE=1G RUNTIME=30 REPS=3 SKIP_BUILD=0 KEEP=0
set -euo pipefail
source "$(dirname "$0")/lib.sh"
RTT=${RTT:-50ms}; RATE=${RATE:-40MB/s}; QUEUE=${QUEUE:-100ms}; SIZE=${SIZE:-1G}; RUNTIME=${RUNTIME:-30}; REPS=${REPS:-3}
CONFIGS=${CONFIGS:-"prefetch-on prefetch-off local"}
bench_init reloc-mail

SRC=${SRC_IMG:-${TMPDIR:-/tmp}/reloc-bench-src-$SIZE.img}
make_random_image "$SRC" "$SIZE"
cp "$SRC" "$WORK/local.img"
SPORT=$(free_port) LPORT=$(free_port)
start_serve source "$SPORT" "disk=$SRC:ro"
start_serve local "$LPORT" "disk=$WORK/local.img"

RUNS=$OUT/reloc-mail.runs.tsv TL=$OUT/reloc-mail.iops.tsv
printf 'config\trep\tiops\tread_iops\twrite_iops\tread_p50_ms\tread_p99_ms\twrite_p50_ms\twrite_p99_ms\tsync_p50_ms\tsync_p99_ms\tcomplete_s\tlocal_MiB_end\ton_demand\n' > "$RUNS"
printf 'config\trep\tt_s\tiops\n' > "$TL"
for rep in $(seq "$REPS"); do
  for config in $CONFIGS; do
    WPID="" PROXY_PID="" complete=- localmib=- ondemand=-
    if [ "$config" = local ]; then
      uri=nbd://127.0.0.1:$LPORT/disk
    else
      WPORT=$(free_port); PPORT=$(free_port)
      start_wanlink wan "$WPORT" "$SPORT" "$RTT" "$RATE" "$QUEUE"; WPID=$SPAWNED
      rm -rf "$WORK/state" "$WORK/dst.img"
      start_proxy proxy "$PPORT" "$WORK/dst.img" "nbd://127.0.0.1:$WPORT/disk" "$WORK/state" --prefetch "${config#prefetch-}"
      wait_proxy_listening proxy "$PPORT"
      uri=nbd://127.0.0.1:$PPORT/disk
    fi
    t0=$EPOCHREALTIME
    rm -f "$WORK"/fio_iops.*.log
    fio --name=mail --ioengine=nbd --uri="$uri" --rw=randrw --rwmixread=50 --bs=4k --iodepth=1 --fsync=1 \
        --size="$SIZE" --time_based --runtime="$RUNTIME" --norandommap --randseed="$rep" \
        --write_iops_log="$WORK/fio" --log_avg_msec=1000 --output-format=json --output="$WORK/fio.json" > /dev/null
    if [ -n "$PROXY_PID" ]; then
      cp "$WORK/proxy.jsonl" "$OUT/reloc-mail.$config.rep$rep.jsonl"
      read -r complete localmib ondemand < <($PY - "$WORK/proxy.jsonl" "$t0" <<'EOF'
import json, sys
rows = [(float(a), json.loads(b)) for a, b in (l.rstrip("\n").split("\t", 1) for l in open(sys.argv[1]))]
done = [t for t, j in rows if j["state"] == "complete"]
last = rows[-1][1]
print(f"{done[0] - float(sys.argv[2]):.1f}" if done else "-", f"{last['local_bytes'] / 2**20:.0f}", last["on_demand_fetches"])
EOF
)
      stop "$PROXY_PID" "$WPID"
    fi
    $PY - "$WORK/fio.json" "$config" "$rep" "$complete" "$localmib" "$ondemand" >> "$RUNS" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
def pct(s, q): return s["clat_ns"].get("percentile", {}).get(q, 0) / 1e6
def spct(q): return j.get("sync", {}).get("lat_ns", {}).get("percentile", {}).get(q, 0) / 1e6
r, w = j["read"], j["write"]
print(f"{sys.argv[2]}\t{sys.argv[3]}\t{r['iops'] + w['iops']:.1f}\t{r['iops']:.1f}\t{w['iops']:.1f}\t{pct(r, '50.000000'):.2f}\t{pct(r, '99.000000'):.2f}"
      f"\t{pct(w, '50.000000'):.2f}\t{pct(w, '99.000000'):.2f}\t{spct('50.000000'):.2f}\t{spct('99.000000'):.2f}\t{sys.argv[4]}\t{sys.argv[5]}\t{sys.argv[6]}")
EOF
    $PY - "$WORK" "$config" "$rep" >> "$TL" <<'EOF'
import collections, glob, sys
per = collections.Counter()
for path in glob.glob(f"{sys.argv[1]}/fio_iops.*.log"):
    for line in open(path):
        t, v = [x.strip() for x in line.split(",")[:2]]
        per[int(round(int(t) / 1000))] += int(v)
for s in sorted(per):
    print(f"{sys.argv[2]}\t{sys.argv[3]}\t{s}\t{per[s]}")
EOF
    log "$config rep $rep: $(tail -1 "$RUNS")"
  done
done

SUM=$OUT/reloc-mail.summary.tsv
$PY - "$RUNS" "$TL" > "$SUM" <<'EOF'
import sys, statistics as st, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
persec = collections.defaultdict(dict)
for l in list(open(sys.argv[2]))[1:]:
    c, rep, t, v = l.rstrip("\n").split("\t")
    persec[(c, rep)][int(t)] = float(v)
def relocating_iops(r):
    """Mean IOPS over the whole seconds before the relocation completed (the whole run if it did not)."""
    if r[0] == "local": return None
    secs = persec[(r[0], r[1])]
    end = float(r[11]) if r[11] != "-" else max(secs) + 1
    v = [x for t, x in secs.items() if t <= int(end)]
    return sum(v) / len(v) if v else None
by = collections.defaultdict(list)
for r in rows: by[r[0]].append(r)
local = st.median(float(r[2]) for r in by["local"]) if by.get("local") else None
print("config\tiops\tiops_runs\tvs_local\tiops_relocating\tread_p50_ms\twrite_p50_ms\tsync_p50_ms\tcomplete_s\tn")
for c, rs in by.items():
    m = lambda k: st.median(float(r[k]) for r in rs)
    rel = [x for x in (relocating_iops(r) for r in rs) if x is not None]
    done = [float(r[11]) for r in rs if r[11] != "-"]
    vs = f"{m(2) / local:.3f}" if local else "-"
    print(f"{c}\t{m(2):.1f}\t{'/'.join(r[2] for r in rs)}\t{vs}\t{st.median(rel) if rel else '-':.5}\t{m(5):.2f}\t{m(7):.2f}\t{m(9):.2f}\t"
          f"{st.median(done) if done else '-'}\t{len(rs)}")
EOF
cat "$RUNS"; echo; cat "$SUM"
plot bars --in "$SUM" --out "$IMG_DIR/reloc-mail-iops.png" --label config --value iops --decimals 0 \
  --title "4 KiB randrw 50/50, QD1, FLUSH after every write, ${RUNTIME} s: IOPS (median of $REPS)" --ylabel 'IOPS (reads + writes)'
plot line --in "$TL" --where rep=1 --out "$IMG_DIR/reloc-mail-timeline.png" --x t_s --y iops --series config --logy \
  --title "IOPS per second (rep 1); proxies relocating 1 GiB at $RATE, RTT $RTT" --xlabel 's since fio start' --ylabel 'IOPS (log scale)' --legend Right --width 900
