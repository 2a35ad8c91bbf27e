#!/usr/bin/env bash
# Runs the five relocation benchmarks of issue 3 one after the other (one build first), with their default
# settings (REPS=3), logging each one's output to $OUT/<name>.log. About 20-25 minutes on a 2-core machine.
# Usage: bench/reloc-all.sh [NAME...]     (names: reloc-time reloc-sparse reloc-latency reloc-mail reloc-datapath)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/artifacts/bench}; mkdir -p "$OUT"
dotnet build -c Release -nologo -v q src/Reloc.Node > /dev/null
dotnet build -c Release -nologo -v q bench/Reloc.Bench.Plot > /dev/null
for name in "${@:-reloc-time reloc-sparse reloc-latency reloc-mail reloc-datapath}"; do
  for n in $name; do
    start=$SECONDS
    echo "[$(date +%T)] $n ..." >&2
    SKIP_BUILD=1 OUT=$OUT "bench/$n.sh" > "$OUT/$n.log" 2>&1 || { echo "$n failed: see $OUT/$n.log" >&2; tail -5 "$OUT/$n.log" >&2; exit 1; }
    echo "[$(date +%T)] $n done in $((SECONDS - start)) s" >&2
  done
done
