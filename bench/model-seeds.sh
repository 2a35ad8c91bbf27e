#!/usr/bin/env bash
# The ownership model over many seeds (issue 10): the production cores (SiteCore, CoordinatorCore, DiskCore,
# WriteTracker, SourceZeros, Reconciler) under the simulated network, crashes and fail-overs, every invariant checked
# (liveness included). Runs SEEDS seeds from FROM in chunks of CHUNK (one dotnet test run each) and
# reports seeds per second; stops at the first chunk with a violation (its report is in the log).
# Usage: bench/model-seeds.sh      env: SEEDS=1000000 FROM=0 CHUNK=50000 SKIP_BUILD=0
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SEEDS=${SEEDS:-1000000}; FROM=${FROM:-0}; CHUNK=${CHUNK:-50000}
LOG=${LOG:-$ROOT/artifacts/bench/model-seeds.log}
mkdir -p "$(dirname "$LOG")"; : > "$LOG"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
[ "${SKIP_BUILD:-0}" = 1 ] || dotnet build -c Release -nologo -v q "$ROOT/tests/Reloc.Actors.Tests" >> "$LOG" 2>&1
start=$(date +%s.%N)
for ((at = FROM; at < FROM + SEEDS; at += CHUNK)); do
  n=$(( FROM + SEEDS - at < CHUNK ? FROM + SEEDS - at : CHUNK ))
  t0=$(date +%s.%N)
  if ! RELOC_MODEL_FROM=$at RELOC_MODEL_SEEDS=$n dotnet test "$ROOT/tests/Reloc.Actors.Tests" -c Release --no-build \
       --filter "FullyQualifiedName~Thousands_of_seeds_keep_the_invariants" --logger "console;verbosity=detailed" >> "$LOG" 2>&1; then
    echo "seeds $at..$((at + n - 1)): a violation (see $LOG)"; exit 1
  fi
  t1=$(date +%s.%N)
  python3 -c "print(f'seeds $at..$((at + n - 1)): clean, {($n)/($t1-$t0):.0f} seeds/s')"
done
end=$(date +%s.%N)
python3 -c "print(f'$SEEDS seeds from $FROM clean in {$end-$start:.0f} s: {$SEEDS/($end-$start):.0f} seeds/s (cores: $(nproc))')"
