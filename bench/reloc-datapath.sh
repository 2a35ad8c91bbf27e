#!/usr/bin/env bash
# Data path of a fully relocated disk: `reloc-node proxy` after its relocation completed, against
# `reloc-node serve` of the same image, through the shared harness (../shared/bench/bench-nbd.sh: functional
# smoke test, then nbdcopy whole-image read and fio 4 KiB random read/write at QD16; repetitions interleaved).
#  1. serve the random image; a proxy relocates it over loopback (no link, no rate cap) until "complete", then
#     stops (SIGTERM: flushed, state durable); its state directory is the template.
#  2. bench-nbd.sh with two custom specs: serve, and bench/proxy-completed.sh (a fresh copy of the template
#     state for the harness's own copy of the image: the harness copies IMG for every server it starts).
# Usage: bench/reloc-datapath.sh    env: SIZE=1G REPS=3 TESTS="seqread randread randwrite" HARNESS=../shared/bench/bench-nbd.sh
#                                        (RUNTIME, IOSIZE, CHECK pass through to the harness) SKIP_BUILD=0 KEEP=0
set -euo pipefail
source "$(dirname "$0")/lib.sh"
SIZE=${SIZE:-1G}; REPS=${REPS:-3}; TESTS=${TESTS:-"seqread randread randwrite"}
HARNESS=${HARNESS:-$ROOT/../shared/bench/bench-nbd.sh}
[ -x "$HARNESS" ] || HARNESS=/work/shared/bench/bench-nbd.sh
bench_init reloc-datapath

SRC=${SRC_IMG:-${TMPDIR:-/tmp}/reloc-bench-src-$SIZE.img}
make_random_image "$SRC" "$SIZE"
SPORT=$(free_port)
start_serve source "$SPORT" "disk=$SRC:ro"

PPORT=$(free_port)
start_proxy relocate "$PPORT" "$WORK/relocated.img" "nbd://127.0.0.1:$SPORT/disk" "$WORK/template"
wait_complete relocate "$SPORT" 600
stop "$PROXY_PID"
log "relocated over loopback in $($PY -c "print(f'{$T_COMPLETE_LINE-$PROXY_T0:.1f}')") s (complete line); template state: $(ls "$WORK/template" | tr '\n' ' ')"
cmp "$SRC" "$WORK/relocated.img"
rm -f "$WORK/relocated.img"

P1=$(free_port) P2=$(free_port)
mkdir -p "$WORK/harness" "$WORK/states"
REPS=$REPS TESTS=$TESTS IMG=$SRC WORK=$WORK/harness "$HARNESS" \
  "custom:serve:$P1:disk:dotnet $NODE serve --listen 127.0.0.1:{PORT} --export {EXPORT}={IMG}" \
  "custom:proxy-complete:$P2:disk:$BENCH_DIR/proxy-completed.sh $WORK/template $WORK/states nbd://127.0.0.1:$SPORT/disk {PORT} {EXPORT} {IMG}" \
  > "$WORK/harness.out" 2> "$WORK/harness.err" || { cat "$WORK/harness.err" >&2; exit 1; }
grep -E 'check .*: (PASS|FAIL)' "$WORK/harness.err" >&2 || true
grep -q 'FAIL' "$WORK/harness.err" && { log "functional check failed"; exit 1; }
cp "$WORK/harness/results.tsv" "$OUT/reloc-datapath.runs.tsv"
cp "$WORK/harness/summary.md" "$OUT/reloc-datapath.summary.md"
SUM=$OUT/reloc-datapath.summary.tsv
$PY - "$OUT/reloc-datapath.runs.tsv" > "$SUM" <<'PYEOF'
import sys, statistics as st, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
by = collections.defaultdict(list)
for r in rows: by[(r[1], r[0])].append(float(r[3]))
units = {r[1]: r[4] for r in rows}
print("test\tunit\tserve\tproxy_complete\tratio\tserve_runs\tproxy_runs")
for t in ["seqread", "randread", "randwrite", "seqwrite"]:
    s, p = by.get((t, "serve")), by.get((t, "proxy-complete"))
    if not s or not p: continue
    print(f"{t}\t{units[t]}\t{st.median(s):.0f}\t{st.median(p):.0f}\t{st.median(p) / st.median(s):.3f}\t"
          f"{'/'.join(f'{x:.0f}' for x in s)}\t{'/'.join(f'{x:.0f}' for x in p)}")
PYEOF
cat "$WORK/harness/summary.md"; echo; cat "$SUM"
plot bars --in "$SUM" --out "$IMG_DIR/reloc-datapath-ratio.png" --label test --value ratio --decimals 2 --hline '0.9=goal 0.9' \
  --title "completed proxy / serve, 1 GiB random image on loopback (median of $REPS)" --ylabel 'ratio to serve' --legend LowerRight
