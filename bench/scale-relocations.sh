#!/usr/bin/env bash
# Issue 13 goal 6: N concurrent relocations among three site processes on one budget.
#   site-a, site-b, site-c (reloc-node --config, fresh data dirs, SQLite), each pair on the same reloc.links budget
#   (BUDGET per pair); disk i is created at site (i mod 3) from its own image and relocated to the next site
#   (a->b, b->c, c->a): each pair carries one direction, N/3 relocations on it. All N are asked at once (goal 5's
#   admission queue is not in this tree: nothing holds any back). WAN=1 puts each site's NBD behind its own
#   `reloc-node wanlink` (RTT, WAN_RATE) and advertises that, so every fetch crosses an emulated WAN.
# Each image: SIZE bytes, random data but for two holes (SIZE/8 at 1/4 and at 3/4): the hole scan elides them.
# bench/scale_relocations.py asks the relocations and follows them (each destination's /metrics, the events API);
# at the end every disk is compared byte for byte (cmp) at its new owner with its source image, and every disk must
# be owned by its destination with one copy left.
# Usage: bench/scale-relocations.sh   env: N=100 ADMISSION=off SIZE=32M BUDGET=20MB/s REPS=3 WAN=0 RTT=20ms WAN_RATE=40MB/s SKIP_BUILD=0 KEEP=0
# Prints per-run rows and medians (TSV); files in $OUT (artifacts/bench): scale-relocations.{runs,durations,procs,samples,slices}.tsv
set -euo pipefail
source "$(dirname "$0")/lib.sh"
N=${N:-100}; SIZE=${SIZE:-32M}; BUDGET=${BUDGET:-20MB/s}; REPS=${REPS:-3}; WAN=${WAN:-0}; RTT=${RTT:-20ms}; WAN_RATE=${WAN_RATE:-40MB/s}
bench_init scale-relocations
M="$PY $BENCH_DIR/mgmt.py"
BUDGET_BPS=$(rate_bps "$BUDGET")
SITES=(site-a site-b site-c)

# One image per disk (its own random content, so a mix-up between disks shows), kept across runs.
SRC=${TMPDIR:-/tmp}/reloc-bench-scale-src
mkdir -p "$SRC"
bytes=$(numfmt --from=iec "$SIZE"); hole=$((bytes / 8)); mib=$((1 << 20))
for i in $(seq 0 $((N - 1))); do
  img=$SRC/vm$i-$SIZE.img
  [ -f "$img" ] && [ "$(stat -c %s "$img")" = "$bytes" ] && continue
  head -c "$bytes" /dev/urandom > "$img.tmp"
  fallocate -p -o $((bytes / 4)) -l "$hole" "$img.tmp"
  fallocate -p -o $((bytes * 3 / 4)) -l "$hole" "$img.tmp"
  mv "$img.tmp" "$img"
done
log "$N source images of $SIZE in $SRC ($(du -sm "$SRC" | cut -f1) MiB allocated)"

