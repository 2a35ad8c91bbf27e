#!/usr/bin/env bash
# Issue 13 goal 2: a guest's first contact with a fresh Reloc export, cold (nothing connected before it):
# the first NBD connection (TCP + handshake) and the first 4 KiB reads, each a miss at a relocating proxy.
# Per rep: (a) `reloc-node serve` of a local image, its first connection and reads (no WAN); (b) a fresh
# `reloc-node proxy` behind the WAN link emulator (RTT, RATE), started with --prefetch off so the first reads
# are plain misses on an idle link; its readiness is its first JSON progress line, never an NBD probe.
# BUILDS="label=path/reloc-node.dll ..." compares builds side by side, interleaved per rep (default: this tree's).
# Usage: bench/first-contact.sh    env: RTT=50ms RATE=40MB/s SIZE=1G REPS=5 PREFETCH=off BUILDS=... SKIP_BUILD=0 KEEP=0
set -euo pipefail
source "$(dirname "$0")/lib.sh"
RTT=${RTT:-50ms}; RATE=${RATE:-40MB/s}; SIZE=${SIZE:-1G}; REPS=${REPS:-5}; PREFETCH=${PREFETCH:-off}
bench_init first-contact

SRC=${SRC_IMG:-${TMPDIR:-/tmp}/reloc-bench-src-$SIZE.img}
make_random_image "$SRC" "$SIZE"
ROWS=$OUT/first-contact-prefetch-$PREFETCH.tsv
printf 'label\trep\tstep\tms\n' > "$ROWS"
BUILDS=${BUILDS:-"head=$NODE"}
for rep in $(seq "$REPS"); do
 for build in $BUILDS; do
  tag=${build%%=*}; NODE=${build#*=}
  SPORT=$(free_port)
  start_serve source "$SPORT" "disk=$SRC:ro"; SPID=$SPAWNED
  $PY "$BENCH_DIR/first_contact.py" "nbd://127.0.0.1:$SPORT/disk" "$tag serve" "$rep" "$ROWS" 3 "$rep" >&2
  WPORT=$(free_port); PPORT=$(free_port)
  start_wanlink wan "$WPORT" "$SPORT" "$RTT" "$RATE"; WPID=$SPAWNED
  rm -rf "$WORK/state" "$WORK/dst.img"
  start_proxy proxy "$PPORT" "$WORK/dst.img" "nbd://127.0.0.1:$WPORT/disk" "$WORK/state" --prefetch "$PREFETCH"
  wait_for "$WORK/proxy.jsonl" '"state"' 60
  $PY "$BENCH_DIR/first_contact.py" "nbd://127.0.0.1:$PPORT/disk" "$tag proxy-rtt${RTT}-prefetch-$PREFETCH" "$rep" "$ROWS" 3 "$rep" >&2
  stop "$PROXY_PID" "$WPID" "$SPID"
 done
done
$PY - "$ROWS" "${RTT%ms}" <<'PYEOF'
import sys, statistics as st, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
by = collections.defaultdict(list)
for label, rep, step, ms in rows: by[(label, step)].append(float(ms))
print("| export | step | median ms | runs (ms) |\n|---|---|---:|---|")
for (label, step), v in by.items():
    print(f"| {label} | {step} | {st.median(v):.1f} | {' '.join(f'{x:.1f}' for x in v)} |")
PYEOF
