#!/usr/bin/env bash
# Issue 13 goal 4: relocation between two sites with no emulated WAN, beside nbdcopy from the same source export to
# a local file, in the same run. Per rep, fresh sites:
#   site-a (the disk, random and hole-free, created from a file)   site-b (empty)
#   1. nbdcopy nbd://site-a/vm -> a file at site-b's side (the greedy reader's time on this path; file removed after),
#      once as it comes (the file's data left in the page cache) and once with --flush (durable, as a relocation is)
#   2. relocate vm to site-b (postcopy): request -> owned by site-b with its source released (polled every 50 ms at
#      site-a's API, by the process that sent the request)
# Both read site-a's image from the page cache (it was just created from a file).
# NET=loopback: both sites on 127.0.0.1. NET=netns: site-a and site-b in their own network namespaces, joined by a
# veth pair with tbf at RATE_LIMIT (default 10gbit) on both ends; nbdcopy runs in site-b's namespace (needs root).
# WARMUP=1 (default): a WARMUP_SIZE (256M) random disk is relocated WARMUP_ROUNDS (3) times back and forth first,
# untimed, then WARMUP_SETTLE (1) seconds pass, so the timed one runs on the code a site that has run for a while
# has: both sites' copy paths (as source and destination) called often enough for tiered compilation's optimised
# code, compiled in the background meanwhile. (Until the fifth sitting it was one empty 4 MiB disk: all holes, no
# read landed, and perf put 38 % of the timed run in the JIT; with 5 rounds site-b still compiles ~860 methods
# during the timed relocation, against ~2900 after one.)
# WARMUP=0 times the sites' first relocation (JIT included).
# PROFILE=DIR: dotnet-trace (on PATH) samples both sites' threads for 8 s around the relocation, into DIR.
# PERF=DIR: perf samples the whole machine for 4 s from the relocation's start, into DIR (the sites write perf maps,
# DOTNET_PerfMapEnabled=1, so .NET frames have names): perf report -i DIR/perf.rep1.data --sort comm,dso,sym.
# HOCON='reloc.disk.x = y': extra settings for both sites (a trial of a setting beside the defaults' run).
# Usage: bench/reloc-lan.sh     env: NET=loopback|netns WARMUP=1 WARMUP_SIZE=256M WARMUP_ROUNDS=3 WARMUP_SETTLE=1 PROFILE= PERF= REPS=3 SIZE=1G RATE_LIMIT=10gbit HOCON= SKIP_BUILD=0 KEEP=0
# Prints per-run and summary TSV (medians); files in $OUT (artifacts/bench).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
PERF=${PERF:-}; HOCON=${HOCON:-}; NET=${NET:-loopback}; WARMUP=${WARMUP:-1}; WARMUP_SIZE=${WARMUP_SIZE:-256M}; WARMUP_SETTLE=${WARMUP_SETTLE:-1}; WARMUP_ROUNDS=${WARMUP_ROUNDS:-3}; PROFILE=${PROFILE:-}; REPS=${REPS:-3}; SIZE=${SIZE:-1G}; RATE_LIMIT=${RATE_LIMIT:-10gbit}
bench_init "reloc-lan-$NET"
[ -z "$PERF" ] || export DOTNET_PerfMapEnabled=1
M="$PY $BENCH_DIR/mgmt.py"

SRC=${SRC_IMG:-${TMPDIR:-/tmp}/reloc-bench-src-$SIZE.img}
make_random_image "$SRC" "$SIZE"
# The warm-up disk holds random data like the timed one: an empty one is all holes, and its relocation reads nothing.
WARM_SRC=$(dirname "$SRC")/reloc-bench-warm-$WARMUP_SIZE.img
[ "$WARMUP" != 1 ] || make_random_image "$WARM_SRC" "$WARMUP_SIZE"
BYTES=$(stat -c %s "$SRC")

NSA="" NSB="" IPA=127.0.0.1 IPB=127.0.0.1
if [ "$NET" = netns ]; then
  NSA=reloc-lan-a NSB=reloc-lan-b IPA=10.77.0.1 IPB=10.77.0.2
  ip netns del $NSA 2>/dev/null || true; ip netns del $NSB 2>/dev/null || true
  ip netns add $NSA; ip netns add $NSB
  trap 'ip netns del '$NSA' 2>/dev/null; ip netns del '$NSB' 2>/dev/null; _bench_cleanup' EXIT
  ip link add reloc-va netns $NSA type veth peer name reloc-vb netns $NSB
  for side in "$NSA reloc-va $IPA" "$NSB reloc-vb $IPB"; do
    set -- $side
    ip -n "$1" link set lo up
    ip -n "$1" addr add "$3/24" dev "$2"
    ip -n "$1" link set "$2" up
    ip netns exec "$1" tc qdisc add dev "$2" root tbf rate "$RATE_LIMIT" burst 4mb latency 10ms
  done
  log "netns $NSA ($IPA) <-> $NSB ($IPB), veth with tbf $RATE_LIMIT each way"
