#!/usr/bin/env bash
# Issue 13 goal 6: a 1 TiB sparse disk relocated in time proportional to its allocated bytes.
# Two site processes on loopback (no WAN, no budget). Cases (CASES, each NAME=SIZE:EXTENTS:STRIDE, 1 MiB extents
# of random data every STRIDE bytes from 0, the rest holes):
#   sparse-1pct   1 TiB, 10240 extents every 100 MiB (10 GiB allocated, 0.98 %)
#   sparse-0.1pct 1 TiB, 1024 extents every 1 GiB (1 GiB allocated)
#   sparse-1pct-256g, sparse-0.25pct-256g  256 GiB with 2560 / 640 extents (every 100 / 400 MiB)
#   dense-1g, dense-2.5g, dense-10g        1 GiB, 2.5 GiB, 10 GiB, every MiB (no hole)
# A relocation needs room at the destination for the data plus 5 % of it (Site/Core/RoomCheck; it was 5 % of the
# virtual size, 61 GiB for sparse-1pct, which this machine did not have).
# Per case: the image is made (sparse: truncate, then 1 MiB pwrites) and imported at site-a with `disk create --from`
# (IMPORT=1, timed: RawImage.ImportSparse follows the file's extents; row in scale-sparse.import.tsv) or, IMPORT=0,
# written to an empty disk there with nbdcopy (not timed), then relocated REPS times back and forth (a->b, b->a,
# a->b: the released source's copy is dropped, so at most two copies exist). Each relocation: `relocate` request -> owned by its destination alone (mgmt.py
# wait-relocated); its completed event's fetched and skipped bytes; the hole scan's time (relocate request -> skipped
# bytes reaching the holes' size, polled every 0.1 s: in fact when the copy has walked past the last hole); the destination's RSS before and its peak during (VmRSS
# every 0.1 s: the block map of a 1 TiB disk is 4 MiB). At the end the last owner's image is compared with the
# source image by `qemu-img compare` (both raw files; it skips what both have as holes). The image is deleted after
# its case (and the sites' data dirs with it).
# Usage: bench/scale-sparse.sh   env: CASES="sparse-0.1pct dense-1g sparse-1pct dense-10g" REPS=3 IMPORT=1 SKIP_BUILD=0 KEEP=0
# Rows in $OUT/scale-sparse.runs.tsv, medians in $OUT/scale-sparse.summary.tsv.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
CASES=${CASES:-"sparse-0.1pct dense-1g sparse-1pct dense-10g"}; REPS=${REPS:-3}; IMPORT=${IMPORT:-1}
bench_init scale-sparse
M="$PY $BENCH_DIR/mgmt.py"
declare -A SPEC=([sparse-1pct]="1T:10240:100M" [sparse-0.1pct]="1T:1024:1G" [sparse-0.25pct-256g]="256G:640:400M"
                 [sparse-1pct-256g]="256G:2560:100M" [dense-1g]="1G:1024:1M" [dense-2.5g]="2560M:2560:1M" [dense-10g]="10G:10240:1M")
SRC=$WORK/src; mkdir -p "$SRC"
RUNS=$OUT/scale-sparse.runs.tsv
IMPORTS=$OUT/scale-sparse.import.tsv
[ -f "$IMPORTS" ] || printf 'case\tsize\tallocated\timport_s\ton_disk_bytes\tload\n' > "$IMPORTS"
[ -f "$RUNS" ] || printf 'case\trep\tsize\tallocated\tfrom\tto\ttime_s\tevent_s\tfetched\tskipped\tscan_s\trss_before_MiB\trss_peak_MiB\trss_delta_MiB\tload\n' > "$RUNS"
cp "$ROOT/hocon/reloc.conf" "$WORK/reloc.conf"

