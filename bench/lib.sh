# bench/lib.sh: shared by the relocation benchmarks (sourced, not run). Starts reloc-node serve,
# wanlink and proxy processes in the background on free 127.0.0.1 ports, remembers every pid it
# started and stops them all (SIGTERM, then SIGKILL after 5 s) when the sourcing script exits.
# Work files go to a fresh directory under ${TMPDIR:-/tmp}, removed at exit unless KEEP=1.
# shellcheck shell=bash

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
NODE=${NODE:-$ROOT/src/Reloc.Node/bin/Release/net10.0/reloc-node.dll}  # NODE=...: another build, for before/after runs
PLOT_DLL=$BENCH_DIR/Reloc.Bench.Plot/bin/Release/net10.0/reloc-bench-plot.dll
PY=/usr/bin/python3                      # Debian's python3: the one with the nbd (libnbd) module
OUT=${OUT:-$ROOT/artifacts/bench}        # TSV results
IMG_DIR=${IMG_DIR:-$ROOT/docs/img}       # PNG plots
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

log() { echo "[$(date +%T)] $*" >&2; }

# bench_init NAME: work directory, exit trap, and (unless SKIP_BUILD=1) a Release build of the node and the plotter.
bench_init() {
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/reloc-$1.XXXXXX")
  mkdir -p "$OUT" "$IMG_DIR"
  _PIDS=()
  set -E
  trap 'log "$(basename "$0"): failed (status $?) at line $LINENO: $BASH_COMMAND"' ERR
  trap _bench_cleanup EXIT
  trap 'exit 130' INT TERM
  if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building reloc-node and reloc-bench-plot (Release)"
    dotnet build -c Release -nologo -v q "$ROOT/src/Reloc.Node" > "$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; exit 1; }
    dotnet build -c Release -nologo -v q "$BENCH_DIR/Reloc.Bench.Plot" >> "$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; exit 1; }
  fi
}