fi
# Command prefixes: `ip netns exec` execs its command, so a spawned site's pid is the node's own.
IN_A=() IN_B=()
[ -z "$NSA" ] || { IN_A=(ip netns exec "$NSA"); IN_B=(ip netns exec "$NSB"); }
in_a() { "${IN_A[@]}" "$@"; }
in_b() { "${IN_B[@]}" "$@"; }

RUNS=$OUT/reloc-lan-$NET.runs.tsv
printf 'rep\tnbdcopy_s\tnbdcopy_flush_s\treloc_s\tspeed_vs_nbdcopy\tspeed_vs_nbdcopy_flush\tnbdcopy_MBps\tnbdcopy_flush_MBps\treloc_MBps\tnbdcopy_cpu_s\treloc_cpu_s\tsource_cpu_s\tdest_cpu_s\tnbdcopy_source_cpu_s\n' > "$RUNS"
cp "$ROOT/hocon/reloc.conf" "$WORK/reloc.conf"
for rep in $(seq "$REPS"); do
  rm -rf "$WORK/site-a" "$WORK/site-b"
  AA=$(free_port) AB=$(free_port) NA=$(free_port) NB=$(free_port) MA=$(free_port) MB=$(free_port)
  SEEDS="\"akka.tcp://reloc@$IPA:$AA\""
  site_conf site-a "$AA" "$NA" "$MA" "$IPA:$NA" "$SEEDS" "reloc.site.import-dir = \"$(dirname "$SRC")\"" \
    "akka.remote.dot-netty.tcp.hostname = \"$IPA\"" "reloc.site.nbd.listen = \"$IPA:$NA\"" "reloc.management.listen = \"$IPA:$MA\"" "$HOCON"
  site_conf site-b "$AB" "$NB" "$MB" "$IPB:$NB" "$SEEDS" \
    "akka.remote.dot-netty.tcp.hostname = \"$IPB\"" "reloc.site.nbd.listen = \"$IPB:$NB\"" "reloc.management.listen = \"$IPB:$MB\"" "$HOCON"
  spawn site-a "${IN_A[@]}" dotnet "$NODE" --config "$WORK/site-a.conf"; PA=$SPAWNED
  wait_for "$WORK/site-a.out" 'reloc-node: site' 60
  spawn site-b "${IN_B[@]}" dotnet "$NODE" --config "$WORK/site-b.conf"; PB=$SPAWNED
  wait_for "$WORK/site-b.out" 'reloc-node: site' 60
  until in_a $M "$IPA:$MA" cluster.show 2>/dev/null | grep -q '"site": "site-b", "reachable": true'; do sleep 0.2; done
  until in_a $M "$IPA:$MA" relocation.list > /dev/null 2>&1; do sleep 0.2; done
  in_a $M "$IPA:$MA" disk.create "{\"name\":\"vm\",\"site\":\"site-a\",\"from\":\"$SRC\"}" > /dev/null
  if [ "$WARMUP" = 1 ]; then   # relocations before the timed one: the sites' code paths compiled, as on a site that has run
    in_a $M "$IPA:$MA" disk.create "{\"name\":\"warm\",\"site\":\"site-a\",\"from\":\"$WARM_SRC\"}" > /dev/null
    for round in $(seq "$WARMUP_ROUNDS"); do   # back and forth: each site both sends and receives
      if [ $((round % 2)) = 1 ]; then to=site-b; else to=site-a; fi
      in_a $M "$IPA:$MA" relocate-timed warm "$to" 120 > /dev/null
    done
    sleep "$WARMUP_SETTLE"   # the methods it made hot are compiled again (tier 1) in the background meanwhile
  fi

  # CPU seconds (user + system) a process has used so far: on 2 shared cores, where the time goes when wall time is noisy.
  cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"; }
  copy() {   # copy [--flush]: sets T_COPY and C_COPY (CPU: nbdcopy's own and the serving site's, C_COPY_A)
    local t0=$EPOCHREALTIME a0; a0=$(cpu_of "$PA")
    /usr/bin/time -f '%U %S' -o "$WORK/copy.cpu" "${IN_B[@]}" nbdcopy "$@" "nbd://$IPA:$NA/vm" "$WORK/copy.img"
    T_COPY=$($PY -c "print(f'{$EPOCHREALTIME-$t0:.3f}')")
    C_COPY_A=$($PY -c "print(f'{$(cpu_of "$PA") - $a0:.2f}')")
    C_COPY=$($PY -c "u, s = map(float, open('$WORK/copy.cpu').read().split()[-2:]); print(f'{u + s + $C_COPY_A:.2f}')")
    cmp -s "$WORK/copy.img" "$SRC" || { log "nbdcopy's copy differs"; exit 1; }
    rm -f "$WORK/copy.img"
  }
  relocate() {   # sets T_RELOC and C_RELOC (CPU of both sites; _A the source's, _B the destination's)
    local t a0 b0; a0=$(cpu_of "$PA"); b0=$(cpu_of "$PB")
    t=$(in_a $M "$IPA:$MA" relocate-timed vm site-b 900)   # request sent -> released, in one python process
    T_RELOC=$(span_seconds "$t")
    C_RELOC_A=$($PY -c "print(f'{$(cpu_of "$PA") - $a0:.2f}')"); C_RELOC_B=$($PY -c "print(f'{$(cpu_of "$PB") - $b0:.2f}')")
    C_RELOC=$($PY -c "print(f'{$C_RELOC_A + $C_RELOC_B:.2f}')")
    cmp -s "$WORK/site-b/vm.img" "$SRC" || { log "content differs at site-b"; exit 1; }
  }
  copy; T_PLAIN=$T_COPY; C_PLAIN=$C_COPY; C_PLAIN_A=$C_COPY_A; copy --flush; T_FLUSH=$T_COPY
  TRACE_PIDS=()
  if [ -n "$PROFILE" ]; then   # CPU samples of both sites while they relocate (dotnet-trace, 8 s each)
    for s in "a $PA" "b $PB"; do
      set -- $s
      dotnet-trace collect -p "$2" --profile dotnet-sampled-thread-time --duration 00:00:00:08 \
        -o "$PROFILE/site-$1.rep$rep.nettrace" > "$WORK/trace-$1.out" 2>&1 & TRACE_PIDS+=($!)
    done
    sleep 1   # the sessions are up before the relocation starts
  fi
  PERF_PID=""
  if [ -n "$PERF" ]; then   # CPU samples of the whole machine (both sites, the kernel) while it relocates (perf, 4 s)
    perf record -a -g -F 499 -o "$PERF/perf.rep$rep.data" -- sleep 4 > "$WORK/perf.out" 2>&1 & PERF_PID=$!
    sleep 0.2
  fi
  relocate   # last: it moves the source export away
  for p in "${TRACE_PIDS[@]}"; do wait "$p" || true; done
  [ -z "$PERF_PID" ] || wait "$PERF_PID" || true
  $PY -c "b=$BYTES; c=$T_PLAIN; f=$T_FLUSH; r=$T_RELOC; print(f'$rep\t{c:.3f}\t{f:.3f}\t{r:.3f}\t{c/r:.3f}\t{f/r:.3f}\t{b/c/1e6:.0f}\t{b/f/1e6:.0f}\t{b/r/1e6:.0f}\t$C_PLAIN\t$C_RELOC\t$C_RELOC_A\t$C_RELOC_B\t$C_PLAIN_A')" >> "$RUNS"
  log "rep $rep: $(tail -1 "$RUNS") (both copies checked byte for byte)"
  stop "$PB" "$PA"
done

SUM=$OUT/reloc-lan-$NET.summary.tsv
$PY - "$RUNS" "$NET" > "$SUM" <<'PYEOF'
import sys, statistics as st
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
col = lambda i: [float(x[i]) for x in rows]
print("net\tnbdcopy_s\tnbdcopy_flush_s\treloc_s\tspeed_vs_nbdcopy\tspeed_vs_nbdcopy_flush\tmin_vs_nbdcopy\tmax_vs_nbdcopy\tn")
print(f"{sys.argv[2]}\t{st.median(col(1)):.2f}\t{st.median(col(2)):.2f}\t{st.median(col(3)):.2f}\t{st.median(col(4)):.3f}"
      f"\t{st.median(col(5)):.3f}\t{min(col(4)):.3f}\t{max(col(4)):.3f}\t{len(rows)}")
PYEOF
cat "$RUNS"; echo; cat "$SUM"