RUNS=$OUT/scale-relocations.runs.tsv
printf 'rep\tn\tpairs\tbudget_Bps\taggregate_Bps\taggregate_ratio\tjain\twhole_s\tideal_s\twhole_ratio\tdur_p50_s\tdur_p99_s\tdur_max_s\tfailures\twindow_s\task_s\tduplicate_completed\tdur_min_s\tlast_first_byte_s\tbusy_util\tbusy_jain\tbusy_s\tload_before\tverified\n' > "$RUNS"
: > "$OUT/scale-relocations.durations.tsv"; : > "$OUT/scale-relocations.procs.tsv"; : > "$OUT/scale-relocations.samples.tsv"
cp "$ROOT/hocon/reloc.conf" "$WORK/reloc.conf"
links="reloc.links = [ { sites = [site-a, site-b], bandwidth = \"$BUDGET\" }, { sites = [site-b, site-c], bandwidth = \"$BUDGET\" }, { sites = [site-a, site-c], bandwidth = \"$BUDGET\" } ]"
for rep in $(seq "$REPS"); do
  rm -rf "$WORK"/site-?
  declare -A AK NB MG ADV PID
  for s in "${SITES[@]}"; do AK[$s]=$(free_port); NB[$s]=$(free_port); MG[$s]=$(free_port); ADV[$s]=${NB[$s]}; done
  SEEDS="\"akka.tcp://reloc@127.0.0.1:${AK[site-a]}\", \"akka.tcp://reloc@127.0.0.1:${AK[site-b]}\""
  WPIDS=()
  for s in "${SITES[@]}"; do
    if [ "$WAN" = 1 ]; then
      ADV[$s]=$(free_port)
      start_wanlink "wan-$s" "${ADV[$s]}" "${NB[$s]}" "$RTT" "$WAN_RATE" 100ms; WPIDS+=("$SPAWNED")
    fi
    site_conf "$s" "${AK[$s]}" "${NB[$s]}" "${MG[$s]}" "127.0.0.1:${ADV[$s]}" "$SEEDS" "reloc.site.import-dir = \"$SRC\"" "$links" \
      "reloc.coordinator.max-concurrent-relocations-per-site = ${ADMISSION:-off}"   # ADMISSION=N: through the admission queue
  done
  for s in "${SITES[@]}"; do spawn "$s" dotnet "$NODE" --config "$WORK/$s.conf"; PID[$s]=$SPAWNED; done
  for s in "${SITES[@]}"; do wait_for "$WORK/$s.out" 'reloc-node: site' 240; done
  # Every site sees all three Up (a site still joining refuses disks created at itself: "unknown site").
  for s in "${SITES[@]}"; do
    until [ "$($M "127.0.0.1:${MG[$s]}" cluster.show 2>/dev/null | grep -io '"status": "up"' | wc -l)" = 3 ]; do sleep 0.2; done
  done
  until $M "127.0.0.1:${MG[site-a]}" relocation.list > /dev/null 2>&1; do sleep 0.2; done   # the coordinator is up
  PLAN=$WORK/plan.tsv; : > "$PLAN"; PIDS=$WORK/pids.tsv; : > "$PIDS"
  for s in "${SITES[@]}"; do printf '%s\t%s\n' "$s" "${PID[$s]}" >> "$PIDS"; done
  t0=$EPOCHREALTIME
  for i in $(seq 0 $((N - 1))); do
    from=${SITES[$((i % 3))]}; to=${SITES[$(((i + 1) % 3))]}
    $M "127.0.0.1:${MG[$from]}" disk.create "{\"name\":\"vm$i\",\"site\":\"$from\",\"from\":\"$SRC/vm$i-$SIZE.img\"}" > /dev/null
    printf 'vm%s\t%s\t%s\t127.0.0.1:%s\n' "$i" "$from" "$to" "${MG[$to]}" >> "$PLAN"
  done
  log "rep $rep: $N disks created in $($PY -c "print(f'{$EPOCHREALTIME-$t0:.1f}')") s; load $(cut -d' ' -f1-3 /proc/loadavg)"
  load=$(cut -d' ' -f1 /proc/loadavg)
  row=$($PY "$BENCH_DIR/scale_relocations.py" "$PLAN" "$BUDGET_BPS" "$PIDS" "$OUT/scale-relocations" "$rep")
  # Byte for byte at the new owner, and the disk owned there with no other copy left.
  verified=0
  while IFS=$'\t' read -r disk from to addr; do
    $M "127.0.0.1:${MG[site-a]}" wait-relocated "$disk" "$to" 120 > /dev/null || { log "$disk: not owned by $to alone"; exit 1; }
    cmp -s "$WORK/$to/$disk.img" "$SRC/$disk-$SIZE.img" || { log "$disk: content differs at $to"; exit 1; }
    verified=$((verified + 1))
  done < "$PLAN"
  printf '%s\t%s\t%s\n' "$row" "$load" "$verified" >> "$RUNS"
  log "rep $rep: $(tail -1 "$RUNS")"
  for s in "${SITES[@]}"; do log "  $s: $(grep -c . "$WORK/$s.err" || true) log lines, $(grep -ci 'warn\|error' "$WORK/$s.err" || true) warning/error"; done
  stop "${PID[site-c]}" "${PID[site-b]}" "${PID[site-a]}" "${WPIDS[@]}"
done

SUM=$OUT/scale-relocations.summary.tsv
$PY - "$RUNS" "$OUT/scale-relocations.procs.tsv" > "$SUM" <<'PYEOF'
import sys, statistics as st, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
head, rows = rows[0], rows[1:]
col = lambda name: [r[head.index(name)] for r in rows]
med = lambda name: st.median(float(v) for v in col(name) if v != "-") if any(v != "-" for v in col(name)) else "-"
print("what\tmedian\truns")
for name in ("busy_util", "busy_jain", "busy_s", "aggregate_ratio", "jain", "whole_s", "ideal_s", "whole_ratio", "dur_p50_s", "dur_p99_s", "dur_max_s",
             "ask_s", "last_first_byte_s", "duplicate_completed", "failures", "verified"):
    print(f"{name}\t{med(name)}\t{', '.join(col(name))}")
procs = collections.defaultdict(list)
for l in open(sys.argv[2]):
    f = l.rstrip("\n").split("\t")
    procs[f[1]].append(f)
for site, fs in procs.items():
    print(f"{site} cpu_s / cpu_cores / rss_MiB start,max / hwm\t\t" + "; ".join(f"{f[2]} / {f[3]} / {f[4]},{f[5]} / {f[6]}" for f in fs))
PYEOF
# Per 3 s bin: each pair's utilisation and fairness, over the whole busy time and after the start-up ramp.
$PY "$BENCH_DIR/scale_slices.py" "$OUT/scale-relocations.samples.tsv" "$BUDGET_BPS" 3 > "$OUT/scale-relocations.slices.tsv"
cat "$RUNS"; echo; cat "$SUM"; echo; cat "$OUT/scale-relocations.slices.tsv"
