#!/usr/bin/env bash
# Relocation between two site processes (the cluster path: coordinator, sites, handover, post-copy),
# through the WAN link emulator, against the link's limit size/bandwidth. Per run, all on 127.0.0.1:
#   site-a (reloc-node --config, fresh data dir) <- wanlink (RTT, RATE) <- site-b fetching through it
# site-a advertises the link's address, so site-b's fetches (misses and background copy) cross it. The disk
# (random, hole-free) is created at site-a from a file (not timed), then `relocate` is sent: the disk is idle,
# so the handover is immediate and the whole copy is post-copy. Timed: relocate request -> the disk owned by
# site-b at epoch 2 with its source released (polled every 50 ms through the management endpoint).
# WARMUP=1 (default): a 4 MiB disk is relocated first, untimed (the sites' relocation code compiled, as on a site
# that has run for a while); WARMUP=0 times the sites' first relocation, JIT included.
# SITE_EXTRA: HOCON appended to both sites' files (e.g. SITE_EXTRA='reloc.site.peer-connections.enabled = off').
# Usage: bench/reloc-sites.sh     env: RTTS="20 50 100" WARMUP=1 REPS=3 RATE=40MB/s QUEUE=100ms SIZE=1G SKIP_BUILD=0 KEEP=0 SITE_EXTRA=
# Prints per-run and summary TSV (medians) on stdout; files in $OUT (artifacts/bench).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
SITE_EXTRA=${SITE_EXTRA:-}
RTTS=${RTTS:-"20 50 100"}; WARMUP=${WARMUP:-1}; REPS=${REPS:-3}; RATE=${RATE:-40MB/s}; QUEUE=${QUEUE:-100ms}; SIZE=${SIZE:-1G}
bench_init reloc-sites
M="$PY $BENCH_DIR/mgmt.py"

SRC=${SRC_IMG:-${TMPDIR:-/tmp}/reloc-bench-src-$SIZE.img}
make_random_image "$SRC" "$SIZE"
BYTES=$(stat -c %s "$SRC")
RATE_BPS=$(rate_bps "$RATE")
LIMIT=$($PY -c "print(f'{$BYTES/$RATE_BPS:.3f}')")
log "image $BYTES bytes at $RATE: limit $LIMIT s"

RUNS=$OUT/reloc-sites.runs.tsv
printf 'rtt_ms\trep\tt_s\tratio\n' > "$RUNS"
cp "$ROOT/hocon/reloc.conf" "$WORK/reloc.conf"
for rep in $(seq "$REPS"); do
  for rtt in $RTTS; do
    rm -rf "$WORK/site-a" "$WORK/site-b"
    AA=$(free_port) AB=$(free_port) NA=$(free_port) NB=$(free_port) MA=$(free_port) MB=$(free_port) W=$(free_port)
    SEEDS="\"akka.tcp://reloc@127.0.0.1:$AA\""
    site_conf site-a "$AA" "$NA" "$MA" "127.0.0.1:$W" "$SEEDS" "reloc.site.import-dir = \"$(dirname "$SRC")\"" "$SITE_EXTRA"  # disk create --from
    site_conf site-b "$AB" "$NB" "$MB" "127.0.0.1:$NB" "$SEEDS" "$SITE_EXTRA"
    start_wanlink "wan$rtt" "$W" "$NA" "${rtt}ms" "$RATE" "$QUEUE"; WPID=$SPAWNED
    spawn site-a dotnet "$NODE" --config "$WORK/site-a.conf"; PA=$SPAWNED
    wait_for "$WORK/site-a.out" 'reloc-node: site' 60
    spawn site-b dotnet "$NODE" --config "$WORK/site-b.conf"; PB=$SPAWNED
    wait_for "$WORK/site-b.out" 'reloc-node: site' 60
    until $M "127.0.0.1:$MA" cluster.show 2>/dev/null | grep -q '"site": "site-b", "reachable": true'; do sleep 0.2; done
    until $M "127.0.0.1:$MA" relocation.list > /dev/null 2>&1; do sleep 0.2; done   # the coordinator is up
    $M "127.0.0.1:$MA" disk.create "{\"name\":\"vm\",\"site\":\"site-a\",\"from\":\"$SRC\"}" > /dev/null
    if [ "$WARMUP" = 1 ]; then   # a first, small relocation: the sites' relocation code paths compiled, as on a site that has run
      $M "127.0.0.1:$MA" disk.create '{"name":"warm","site":"site-a","size":4194304}' > /dev/null
      $M "127.0.0.1:$MA" relocate-timed warm site-b 120 "127.0.0.1:$MB" > /dev/null
    fi
    t=$($M "127.0.0.1:$MA" relocate-timed vm site-b 900 "127.0.0.1:$MB")   # request sent -> released, one process
    t=$(span_seconds "$t")
    [ "$(sha256sum < "$WORK/site-b/vm.img")" = "$(sha256sum < "$SRC")" ] || { log "content differs at site-b"; exit 1; }
    printf '%s\t%s\t%s\t%s\n' "$rtt" "$rep" "$t" "$($PY -c "print(f'{$t/$LIMIT:.3f}')")" >> "$RUNS"
    log "rtt ${rtt}ms rep $rep: $(tail -1 "$RUNS") (content checked)"
    stop "$PB" "$PA" "$WPID"
  done
done

SUM=$OUT/reloc-sites.summary.tsv
$PY - "$RUNS" "$LIMIT" > "$SUM" <<'PYEOF'
import sys, statistics as st, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
by = collections.defaultdict(list)
for r in rows: by[r[0]].append(float(r[2]))
print("rtt_ms\tlimit_s\tmedian_s\tratio\tmin_ratio\tmax_ratio\tn")
limit = float(sys.argv[2])
for rtt, ts in by.items():
    print(f"{rtt}\t{limit:.2f}\t{st.median(ts):.2f}\t{st.median(ts)/limit:.3f}\t{min(ts)/limit:.3f}\t{max(ts)/limit:.3f}\t{len(ts)}")
PYEOF
cat "$RUNS"; echo; cat "$SUM"