# make_image PATH SIZE EXTENTS STRIDE: a sparse file with EXTENTS 1 MiB extents of random data, one every STRIDE bytes.
make_image() {
  $PY - "$@" <<'PYEOF'
import os, sys, subprocess
path, size, n, stride = sys.argv[1], *(int(subprocess.check_output(["numfmt", "--from=iec", v])) for v in sys.argv[2:])
MiB = 1 << 20
pool = os.urandom(64 * MiB + MiB)   # each extent a different 1 MiB window of the pool: no two alike
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.ftruncate(fd, size)
for k in range(n):
    start = (k * 257 * 4096) % (64 * MiB)
    os.pwrite(fd, pool[start:start + MiB], k * stride)
os.fsync(fd); os.close(fd)
PYEOF
}

for case in $CASES; do
  IFS=: read -r size extents stride <<< "${SPEC[$case]}"
  bytes=$(numfmt --from=iec "$size"); alloc=$((extents << 20))
  img=$SRC/$case.img
  t0=$EPOCHREALTIME; make_image "$img" "$size" "$extents" "$stride"
  log "$case: $size image with $((alloc >> 20)) MiB allocated in $($PY -c "print(f'{$EPOCHREALTIME-$t0:.0f}')") s ($(du -h "$img" | cut -f1) on disk)"
  rm -rf "$WORK/site-a" "$WORK/site-b"
  AA=$(free_port) AB=$(free_port) NA=$(free_port) NB=$(free_port) MA=$(free_port) MB=$(free_port)
  SEEDS="\"akka.tcp://reloc@127.0.0.1:$AA\""
  site_conf site-a "$AA" "$NA" "$MA" "127.0.0.1:$NA" "$SEEDS" "reloc.site.import-dir = \"$SRC\""
  site_conf site-b "$AB" "$NB" "$MB" "127.0.0.1:$NB" "$SEEDS"
  spawn site-a dotnet "$NODE" --config "$WORK/site-a.conf"; PA=$SPAWNED
  wait_for "$WORK/site-a.out" 'reloc-node: site' 240
  spawn site-b dotnet "$NODE" --config "$WORK/site-b.conf"; PB=$SPAWNED
  wait_for "$WORK/site-b.out" 'reloc-node: site' 240
  until $M "127.0.0.1:$MA" cluster.show 2>/dev/null | grep -q '"site": "site-b", "reachable": true'; do sleep 0.2; done
  until $M "127.0.0.1:$MA" relocation.list > /dev/null 2>&1; do sleep 0.2; done
  t0=$EPOCHREALTIME
  if [ "$IMPORT" = 1 ]; then
    # disk create --from: the site imports the file by its data extents (holes neither read nor written). Its own
    # HTTP call: mgmt.py's 60 s timeout is for quick calls (the server allows a create from a file 30 min).
    load=$(cut -d' ' -f1 /proc/loadavg)
    $PY - "127.0.0.1:$MA" "$img" <<'PYEOF'
import json, sys, urllib.request
addr, img = sys.argv[1], sys.argv[2]
req = urllib.request.Request(f"http://{addr}/api/v1/disks", data=json.dumps({"name": "big", "site": "site-a", "from": img}).encode(),
                             method="POST", headers={"content-type": "application/json"})
