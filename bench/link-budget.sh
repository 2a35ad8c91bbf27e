#!/usr/bin/env bash
# Link budgets (issue 13, goal 5): N concurrent relocations between two site processes on one budget.
#   site-a (reloc-node, fresh data dir) <- wanlink (RTT, WAN_RATE above the budget) <- site-b fetching through it
# Both sites have reloc.links = [ { sites = [site-a, site-b], bandwidth = BUDGET } ]. N random disks of SIZE are
# created at site-a (not timed), then all relocated to site-b at once (idle: each hands over at once and copies
# post-copy). bench/link_budget.py follows each relocation's progress (the destination's fetched bytes through the
# management API) and prints aggregate / budget and Jain's fairness index over a steady window (every relocation
# copying, none done), and the whole run's aggregate. Meanwhile bench/read_latency.py times 4 KiB guest misses on
# vm1 at site-b (from the middle of the disk up, where the copy has not come yet).
# Modes: equal (weight 1 each), weight (vm0 weight 4), cap (vm0 capped at CAP by `relocation rate`),
#        set (the budget starts at BUDGET/2 in the config and is raised to BUDGET over the API at once: run time),
#        none (no budget: what the misses see without one; its ratios are left out).
# Usage: bench/link-budget.sh   env: MODES="equal weight cap" REPS=3 N=10 SIZE=64M BUDGET=20MB/s WAN_RATE=40MB/s
#                                     RTT=20ms QUEUE=100ms CAP=1MB/s SKIP_BUILD=0 KEEP=0
# Prints per-run rows and medians (TSV) on stdout; files in $OUT (artifacts/bench).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
MODES=${MODES:-"equal weight cap set none"}; REPS=${REPS:-3}; N=${N:-10}; SIZE=${SIZE:-64M}; BUDGET=${BUDGET:-20MB/s}
WAN_RATE=${WAN_RATE:-40MB/s}; RTT=${RTT:-20ms}; QUEUE=${QUEUE:-100ms}; CAP=${CAP:-1MB/s}
bench_init link-budget
M="$PY $BENCH_DIR/mgmt.py"
BUDGET_BPS=$(rate_bps "$BUDGET"); CAP_BPS=$(rate_bps "$CAP")

# One random source per disk (different content: a mix-up between disks would show in the final check).
for i in $(seq 0 $((N - 1))); do make_random_image "${TMPDIR:-/tmp}/reloc-bench-link-$SIZE-$i.img" "$SIZE"; done

# budget_conf BUDGET ("": none): the sites' extra HOCON lines.
budget_conf() {
  local link=""
  [ -n "$1" ] && link="{ sites = [site-a, site-b], bandwidth = \"$1\" }"
  printf '%s\n' "reloc.site.import-dir = \"${TMPDIR:-/tmp}\"" "reloc.links = [ $link ]"
}

