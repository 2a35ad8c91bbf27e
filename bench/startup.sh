#!/usr/bin/env bash
# Start-up of the published node (artifacts/reloc-node): `reloc-node --version`, and the time from exec to
# the site's ready line on stdout (one site forming its own cluster on loopback, SQLite in a temp dir).
# Prints the median of RUNS (default 5) runs of each, in milliseconds, as TSV.
# Usage: bench/startup.sh [NODE_BINARY] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
NODE=${1:-artifacts/reloc-node/reloc-node}
RUNS=${2:-5}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

now_ms() { date +%s%3N; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

version_ms() {
    local t0; t0=$(now_ms)
    "$NODE" --version >/dev/null
    echo $(( $(now_ms) - t0 ))
}

ready_ms() {
    local run=$1 t0 pid
    rm -rf "$WORK/site"; mkdir -p "$WORK/site"
    t0=$(now_ms)
    RELOC_SITE_NAME=site-a RELOC_DATA_DIR="$WORK/site" RELOC_NBD_LISTEN=127.0.0.1:0 RELOC_CLUSTER_PORT=$((25000 + run)) \
    RELOC_SEEDS=127.0.0.1:$((25000 + run)) RELOC_MANAGEMENT_LISTEN=127.0.0.1:0 \
        "$NODE" --config hocon/site-a.conf --log-level Warning >"$WORK/out" 2>"$WORK/err" &
    pid=$!
    until grep -q '^reloc-node: site' "$WORK/out"; do
        kill -0 "$pid" 2>/dev/null || { cat "$WORK/err" >&2; exit 1; }
        sleep 0.01
    done
    echo $(( $(now_ms) - t0 ))
    kill -TERM "$pid"; wait "$pid" || true
}

for i in $(seq "$RUNS"); do version_ms; done >"$WORK/version"
for i in $(seq "$RUNS"); do ready_ms "$i"; done >"$WORK/ready"
printf 'measure\tmedian_ms\truns\n'
printf 'version\t%s\t%s\n' "$(median <"$WORK/version")" "$(tr '\n' ' ' <"$WORK/version")"
printf 'ready\t%s\t%s\n' "$(median <"$WORK/ready")" "$(tr '\n' ' ' <"$WORK/ready")"