urllib.request.urlopen(req, timeout=1800).read()
PYEOF
    t=$($PY -c "print(f'{$EPOCHREALTIME-$t0:.2f}')")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$case" "$bytes" "$alloc" "$t" "$(($(stat -c %b "$WORK/site-a/big.img") * 512))" "$load" >> "$IMPORTS"
    log "$case: imported at site-a (disk create --from) in $t s (load $load); $(du -h "$WORK/site-a/big.img" | cut -f1) on disk there"
  else
    # An empty disk, then nbdcopy writes the image's data extents over NBD (it skips the file's holes).
    $M "127.0.0.1:$MA" disk.create "{\"name\":\"big\",\"site\":\"site-a\",\"size\":$bytes}" > /dev/null
    nbdcopy --destination-is-zero "$img" "nbd://127.0.0.1:$NA/big"
    log "$case: written to site-a over NBD (nbdcopy) in $($PY -c "print(f'{$EPOCHREALTIME-$t0:.1f}')") s; $(du -h "$WORK/site-a/big.img" | cut -f1) on disk there"
  fi
  declare -A PIDOF=([site-a]=$PA [site-b]=$PB)
  from=site-a; to=site-b
  for rep in $(seq "$REPS"); do
    load=$(cut -d' ' -f1 /proc/loadavg)
    row=$($PY - "127.0.0.1:$MA" "${PIDOF[$to]}" "$from" "$to" "$((bytes - alloc))" <<'PYEOF'
import json, sys, time, urllib.request
sys.path.insert(0, "bench")
from mgmt import call
addr, pid, src, dst, holes = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"): return int(l.split()[1]) * 1024
before = peak = rss()
t0 = time.time()
call(addr, "relocate", {"disk": "big", "to": dst, "mode": "postcopy"})
scan = None
while True:
    peak = max(peak, rss())
    try:
        p = call(addr, "relocation.show", {"name": "big"})["progress"]
        if scan is None and p["skippedBytes"] >= holes: scan = time.time() - t0
    except RuntimeError:   # not relocating (any more), or the destination not prepared yet: done once owned there alone
        show = call(addr, "disk.show", {"name": "big"})
        if show["owner"] == dst and show["phase"] == "owned" and len(show["copies"]) == 1: break
    except OSError: pass
    time.sleep(0.1)
t = time.time() - t0
ev = [e for e in json.loads(urllib.request.urlopen(f"http://{addr}/api/v1/events?newest=true&limit=50").read())["events"]
      if e["disk"] == "big" and e["kind"] == "completed" and e["toSite"] == dst][-1]
scan_s = f"{scan:.2f}" if scan is not None else ("0" if holes == 0 else "-")
print(f"{t:.2f}\t{ev['durationSeconds']:.2f}\t{ev['fetchedBytes']}\t{ev['skippedBytes']}\t{scan_s}\t{before >> 20}\t{peak >> 20}\t{(peak - before) >> 20}")
PYEOF
)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$case" "$rep" "$bytes" "$alloc" "$from" "$to" "$row" "$load" >> "$RUNS"
    log "$case rep $rep $from -> $to: $row (load $load)"
    tmp=$from; from=$to; to=$tmp
  done
  t0=$EPOCHREALTIME
  qemu-img compare -q -f raw -F raw "$img" "$WORK/$from/big.img" || { log "$case: content differs at $from"; exit 1; }
  log "$case: $from's image equals the source (qemu-img compare, $($PY -c "print(f'{$EPOCHREALTIME-$t0:.1f}')") s); on disk there: $(du -h "$WORK/$from/big.img" | cut -f1)"
  stop "$PB" "$PA"
  rm -rf "$WORK/site-a" "$WORK/site-b" "$img"
done

$PY - "$RUNS" > "$OUT/scale-sparse.summary.tsv" <<'PYEOF'
import sys, statistics as st, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
head, rows = rows[0], rows[1:]
by = collections.defaultdict(list)
for r in rows: by[r[0]].append(dict(zip(head, r)))
print("case\tsize\tallocated_MiB\ttime_s\tevent_s\tfetched_MiB\tscan_s\trss_delta_MiB\tMB_per_s_allocated\truns")
for c, rs in by.items():
    m = lambda k: st.median(float(r[k]) for r in rs if r[k] != "-")
    t = m("time_s")
    print(f"{c}\t{rs[0]['size']}\t{int(rs[0]['allocated']) >> 20}\t{t:.2f}\t{m('event_s'):.2f}\t{m('fetched') / 2**20:.0f}\t"
          f"{m('scan_s') if any(r['scan_s'] != '-' for r in rs) else '-'}\t{m('rss_delta_MiB'):.0f}\t{int(rs[0]['allocated']) / t / 1e6:.0f}\t"
          + ", ".join(r["time_s"] for r in rs))
PYEOF
cat "$OUT/scale-sparse.summary.tsv"