_bench_cleanup() {
  local i pid
  for ((i = ${#_PIDS[@]} - 1; i >= 0; i--)); do _stop_pid "${_PIDS[$i]}"; done
  _PIDS=()
  if [ "${KEEP:-0}" = 1 ]; then log "work files kept in $WORK"; else rm -rf "$WORK"; fi
}

_stop_pid() {
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# stop PID...: stops processes this script started (and forgets them).
stop() {
  local pid keep=() p
  for pid in "$@"; do _stop_pid "$pid"; done
  for p in "${_PIDS[@]}"; do
    [[ " $* " == *" $p "* ]] || keep+=("$p")
  done
  _PIDS=("${keep[@]}")
}

free_port() {
  $PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for FILE REGEX [TIMEOUT_S]: until a line of FILE matches.
wait_for() {
  local file=$1 re=$2 deadline=$((SECONDS + ${3:-60}))
  until grep -Eq -- "$re" "$file" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { log "timed out waiting for /$re/ in $file"; tail -5 "$file" "${file%.*}.err" >&2 2>/dev/null; return 1; }
    sleep 0.05
  done
}

# spawn NAME CMD...: runs CMD in the background (stdout $WORK/NAME.out, stderr $WORK/NAME.err); pid in SPAWNED.
spawn() {
  local name=$1; shift
  "$@" > "$WORK/$name.out" 2> "$WORK/$name.err" < /dev/null &
  SPAWNED=$!
  _PIDS+=("$SPAWNED")
}

# start_serve NAME PORT EXPORT=PATH[:ro]: reloc-node serve, waits for its "listening" line.
start_serve() {
  spawn "$1" dotnet "$NODE" serve --listen "127.0.0.1:$2" --export "$3"
  wait_for "$WORK/$1.out" listening 60
}

# start_wanlink NAME PORT TARGET_PORT RTT RATE [QUEUE]: the WAN link emulator, waits for its banner.
start_wanlink() {
  spawn "$1" dotnet "$NODE" wanlink --listen "127.0.0.1:$2" --target "127.0.0.1:$3" --rtt "$4" --rate "$5" --queue "${6:-100ms}"
  wait_for "$WORK/$1.out" 'reloc-node wanlink' 60
}

# start_proxy NAME PORT IMAGE SOURCE_URI STATE_DIR [EXTRA ARGS...]: reloc-node proxy whose JSON progress
# lines are stamped on arrival: $WORK/NAME.jsonl holds "EPOCH_SECONDS<TAB>JSON" per line. PROXY_T0 is
# the wall clock just before the launch, PROXY_PID the proxy's pid. Does not wait.
start_proxy() {
  local name=$1 port=$2 image=$3 source=$4 state=$5; shift 5
  local fifo=$WORK/$name.fifo
  rm -f "$fifo"; mkfifo "$fifo"
  : > "$WORK/$name.jsonl"   # emptied now, not when the stamper gets to run: no stale line from a previous run
  ( while IFS= read -r line; do printf '%s\t%s\n' "$EPOCHREALTIME" "$line"; done < "$fifo" >> "$WORK/$name.jsonl" ) &
  _PIDS+=("$!")
  PROXY_T0=$EPOCHREALTIME
  dotnet "$NODE" proxy --listen "127.0.0.1:$port" --export "disk=$image" --source "$source" --state-dir "$state" "$@" \
    > "$fifo" 2> "$WORK/$name.err" < /dev/null &
  PROXY_PID=$!
  _PIDS+=("$PROXY_PID")
}

# wait_proxy_listening NAME PORT: until the proxy's first JSON line and an NBD answer on its port.
wait_proxy_listening() {
  wait_for "$WORK/$1.jsonl" '"state"' 60
  for _ in $(seq 200); do
    nbdinfo --size "nbd://127.0.0.1:$2/disk" > /dev/null 2>&1 && return 0
    sleep 0.05
  done
  log "proxy $1 not answering on port $2"; return 1
}

# wait_complete NAME SOURCE_PORT [TIMEOUT_S]: until the proxy prints "state":"complete". Meanwhile polls
# (every 0.1 s) the proxy's TCP connections to SOURCE_PORT: the disk closes them as soon as every block is
# local and persisted, so their close is a finer completion mark than the once-a-second JSON line.
# Sets T_COMPLETE_LINE (stamp of the complete line) and T_SOURCE_CLOSED (first poll that saw none left).
wait_complete() {
  local name=$1 sport=$2 deadline=$((SECONDS + ${3:-600})) file=$WORK/$1.jsonl seen=0 n
  T_SOURCE_CLOSED=""
  while ! grep -q '"state":"complete"' "$file"; do
    [ $SECONDS -lt $deadline ] || { log "proxy $name did not complete in time"; tail -3 "$file" >&2; return 1; }
    kill -0 "$PROXY_PID" 2>/dev/null || { log "proxy $name exited"; cat "$WORK/$name.err" >&2; return 1; }
    if [ -z "$T_SOURCE_CLOSED" ]; then
      n=$(ss -Htn state established "( dport = :$sport )" 2>/dev/null | wc -l) || n=1  # a failed dump counts as open
      if [ "$n" -gt 0 ]; then
        grep -q '"local_bytes":[1-9]' "$file" && seen=1
      elif [ $seen = 1 ]; then
        T_SOURCE_CLOSED=$EPOCHREALTIME
      fi
    fi
    sleep 0.1
  done
  T_COMPLETE_LINE=$(grep -m1 '"state":"complete"' "$file" | cut -f1)
  [ -n "$T_SOURCE_CLOSED" ] || T_SOURCE_CLOSED=$T_COMPLETE_LINE
}

# site_conf NAME AKKA NBD MGMT ADVERTISE SEEDS [HOCON_LINE...]: a site file $WORK/NAME.conf (the shipped reloc.conf,
# copied to $WORK, is its fallback); extra HOCON lines go at its end.
site_conf() {
  local name=$1 akka=$2 nbd=$3 mgmt=$4 advertise=$5 seeds=$6; shift 6
  {
    cat <<CONF
reloc.site { name = $name, data-dir = "$WORK/$name", nbd.listen = "127.0.0.1:$nbd", nbd.advertise = "$advertise" }
reloc.management.listen = "127.0.0.1:$mgmt"
akka.remote.dot-netty.tcp.port = $akka
akka.cluster { seed-nodes = [$seeds], roles = [$name] }
CONF
    printf '%s\n' "$@"
  } > "$WORK/$name.conf"
}

# span_seconds "SENT DONE": the seconds between two epoch stamps (mgmt.py relocate-timed's answer).
span_seconds() { $PY -c "s, d = map(float, '$1'.split()); print(f'{d-s:.3f}')"; }

# plot line|bars ARGS...: runs the ScottPlot tool (bench/Reloc.Bench.Plot).
plot() { dotnet "$PLOT_DLL" "$@"; }

# make_random_image PATH SIZE: SIZE bytes of /dev/urandom (kept across runs when it has the right size).
make_random_image() {
  local path=$1 size=$2 bytes
  bytes=$(numfmt --from=iec "$size")
  if [ -f "$path" ] && [ "$(stat -c %s "$path")" = "$bytes" ]; then return 0; fi
  log "creating $size random image $path"
  head -c "$size" /dev/urandom > "$path"
}

# rate_bps 40MB/s: bytes per second (decimal kB/MB/GB, binary KiB/MiB/GiB), like reloc-node's units.
rate_bps() {
  $PY -c "
import re, sys
m = re.fullmatch(r'([0-9.]+)(kB/s|KB/s|MB/s|GB/s|KiB/s|MiB/s|GiB/s)', sys.argv[1])
f = {'kB/s': 1e3, 'KB/s': 1e3, 'MB/s': 1e6, 'GB/s': 1e9, 'KiB/s': 2**10, 'MiB/s': 2**20, 'GiB/s': 2**30}[m[2]]
print(int(float(m[1]) * f))" "$1"
}
