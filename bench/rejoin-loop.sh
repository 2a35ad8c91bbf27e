#!/usr/bin/env bash
# Rejoin after kill -9: three site processes (reloc-node --config, seeds a and b, as the process tests
# run them); each round kill -9s one site and restarts it at once on the same ports, then waits until
# every site sees three members, all Up and reachable (management endpoint's cluster.show). A round that
# does not get there within TIMEOUT seconds counts as failed; the cluster is then started afresh.
# Usage: bench/rejoin-loop.sh   env: ROUNDS=20 KILL=b TIMEOUT=60 SBR=3s LOGLEVEL=INFO LOGLEVEL_A=$LOGLEVEL
#                                    EXTRA='hocon for every site' SKIP_BUILD=0 KEEP=0
# Prints one TSV line per round (round, ok|FAIL, seconds to rejoin) and the failure count; logs in $WORK.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ROUNDS=${ROUNDS:-20}; KILL=${KILL:-b}; TIMEOUT=${TIMEOUT:-60}; SBR=${SBR:-3s}; LOGLEVEL=${LOGLEVEL:-INFO}
LOGLEVEL_A=${LOGLEVEL_A:-$LOGLEVEL}; EXTRA=${EXTRA:-}
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  log "building reloc-node (Release)"
  nice -n 10 dotnet build -c Release -nologo -v q "$ROOT/src/Reloc.Node" > /dev/null
fi
SKIP_BUILD=1 bench_init rejoin
M="$PY $BENCH_DIR/mgmt.py"
cp "$ROOT/hocon/reloc.conf" "$WORK/reloc.conf"
declare -A AKKA NBD MGMT PID
for s in a b c; do AKKA[$s]=$(free_port); NBD[$s]=$(free_port); MGMT[$s]=$(free_port); done
SEEDS="\"akka.tcp://reloc@127.0.0.1:${AKKA[a]}\", \"akka.tcp://reloc@127.0.0.1:${AKKA[b]}\""
for s in a b c; do
  cat > "$WORK/site-$s.conf" <<CONF
reloc.site { name = site-$s, data-dir = "$WORK/site-$s", nbd.listen = "127.0.0.1:${NBD[$s]}" }
reloc.management.listen = "127.0.0.1:${MGMT[$s]}"
akka.loglevel = $([ "$s" = a ] && echo "$LOGLEVEL_A" || echo "$LOGLEVEL")
$EXTRA
akka.remote.dot-netty.tcp.port = ${AKKA[$s]}
akka.cluster { seed-nodes = [$SEEDS], roles = [site-$s], split-brain-resolver.stable-after = $SBR }
CONF
done

# start SITE TAG: the site process, its output appended to $WORK/site-SITE.out (TAG marks the incarnation).
start() {
  echo "=== $2 $(date +%T.%N)" >> "$WORK/site-$1.out"
  dotnet "$NODE" --config "$WORK/site-$1.conf" >> "$WORK/site-$1.out" 2>> "$WORK/site-$1.err" < /dev/null &
  PID[$1]=$!
  _PIDS+=("$!")
}

# all_up VIA N: VIA sees exactly N members, all Up and reachable.
all_up() {
  $M "127.0.0.1:${MGMT[$1]}" cluster.show 2>/dev/null | $PY -c "
import json, sys
m = json.load(sys.stdin)['members']
sys.exit(0 if len(m) == $2 and all(x['status'] == 'Up' and x['reachable'] for x in m) else 1)"
}

# wait_all_up SECONDS: every site sees three Up members; status 1 on timeout.
wait_all_up() {
  local deadline=$((SECONDS + $1)) s
  for s in a b c; do
    until all_up "$s" 3; do [ $SECONDS -lt $deadline ] || return 1; sleep 0.2; done
  done
}

fresh_cluster() {
  local s
  for s in a b c; do [ -n "${PID[$s]:-}" ] && stop "${PID[$s]}"; PID[$s]=""; done
  rm -rf "$WORK"/site-?/
  for s in a b c; do
    start "$s" "fresh"
    wait_for "$WORK/site-$s.out" "reloc-node: site site-$s" 60
  done
  wait_all_up 90 || { log "a fresh cluster did not form"; exit 1; }
}

fresh_cluster
failed=0
printf 'round\tresult\trejoin_s\n'
for round in $(seq "$ROUNDS"); do
  kill -KILL "${PID[$KILL]}"; wait "${PID[$KILL]}" 2>/dev/null || true
  t0=$EPOCHREALTIME
  start "$KILL" "round $round"
  if wait_all_up "$TIMEOUT"; then
    printf '%s\tok\t%s\n' "$round" "$($PY -c "print(f'{$EPOCHREALTIME-$t0:.1f}')")"
  else
    failed=$((failed + 1))
    printf '%s\tFAIL\t>%s\n' "$round" "$TIMEOUT"
    for s in a b c; do log "site-$s sees: $($M "127.0.0.1:${MGMT[$s]}" cluster.show 2>&1 | head -c 600)"; done
    cp "$WORK/site-a.out" "$WORK/fail-$round-site-a.out"; cp "$WORK/site-$KILL.out" "$WORK/fail-$round-site-$KILL.out"
    cp "$WORK/site-c.out" "$WORK/fail-$round-site-c.out"
    fresh_cluster
  fi
done
echo "failed $failed of $ROUNDS (kill -9 and immediate restart of site-$KILL)"
