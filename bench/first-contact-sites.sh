#!/usr/bin/env bash
# Issue 13 goal 2 at sites, cold: every figure is the first of its kind in a fresh process. Per rep, side by side:
#  proxy  a fresh `reloc-node proxy` behind the WAN link emulator (as bench/first-contact.sh): connect, first miss;
#  site   (a) two fresh site processes, site-a behind `reloc-node wanlink` (RTT, RATE) as bench/reloc-sites.sh has
#         them; a SIZE random disk created at site-a, then the sites' first relocation (`relocate`, postcopy,
#         PREFETCH off by default so the first reads are plain misses on an idle link); once site-b owns the disk
#         (management API, no NBD probe) the guest connects to site-b's export: connect, first miss, two more misses;
#  tls    (b, c) a fresh site with reloc.tls.mode = allow (throwaway CA made with certtool, as TestPki does) and an
#         empty 64 MiB disk: site-plain = the first connection to it ever, plain; in another fresh process
#         site-tls = its first connection ever, over TLS (STARTTLS and the handshake), then site-tls-warm = a second
#         TLS connection to the same process; each connect then reads 4 KiB once.
# BUILDS="label=path/reloc-node.dll ..." compares builds, interleaved per rep (default: this tree's).
# REP0=N numbers the reps from N+1 (a second run's rows, appended to the first's, keep distinct reps and read offsets).
# Usage: bench/first-contact-sites.sh   env: RTT=50ms RATE=40MB/s SIZE=256M REPS=5 REP0=0 PREFETCH=off BUILDS=... SKIP_BUILD=0 KEEP=0
set -euo pipefail
source "$(dirname "$0")/lib.sh"
RTT=${RTT:-50ms}; RATE=${RATE:-40MB/s}; SIZE=${SIZE:-256M}; REPS=${REPS:-5}; REP0=${REP0:-0}; PREFETCH=${PREFETCH:-off}
bench_init first-contact-sites
M="$PY $BENCH_DIR/mgmt.py"
FC="$PY $BENCH_DIR/first_contact.py"

SRC=${SRC_IMG:-${TMPDIR:-/tmp}/reloc-bench-src-$SIZE.img}
make_random_image "$SRC" "$SIZE"
ROWS=$OUT/first-contact-sites.tsv
printf 'label\trep\tstep\tms\n' > "$ROWS"
cp "$ROOT/hocon/reloc.conf" "$WORK/reloc.conf"

# A throwaway CA and one folder for the TLS site (server pair: localhost/127.0.0.1; client pair for libnbd).
PKI=$WORK/pki; mkdir -p "$PKI/site"
cert() {  # cert STEM CN EXTRA-TEMPLATE-LINES
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/site/$1-key.pem" 2> /dev/null
  printf 'cn = "%s"\nexpiration_days = 30\nsigning_key\nencryption_key\ntls_www_client\n%s\n' "$2" "$3" > "$PKI/$1.tmpl"
  certtool --generate-certificate --load-privkey "$PKI/site/$1-key.pem" --load-ca-certificate "$PKI/site/ca-cert.pem" \
    --load-ca-privkey "$PKI/ca-key.pem" --template "$PKI/$1.tmpl" --outfile "$PKI/site/$1-cert.pem" 2> /dev/null
}
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/ca-key.pem" 2> /dev/null
printf 'cn = "bench CA"\nca\ncert_signing_key\nexpiration_days = 30\n' > "$PKI/ca.tmpl"
certtool --generate-self-signed --load-privkey "$PKI/ca-key.pem" --template "$PKI/ca.tmpl" --outfile "$PKI/site/ca-cert.pem" 2> /dev/null
cert server site-t "$(printf 'dns_name = "localhost"\nip_address = "127.0.0.1"\ntls_www_server')"
cert client guest ""

# start_site NAME [HOCON_LINE...]: a one-site cluster (its own seed), waits for its ready line and its coordinator.
start_site() {
  local name=$1; shift
  local a n m; a=$(free_port) n=$(free_port) m=$(free_port)
  site_conf "$name" "$a" "$n" "$m" "127.0.0.1:$n" "\"akka.tcp://reloc@127.0.0.1:$a\"" "$@"
  spawn "$name" dotnet "$NODE" --config "$WORK/$name.conf"; SITE_PID=$SPAWNED
  wait_for "$WORK/$name.out" 'reloc-node: site' 90
  until $M "127.0.0.1:$m" relocation.list > /dev/null 2>&1; do sleep 0.2; done
  SITE_NBD=$n SITE_MGMT=$m
}

