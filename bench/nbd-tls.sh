#!/usr/bin/env bash
# NBD over TLS throughput: reloc-node serve beside nbdkit (file plugin), each serving plain and TLS clients
# from one process (reloc --tls allow, nbdkit --tls=on), the same random image, read whole by nbdcopy
# (default 4 connections) into null:. Plain and TLS side by side in one run, runs interleaved, median of REPS.
# Prints a markdown table: MB/s and the ratio to nbdkit in the same mode.
# Usage: bench/nbd-tls.sh   (SIZE_MIB=256 REPS=3; SKIP_BUILD=1 to reuse the Release build; KEEP=1 keeps work files)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
SIZE_MIB=${SIZE_MIB:-256}
REPS=${REPS:-3}
SKIP_BUILD=${SKIP_BUILD:-0}
bench_init nbd-tls

# A throwaway CA, server pair (localhost, 127.0.0.1) and client pair, in the nbdkit/QEMU folder layout.
PKI=$WORK/pki
mkdir -p "$PKI"
cert() { certtool "$@" >/dev/null 2>&1; }
key() { cert --generate-privkey --key-type ecdsa --curve secp256r1 --no-text --outfile "$1"; }
key "$WORK/ca-key.pem"
printf 'cn = "bench CA"\nca\ncert_signing_key\nexpiration_days = 2\n' > "$WORK/ca.tmpl"
cert --generate-self-signed --load-privkey "$WORK/ca-key.pem" --template "$WORK/ca.tmpl" --outfile "$PKI/ca-cert.pem"
for who in server client; do
  key "$PKI/$who-key.pem"
  if [ $who = server ]; then extra='dns_name = "localhost"\nip_address = "127.0.0.1"\ntls_www_server\n'; else extra='tls_www_client\n'; fi
  printf "cn = \"$who\"\nexpiration_days = 2\nsigning_key\nencryption_key\n$extra" > "$WORK/$who.tmpl"
  cert --generate-certificate --load-privkey "$PKI/$who-key.pem" --load-ca-certificate "$PKI/ca-cert.pem" \
    --load-ca-privkey "$WORK/ca-key.pem" --template "$WORK/$who.tmpl" --outfile "$PKI/$who-cert.pem"
done

IMG=$WORK/disk.img
head -c $((SIZE_MIB << 20)) /dev/urandom > "$IMG"
RELOC_PORT=$(free_port)
spawn reloc dotnet "$NODE" serve --listen "127.0.0.1:$RELOC_PORT" --export "disk=$IMG" --tls allow --tls-certificates "$PKI"
wait_for "$WORK/reloc.out" listening 60
NBDKIT_PORT=$(free_port)
spawn nbdkit nbdkit -f -i 127.0.0.1 -p "$NBDKIT_PORT" --tls=on --tls-certificates="$PKI" file "file=$IMG"
for _ in $(seq 200); do nbdinfo --size "nbd://127.0.0.1:$NBDKIT_PORT/" >/dev/null 2>&1 && break; sleep 0.05; done

uri() { # SERVER MODE
  local port export
  if [ "$1" = reloc ]; then port=$RELOC_PORT export=disk; else port=$NBDKIT_PORT export=; fi
  if [ "$2" = tls ]; then echo "nbds://127.0.0.1:$port/$export?tls-certificates=$PKI"; else echo "nbd://127.0.0.1:$port/$export"; fi
}

# One untimed pass each: page cache, JIT and TLS session set-up out of the timed runs.
for server in nbdkit reloc; do for mode in plain tls; do nbdcopy "$(uri $server $mode)" null:; done; done

declare -A T
for r in $(seq "$REPS"); do
  for server in nbdkit reloc; do
    for mode in plain tls; do
      t0=$EPOCHREALTIME
      nbdcopy "$(uri $server $mode)" null:
      t=$(echo "$EPOCHREALTIME - $t0" | bc -l)
      T[$server.$mode]="${T[$server.$mode]:-} $t"
      log "run $r $server $mode: ${t}s"
    done
  done
done

median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
mbs() { echo "scale=1; $SIZE_MIB * 1048576 / 1000000 / $1" | bc -l; }

echo "nbdcopy $SIZE_MIB MiB random image -> null:, median of $REPS, $(nproc) cores, $(date -u +%F)"
echo
echo "| server | plain MB/s | TLS MB/s | TLS/plain | vs nbdkit (plain) | vs nbdkit (TLS) |"
echo "|---|---:|---:|---:|---:|---:|"
kp=$(mbs "$(median "${T[nbdkit.plain]}")"); kt=$(mbs "$(median "${T[nbdkit.tls]}")")
for server in nbdkit reloc; do
  p=$(mbs "$(median "${T[$server.plain]}")"); t=$(mbs "$(median "${T[$server.tls]}")")
  printf '| %s | %s | %s | %.2f | %.2f | %.2f |\n' "$server" "$p" "$t" "$(echo "$t / $p" | bc -l)" \
    "$(echo "$p / $kp" | bc -l)" "$(echo "$t / $kt" | bc -l)"
done
