#!/usr/bin/env bash
# Issue 13 goal 6 (first part): one site process with N disks. Creates N sparse disks through the management API
# (concurrency C), then restarts the site and times exec -> its ready line (every disk recovered and exported), and
# reads the node's RSS (VmRSS, VmHWM) at each stage and the latency of GET /api/v1/disks.
# Usage: bench/scale-disks.sh    env: N=1000 C=8 DISK_SIZE=1073741824 SKIP_BUILD=0 KEEP=0
set -euo pipefail
source "$(dirname "$0")/lib.sh"
N=${N:-1000}; C=${C:-8}; DISK_SIZE=${DISK_SIZE:-1073741824}
bench_init scale-disks

A=$(free_port) NB=$(free_port) MG=$(free_port)
site_conf site-a "$A" "$NB" "$MG" "127.0.0.1:$NB" "\"akka.tcp://reloc@127.0.0.1:$A\""
cp "$ROOT/hocon/reloc.conf" "$WORK/reloc.conf"
rss() { awk '/VmRSS|VmHWM/ {printf "%s %.0f MiB  ", $1, $2/1024}' "/proc/$1/status"; }

t0=$EPOCHREALTIME
spawn site-a dotnet "$NODE" --config "$WORK/site-a.conf"; P=$SPAWNED
wait_for "$WORK/site-a.out" 'reloc-node: site' 120
log "empty site ready in $($PY -c "print(f'{$EPOCHREALTIME-$t0:.2f}')") s; $(rss "$P")"

t0=$EPOCHREALTIME
$PY - "127.0.0.1:$MG" "$N" "$C" "$DISK_SIZE" <<'PYEOF'
import json, sys, urllib.request
from concurrent.futures import ThreadPoolExecutor
addr, n, c, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def create(i):
    body = json.dumps({"name": f"d{i:05d}", "site": "site-a", "size": size}).encode()
    req = urllib.request.Request(f"http://{addr}/api/v1/disks", data=body, method="POST", headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r: r.read()
with ThreadPoolExecutor(c) as pool: list(pool.map(create, range(n)))
PYEOF
log "created $N disks in $($PY -c "print(f'{$EPOCHREALTIME-$t0:.2f}')") s; $(rss "$P")"
list_ms() {
  $PY - "127.0.0.1:$MG" <<'PYEOF'
import json, sys, time, urllib.request
t = time.perf_counter()
d = json.loads(urllib.request.urlopen(f"http://{sys.argv[1]}/api/v1/disks", timeout=120).read())
print(f"{len(d['disks'])} disks listed in {(time.perf_counter() - t) * 1e3:.0f} ms")
PYEOF
}
log "$(list_ms)"
stop "$P"
t0=$EPOCHREALTIME
spawn site-a2 dotnet "$NODE" --config "$WORK/site-a.conf"; P=$SPAWNED
wait_for "$WORK/site-a2.out" 'reloc-node: site' 600
log "restarted with $N disks: ready in $($PY -c "print(f'{$EPOCHREALTIME-$t0:.2f}')") s; $(rss "$P")"
log "$(list_ms)"
stop "$P"