# first_two_connections KIND URI_FORMAT: a fresh site with TLS_LINES, a disk, then the first NBD connection of its
# process and a second one (rows "$tag site-KIND" and "$tag site-KIND-warm"); %s in URI_FORMAT is its NBD port.
first_two_connections() {
  local kind=$1 uri
  rm -rf "$WORK/site-t"
  start_site site-t "${TLS_LINES[@]}"
  $M "127.0.0.1:$SITE_MGMT" disk.create '{"name":"d","site":"site-t","size":67108864}' > /dev/null
  uri=$(printf "$2" "$SITE_NBD")
  $FC "$uri" "$tag site-$kind" "$rep" "$ROWS" 1 "$rep" >&2
  $FC "$uri" "$tag site-$kind-warm" "$rep" "$ROWS" 1 "$rep" >&2
  stop "$SITE_PID"
}

BUILDS=${BUILDS:-"head=$NODE"}
for rep in $(seq $((REP0 + 1)) $((REP0 + REPS))); do
 for build in $BUILDS; do
  tag=${build%%=*}; NODE=${build#*=}
  log "rep $rep $tag"
  # proxy (the first sitting's figure, in this run)
  SPORT=$(free_port)
  start_serve source "$SPORT" "disk=$SRC:ro"; SPID=$SPAWNED
  WPORT=$(free_port); PPORT=$(free_port)
  start_wanlink wan "$WPORT" "$SPORT" "$RTT" "$RATE"; WPID=$SPAWNED
  rm -rf "$WORK/state" "$WORK/dst.img"
  start_proxy proxy "$PPORT" "$WORK/dst.img" "nbd://127.0.0.1:$WPORT/disk" "$WORK/state" --prefetch "$PREFETCH"
  wait_for "$WORK/proxy.jsonl" '"state"' 60
  $FC "nbd://127.0.0.1:$PPORT/disk" "$tag proxy" "$rep" "$ROWS" 3 "$rep" >&2
  stop "$PROXY_PID" "$WPID" "$SPID"

  # (a) the sites' first relocation, the guest at the destination
  rm -rf "$WORK/site-a" "$WORK/site-b"
  AA=$(free_port) AB=$(free_port) NA=$(free_port) NB=$(free_port) MA=$(free_port) MB=$(free_port) W=$(free_port)
  SEEDS="\"akka.tcp://reloc@127.0.0.1:$AA\""
  site_conf site-a "$AA" "$NA" "$MA" "127.0.0.1:$W" "$SEEDS" "reloc.site.import-dir = \"$(dirname "$SRC")\""
  site_conf site-b "$AB" "$NB" "$MB" "127.0.0.1:$NB" "$SEEDS"
  start_wanlink wan "$W" "$NA" "$RTT" "$RATE"; WPID=$SPAWNED
  spawn site-a dotnet "$NODE" --config "$WORK/site-a.conf"; PA=$SPAWNED
  wait_for "$WORK/site-a.out" 'reloc-node: site' 90
  spawn site-b dotnet "$NODE" --config "$WORK/site-b.conf"; PB=$SPAWNED
  wait_for "$WORK/site-b.out" 'reloc-node: site' 90
  until $M "127.0.0.1:$MA" cluster.show 2>/dev/null | grep -q '"site": "site-b", "reachable": true'; do sleep 0.2; done
  until $M "127.0.0.1:$MA" relocation.list > /dev/null 2>&1; do sleep 0.2; done
  $M "127.0.0.1:$MA" disk.create "{\"name\":\"vm\",\"site\":\"site-a\",\"from\":\"$SRC\"}" > /dev/null
  prefetch=$([ "$PREFETCH" = on ] && echo true || echo false)
  $M "127.0.0.1:$MA" relocate "{\"disk\":\"vm\",\"to\":\"site-b\",\"mode\":\"postcopy\",\"prefetch\":$prefetch}" > /dev/null
  # The idle disk is handed over at once: wait until site-b owns it (post-copy: a read there is a miss fetched from
  # site-a), through the management API, not NBD
  until $M "127.0.0.1:$MB" disk.show '{"name":"vm"}' 2>/dev/null | grep -q '"owner": "site-b"'; do sleep 0.05; done
  $FC "nbd://127.0.0.1:$NB/vm" "$tag site-dest" "$rep" "$ROWS" 3 "$rep" >&2
  stop "$PB" "$PA" "$WPID"

  # (b, c) a TLS-capable site: the first connection ever, plain; then, in a fresh process, TLS cold and warm
  TLS_LINES=("reloc.tls { mode = allow, certificates = \"$PKI/site\" }")
  first_two_connections plain "nbd://127.0.0.1:%s/d"
  first_two_connections tls "nbds://127.0.0.1:%s/d?tls-certificates=$PKI/site"
 done
done
cp "$ROWS" "$OUT/first-contact-sites.$(date -u +%Y%m%dT%H%M%SZ).tsv"
$PY - "$ROWS" <<'PYEOF'
import sys, statistics as st, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
by = collections.defaultdict(list)
for label, rep, step, ms in rows: by[(label, step)].append(float(ms))
print("| export | step | median ms | runs (ms) |\n|---|---|---:|---|")
for (label, step), v in sorted(by.items()):
    print(f"| {label} | {step} | {st.median(v):.1f} | {' '.join(f'{x:.1f}' for x in v)} |")
PYEOF