RUNS=$OUT/link-budget.runs.tsv; SHARES=$OUT/link-budget.shares.tsv; MISSES=$OUT/link-budget.misses.tsv
printf 'mode\trep\tn\tbudget_Bps\taggregate_Bps\taggregate_ratio\tjain\twhole_run_Bps\twhole_run_ratio\twindow_s\n' > "$RUNS"
printf 'mode\trep\tdisk\tx_Bps\texpected_Bps\n' > "$SHARES"
: > "$MISSES"
cp "$ROOT/hocon/reloc.conf" "$WORK/reloc.conf"
for rep in $(seq "$REPS"); do
  for mode in $MODES; do
    rm -rf "$WORK/site-a" "$WORK/site-b"
    AA=$(free_port) AB=$(free_port) NA=$(free_port) NB=$(free_port) MA=$(free_port) MB=$(free_port) W=$(free_port)
    SEEDS="\"akka.tcp://reloc@127.0.0.1:$AA\""
    conf_budget=$BUDGET; run_budget=$BUDGET_BPS
    [ "$mode" = set ] && conf_budget="$((BUDGET_BPS / 2))B/s"
    [ "$mode" = none ] && conf_budget="" && run_budget=0
    mapfile -t extra < <(budget_conf "$conf_budget")
    extra+=("reloc.coordinator.max-concurrent-relocations-per-site = off")   # all N copy at once: the budget's shares are measured
    site_conf site-a "$AA" "$NA" "$MA" "127.0.0.1:$W" "$SEEDS" "${extra[@]}"
    site_conf site-b "$AB" "$NB" "$MB" "127.0.0.1:$NB" "$SEEDS" "${extra[@]}"
    start_wanlink wan "$W" "$NA" "$RTT" "$WAN_RATE" "$QUEUE"; WPID=$SPAWNED
    spawn site-a dotnet "$NODE" --config "$WORK/site-a.conf"; PA=$SPAWNED
    wait_for "$WORK/site-a.out" 'reloc-node: site' 240
    spawn site-b dotnet "$NODE" --config "$WORK/site-b.conf"; PB=$SPAWNED
    wait_for "$WORK/site-b.out" 'reloc-node: site' 240
    until $M "127.0.0.1:$MA" cluster.show 2>/dev/null | grep -q '"site": "site-b", "reachable": true'; do sleep 0.2; done
    until $M "127.0.0.1:$MA" relocation.list > /dev/null 2>&1; do sleep 0.2; done   # the coordinator is up
    for i in $(seq 0 $((N - 1))); do
      $M "127.0.0.1:$MA" disk.create "{\"name\":\"vm$i\",\"site\":\"site-a\",\"from\":\"${TMPDIR:-/tmp}/reloc-bench-link-$SIZE-$i.img\"}" > /dev/null
    done
    weights=$(printf '1%.0s,' $(seq "$N")); weights=${weights%,}
    caps=$(printf '0%.0s,' $(seq "$N")); caps=${caps%,}
    asked=()   # all at once (not a bare `wait`: the sites are this shell's children too)
    for i in $(seq 0 $((N - 1))); do
      $M "127.0.0.1:$MA" relocate "{\"disk\":\"vm$i\",\"to\":\"site-b\",\"mode\":\"postcopy\"}" > /dev/null & asked+=("$!")
    done
    for pid in "${asked[@]}"; do wait "$pid"; done
    case $mode in
      weight) $M "127.0.0.1:$MA" relocation.weight '{"name":"vm0","weight":4}' > /dev/null; weights="4${weights#1}" ;;
      cap) $M "127.0.0.1:$MA" relocation.rate "{\"name\":\"vm0\",\"rate\":$CAP_BPS}" > /dev/null; caps="$CAP_BPS${caps#0}" ;;
      set) $M "127.0.0.1:$MB" link.set "{\"a\":\"site-b\",\"b\":\"site-a\",\"bandwidth\":$BUDGET_BPS}" > /dev/null ;;
    esac
    # The misses 5 s in: inside the steady window, every relocation copying.
    (sleep 5; $PY "$BENCH_DIR/read_latency.py" "nbd://127.0.0.1:$NB/vm1" "$mode" "$rep" "$MISSES" 30 0 "$rep") > /dev/null 2>&1 &
    LAT=$!
    $PY "$BENCH_DIR/link_budget.py" "127.0.0.1:$MA" "$run_budget" "$weights" "$caps" "$SHARES" "$mode" "$rep" >> "$RUNS"
    wait "$LAT" || log "read_latency.py failed (status $?)"
    for i in $(seq 0 $((N - 1))); do
      $M "127.0.0.1:$MB" wait-relocated "vm$i" site-b 300 > /dev/null
      [ "$(sha256sum < "$WORK/site-b/vm$i.img")" = "$(sha256sum < "${TMPDIR:-/tmp}/reloc-bench-link-$SIZE-$i.img")" ] \
        || { log "vm$i: content differs at site-b"; exit 1; }
    done
    log "$mode rep $rep: $(tail -1 "$RUNS") (content of $N disks checked)"
    stop "$PB" "$PA" "$WPID"
  done
done

SUM=$OUT/link-budget.summary.tsv
$PY - "$RUNS" "$MISSES" > "$SUM" <<'PYEOF'
import sys, statistics as st, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
misses = collections.defaultdict(list)
for l in open(sys.argv[2]):
    f = l.rstrip("\n").split("\t")
    if len(f) >= 6 and f[2] == "miss": misses[f[0]].append(float(f[5]))
by = collections.defaultdict(list)
for r in rows: by[r[0]].append(r)
print("mode\tn\taggregate_ratio\tjain\twhole_run_ratio\tmin_aggregate_ratio\tmin_jain\tmiss_p50_ms\tmiss_p95_ms\truns")
for mode, rs in by.items():
    # No budget: no ratios; the aggregate in MB/s instead (what the WAN gave).
    ratio = lambda i: [float(r[i]) for r in rs] if rs[0][i] != "-" else None
    agg, jain, whole = ratio(5), [float(r[6]) for r in rs], ratio(8)
    m = sorted(misses[mode])
    p = lambda q: f"{m[min(len(m) - 1, int(q * len(m)))]:.1f}" if m else "-"
    f = lambda v, how: format(how(v), ".3f") if v else "-"
    print(f"{mode}\t{rs[0][2]}\t{f(agg, st.median) if agg else str(round(st.median(float(r[4]) for r in rs) / 1e6, 1)) + ' MB/s'}\t{st.median(jain):.4f}"
          f"\t{f(whole, st.median)}\t{f(agg, min)}\t{min(jain):.4f}\t{p(0.5)}\t{p(0.95)}\t{len(rs)}")
PYEOF
cat "$RUNS"; echo; cat "$SUM"
