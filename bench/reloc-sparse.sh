#!/usr/bin/env bash
# Relocation time of a sparse disk through the WAN link emulator, against allocated/bandwidth: the proxy
# asks the source for its holes (NBD BLOCK_STATUS) and should move only the allocated data.
# Image: SIZE sparse (truncate), CHUNKS chunks of 4 MiB of random data at distinct random 4 MiB-aligned
# offsets (seeded: the same image every time), i.e. ~10 % allocated by default.
# Topology and timing as in bench/reloc-time.sh (serve <- wanlink <- proxy; wall clock from proxy launch).
# Usage: bench/reloc-sparse.sh      env: SIZE=4G CHUNKS=103 RTT=50ms RATE=40MB/s QUEUE=100ms REPS=3 SEED=42 SKIP_BUILD=0 KEEP=0
set -euo pipefail
source "$(dirname "$0")/lib.sh"
SIZE=${SIZE:-4G}; CHUNKS=${CHUNKS:-103}; RTT=${RTT:-50ms}; RATE=${RATE:-40MB/s}; QUEUE=${QUEUE:-100ms}; REPS=${REPS:-3}; SEED=${SEED:-42}
bench_init reloc-sparse

SRC=$WORK/sparse.img
$PY - "$SRC" "$(numfmt --from=iec "$SIZE")" "$CHUNKS" "$SEED" <<'EOF'
import os, random, sys
path, size, chunks, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
piece = 4 << 20
rng = random.Random(seed)
with open(path, "wb") as f:
    f.truncate(size)
    for slot in sorted(rng.sample(range(size // piece), chunks)):
        f.seek(slot * piece)
        f.write(os.urandom(piece))
EOF
ALLOC=$(( $(stat -c %b "$SRC") * $(stat -c %B "$SRC") ))
RATE_BPS=$(rate_bps "$RATE")
LIMIT=$($PY -c "print(f'{$ALLOC/$RATE_BPS:.3f}')")
log "image $SIZE with $ALLOC bytes allocated ($CHUNKS x 4 MiB) at $RATE, RTT $RTT: limit $LIMIT s"

SPORT=$(free_port)
start_serve source "$SPORT" "disk=$SRC:ro"
RUNS=$OUT/reloc-sparse.runs.tsv TL=$OUT/reloc-sparse.timeline.tsv
: > "$RUNS"; : > "$TL"
for rep in $(seq "$REPS"); do
  WPORT=$(free_port); PPORT=$(free_port)
  start_wanlink wan "$WPORT" "$SPORT" "$RTT" "$RATE" "$QUEUE"; WPID=$SPAWNED
  rm -rf "$WORK/state" "$WORK/dst.img"
  start_proxy proxy "$PPORT" "$WORK/dst.img" "nbd://127.0.0.1:$WPORT/disk" "$WORK/state"
  wait_complete proxy "$WPORT" 600
  stop "$PROXY_PID" "$WPID"
  cp "$WORK/proxy.jsonl" "$OUT/reloc-sparse.rep$rep.jsonl"
  $PY "$BENCH_DIR/proxy_run.py" "$WORK/proxy.jsonl" "$PROXY_T0" "$T_COMPLETE_LINE" "$T_SOURCE_CLOSED" "$LIMIT" "sparse" "$rep" "$RUNS" "$TL"
  log "rep $rep: $(tail -1 "$RUNS")"
  qemu-img compare -q -f raw -F raw "$SRC" "$WORK/dst.img" || { log "relocated image differs from the source"; exit 1; }
  log "rep $rep: relocated image identical to the source; $(du -B1 "$WORK/dst.img" | cut -f1) bytes allocated"
  rm -rf "$WORK/state" "$WORK/dst.img"
done

SUM=$OUT/reloc-sparse.summary.tsv
$PY - "$RUNS" "$LIMIT" "$ALLOC" > "$SUM" <<'EOF'
import sys, statistics as st
rs = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
limit, alloc = float(sys.argv[2]), int(sys.argv[3])
m = lambda f: st.median(f(r) for r in rs)
c = lambda k: m(lambda r: float(r[k]))
el, ec = m(lambda r: float(r[2]) - float(r[3])), m(lambda r: float(r[4]) - float(r[3]))
print("allocated_MiB\tlimit_s\tt_line_s\tratio_line\tt_close_s\tratio_close\tt_first_s\teng_line_s\tratio_eng_line\teng_close_s\tratio_eng_close\tfetched_MiB\tskipped_MiB\tn")
print(f"{alloc/2**20:.0f}\t{limit:.2f}\t{c(2):.2f}\t{c(5):.3f}\t{c(4):.2f}\t{c(6):.3f}\t{c(3):.2f}\t{el:.2f}\t{el/limit:.3f}\t{ec:.2f}\t{ec/limit:.3f}\t{c(11):.0f}\t{c(12):.0f}\t{len(rs)}")
EOF
cat "$RUNS"; echo; cat "$SUM"

plot line --in "$TL" --out "$IMG_DIR/reloc-sparse-progress.png" --x t_s --y fetched_MiB --series rep --series-prefix 'rep ' \
  --hline "$($PY -c "print(f'{$ALLOC/2**20:.1f}')")=allocated" \
  --title "$SIZE sparse, $(($ALLOC >> 20)) MiB allocated, $RATE, RTT $RTT: fetched MiB (limit $LIMIT s)" \
  --xlabel 's since proxy launch' --ylabel 'fetched MiB' --legend LowerRight
