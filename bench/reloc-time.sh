#!/usr/bin/env bash
# Relocation time of a random (incompressible, hole-free) disk through the WAN link emulator, per RTT,
# against the limit size/bandwidth. Topology per run, all on 127.0.0.1:
#   reloc-node serve (source image, read-only) <- reloc-node wanlink (RTT, RATE, QUEUE) <- reloc-node proxy (fresh image + state dir)
# Each run times, by the wall clock of this script:
#   t_line   proxy launch -> arrival of its first "state":"complete" JSON line (the proxy prints one line a second,
#            so this lags the real completion by up to 1 s); t_first: launch -> first JSON line (.NET start,
#            source probe, actor system); t_close: launch -> the proxy's source connections closed (it closes them
#            once every block is local and persisted; polled every 0.1 s).
# Repetitions are interleaved over the RTTs (rep 1 of every RTT, then rep 2, ...). With GREEDY=1, nbdcopy reads the
# source through the same link once per RTT: what a greedy client (64 requests in flight on 4 connections) achieves.
# Usage: bench/reloc-time.sh        env: RTTS="0 20 50 100" REPS=3 RATE=40MB/s QUEUE=100ms SIZE=1G GREEDY=1
#                                        PROXY_ARGS="" (extra proxy options, e.g. "--rate 40MB/s") SKIP_BUILD=0 KEEP=0
# Prints the per-run TSV and then the summary TSV (medians) on stdout; files in $OUT (artifacts/bench), plots in docs/img.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
RTTS=${RTTS:-"0 20 50 100"}; REPS=${REPS:-3}; RATE=${RATE:-40MB/s}; QUEUE=${QUEUE:-100ms}; SIZE=${SIZE:-1G}
GREEDY=${GREEDY:-1}; PROXY_ARGS=${PROXY_ARGS:-}
bench_init reloc-time

SRC=${SRC_IMG:-${TMPDIR:-/tmp}/reloc-bench-src-$SIZE.img}
make_random_image "$SRC" "$SIZE"
BYTES=$(stat -c %s "$SRC")
RATE_BPS=$(rate_bps "$RATE")
LIMIT=$($PY -c "print(f'{$BYTES/$RATE_BPS:.3f}')")
log "image $BYTES bytes at $RATE: limit $LIMIT s"

RUNS=$OUT/reloc-time.runs.tsv TL=$OUT/reloc-time.timeline.tsv GR=$OUT/reloc-time.greedy.tsv
if [ "${PLOTS_ONLY:-0}" != 1 ]; then   # PLOTS_ONLY=1: summary and plots again from the TSV files in $OUT
SPORT=$(free_port)
start_serve source "$SPORT" "disk=$SRC:ro"
: > "$RUNS"; : > "$TL"
printf 'rtt_ms\tt_s\tratio\n' > "$GR"

for rep in $(seq "$REPS"); do
  for rtt in $RTTS; do
    WPORT=$(free_port); PPORT=$(free_port)
    start_wanlink "wan$rtt" "$WPORT" "$SPORT" "${rtt}ms" "$RATE" "$QUEUE"; WPID=$SPAWNED
    if [ "$GREEDY" = 1 ] && [ "$rep" = 1 ]; then
      t0=$EPOCHREALTIME
      nbdcopy "nbd://127.0.0.1:$WPORT/disk" null:
      t=$($PY -c "print(f'{$EPOCHREALTIME-$t0:.3f}')")
      printf '%s\t%s\t%s\n' "$rtt" "$t" "$($PY -c "print(f'{$t/$LIMIT:.3f}')")" >> "$GR"
      log "rtt ${rtt}ms: nbdcopy (greedy reader) through the link: $t s"
    fi
    rm -rf "$WORK/state" "$WORK/dst.img"
    # shellcheck disable=SC2086
    start_proxy proxy "$PPORT" "$WORK/dst.img" "nbd://127.0.0.1:$WPORT/disk" "$WORK/state" $PROXY_ARGS
    wait_complete proxy "$WPORT" 600
    stop "$PROXY_PID"
    stop "$WPID"
    cp "$WORK/proxy.jsonl" "$OUT/reloc-time.rtt$rtt.rep$rep.jsonl"
    $PY "$BENCH_DIR/proxy_run.py" "$WORK/proxy.jsonl" "$PROXY_T0" "$T_COMPLETE_LINE" "$T_SOURCE_CLOSED" "$LIMIT" "$rtt" "$rep" "$RUNS" "$TL"
    log "rtt ${rtt}ms rep $rep: $(tail -1 "$RUNS")"
    rm -rf "$WORK/state" "$WORK/dst.img"
  done
