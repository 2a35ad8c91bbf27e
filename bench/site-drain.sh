#!/usr/bin/env bash
# Admission queue (issue 13, goal 5): `reloc site drain` of N disks between two site processes on one link budget,
# for each reloc.coordinator.max-concurrent-relocations-per-site in LIMITS. N random disks of SIZE are created at
# site-a (not timed); then POST /api/v1/sites/site-a/drain {"to":"site-b"} is sent. Timed: the drain request -> every
# disk owned by site-b at epoch 2 and gone from site-a. Meanwhile the coordinator's list (GET /api/v1/relocations) is
# read every 0.1 s: the most relocations running at once (not queued) it showed. Each image at site-b is compared
# with its source (sha256). The link budget bounds the aggregate, so the limit should cost no time: it only decides
# how many copy at once.
# Usage: bench/site-drain.sh   env: LIMITS="1 2 4 off" REPS=1 N=8 SIZE=32M BUDGET=40MB/s SKIP_BUILD=0 KEEP=0
# Prints per-run rows and a summary (TSV) on stdout; files in $OUT (artifacts/bench).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
LIMITS=${LIMITS:-"1 2 4 off"}; REPS=${REPS:-1}; N=${N:-8}; SIZE=${SIZE:-32M}; BUDGET=${BUDGET:-40MB/s}
bench_init site-drain
BUDGET_BPS=$(rate_bps "$BUDGET"); BYTES=$(numfmt --from=iec "$SIZE")
for i in $(seq 0 $((N - 1))); do make_random_image "${TMPDIR:-/tmp}/reloc-bench-drain-$SIZE-$i.img" "$SIZE"; done

api() { curl -sf -X "$1" "http://127.0.0.1:$2$3" -H 'content-type: application/json' ${4:+-d "$4"}; }

RUNS=$OUT/site-drain.runs.tsv
printf 'limit\trep\tn\tsize_B\tbudget_Bps\tseconds\tmax_running\taggregate_ratio\n' > "$RUNS"
cp "$ROOT/hocon/reloc.conf" "$WORK/reloc.conf"
for rep in $(seq "$REPS"); do
  for limit in $LIMITS; do
    rm -rf "$WORK/site-a" "$WORK/site-b"
    AA=$(free_port) AB=$(free_port) NA=$(free_port) NB=$(free_port) MA=$(free_port) MB=$(free_port)
    SEEDS="\"akka.tcp://reloc@127.0.0.1:$AA\""
    extra=("reloc.site.import-dir = \"${TMPDIR:-/tmp}\"" "reloc.links = [ { sites = [site-a, site-b], bandwidth = \"$BUDGET\" } ]"
           "reloc.coordinator.max-concurrent-relocations-per-site = $limit")
    site_conf site-a "$AA" "$NA" "$MA" "127.0.0.1:$NA" "$SEEDS" "${extra[@]}"
    site_conf site-b "$AB" "$NB" "$MB" "127.0.0.1:$NB" "$SEEDS" "${extra[@]}"
    spawn site-a dotnet "$NODE" --config "$WORK/site-a.conf"; PA=$SPAWNED
    wait_for "$WORK/site-a.out" 'reloc-node: site' 240
    spawn site-b dotnet "$NODE" --config "$WORK/site-b.conf"; PB=$SPAWNED
    wait_for "$WORK/site-b.out" 'reloc-node: site' 240
    until api GET "$MA" /api/v1/cluster 2>/dev/null | grep -q '"status":"Up","site":"site-b","reachable":true'; do sleep 0.2; done
    until api GET "$MA" /api/v1/relocations > /dev/null 2>&1; do sleep 0.2; done   # the coordinator is up
    for i in $(seq 0 $((N - 1))); do
      api POST "$MA" /api/v1/disks "{\"name\":\"vm$i\",\"site\":\"site-a\",\"from\":\"${TMPDIR:-/tmp}/reloc-bench-drain-$SIZE-$i.img\"}" > /dev/null
    done
    row=$($PY - "127.0.0.1:$MA" "$N" <<'PYEOF'
import json, sys, time, urllib.error, urllib.request
addr, n = sys.argv[1], int(sys.argv[2])
def call(method, path, body=None):
    req = urllib.request.Request(f"http://{addr}{path}", data=None if body is None else json.dumps(body).encode(), method=method,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        sys.exit(f"{method} {path}: {e.code} {e.read().decode()}")
t0 = time.monotonic()
drain = call("POST", "/api/v1/sites/site-a/drain", {"to": "site-b"})
assert len(drain["relocations"]) == n and not drain["skipped"], drain
most = 0
while True:
    running = [r for r in call("GET", "/api/v1/relocations") if r["phase"] != "queued"]
    most = max(most, len(running))
    disks = call("GET", "/api/v1/disks")["disks"]
    if sum(1 for d in disks if d["site"] == "site-b" and d["phase"] == "owned" and d["epoch"] == 2) == n and not any(d["site"] == "site-a" for d in disks):
        break
    time.sleep(0.1)
print(f"{time.monotonic() - t0:.2f}\t{most}")
PYEOF
)
    seconds=${row%%$'\t'*}; most=${row##*$'\t'}
    for i in $(seq 0 $((N - 1))); do
      [ "$(sha256sum < "$WORK/site-b/vm$i.img")" = "$(sha256sum < "${TMPDIR:-/tmp}/reloc-bench-drain-$SIZE-$i.img")" ] \
        || { log "vm$i: content differs at site-b"; exit 1; }
    done
    ratio=$($PY -c "print(f'{$N * $BYTES / $seconds / $BUDGET_BPS:.3f}')")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$limit" "$rep" "$N" "$BYTES" "$BUDGET_BPS" "$seconds" "$most" "$ratio" >> "$RUNS"
    log "limit $limit rep $rep: $seconds s, at most $most running, aggregate $ratio x budget (content of $N disks checked)"
    stop "$PB" "$PA"
  done
done
cat "$RUNS"