done
fi

SUM=$OUT/reloc-time.summary.tsv
$PY - "$RUNS" "$GR" "$LIMIT" > "$SUM" <<'EOF'
import sys, statistics as st, collections
runs = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
greedy = {r[0]: r for r in (l.rstrip("\n").split("\t") for l in list(open(sys.argv[2]))[1:])}
limit = float(sys.argv[3])
by = collections.defaultdict(list)
for r in runs: by[r[0]].append(r)
print("rtt_ms\tlimit_s\tt_line_s\tratio_line\tt_close_s\tratio_close\tt_first_s\teng_line_s\tratio_eng_line\teng_close_s\tratio_eng_close"
      "\twindow\trate_MBps\tgreedy_s\tgreedy_ratio\tn")
for rtt, rs in by.items():
    m = lambda f: st.median(f(r) for r in rs)
    c = lambda k: m(lambda r: float(r[k]))
    el, ec = m(lambda r: float(r[2]) - float(r[3])), m(lambda r: float(r[4]) - float(r[3]))
    g = greedy.get(rtt, ["", "-", "-"])
    print(f"{rtt}\t{limit:.2f}\t{c(2):.2f}\t{c(5):.3f}\t{c(4):.2f}\t{c(6):.3f}\t{c(3):.2f}\t{el:.2f}\t{el/limit:.3f}\t{ec:.2f}\t{ec/limit:.3f}"
          f"\t{c(8):g}\t{c(9):.2f}\t{g[1]}\t{g[2]}\t{len(rs)}")
EOF
cat "$RUNS"; echo; cat "$SUM"

# Plots: ratio per RTT (four measures), local bytes and prefetch window over time (rep 1 of each RTT).
$PY - "$SUM" > "$WORK/ratio.tsv" <<'EOF'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
print("rtt\tmeasure\tratio")
for r in rows:
    print(f"{r[0]}\tlaunch -> complete line\t{r[3]}")
    print(f"{r[0]}\tlaunch -> source closed\t{r[5]}")
    print(f"{r[0]}\tfirst line -> source closed\t{r[10]}")
for r in rows:
    if r[14] != "-": print(f"{r[0]}\tnbdcopy through the same link\t{r[14]}")
EOF
plot line --in "$WORK/ratio.tsv" --out "$IMG_DIR/reloc-time-ratio.png" --x rtt --y ratio --series measure \
  --hline '1.02=goal 1.02' --hline '1.05=1.05' --ymin 0.95 --ymax 1.2 \
  --title "1 GiB random disk, $RATE link: time / (size/bandwidth), median of $REPS" \
  --xlabel 'RTT (ms)' --ylabel 'time / limit' --legend Right --width 1000 --height 450
plot line --in "$TL" --where rep=1 --out "$IMG_DIR/reloc-time-progress.png" --x t_s --y local_MiB --series label \
  --series-prefix 'RTT (ms) ' --title "local bytes over time (rep 1), $RATE link; limit $LIMIT s" \
  --xlabel 's since proxy launch' --ylabel 'local MiB' --legend UpperLeft
plot line --in "$TL" --where rep=1 --out "$IMG_DIR/reloc-time-window.png" --x t_s --y window --series label --step \
  --series-prefix 'RTT (ms) ' --title 'prefetch window (chunks of 256 KiB in flight), rep 1' \
  --xlabel 's since proxy launch' --ylabel 'window' --legend Right --width 900
