#!/usr/bin/env bash
# Fuzzes one target of fuzz/Reloc.Fuzz with afl-fuzz (AFL++) through SharpFuzz, until about EXECUTIONS
# executions (afl-fuzz -E), then prints what fuzzer_stats says. Findings stay in artifacts/fuzz/TARGET/findings.
# Usage: bench/fuzz.sh TARGET [EXECUTIONS]   (TARGET: server-handshake, server-transmission, client, management;
#        EXECUTIONS: 1000000 by default). Needs afl-fuzz (Debian: afl++) and the sharpfuzz local tool
#        (.config/dotnet-tools.json; `dotnet tool restore` installs it). Runs niced: the machine may be shared.
# Env:   BUILD_ONLY=1 (publish and instrument, no fuzzing), REUSE_BIN=1 (fuzz what the last build left),
#        TIMEOUT_MS (per input, 5000), CMIN=1 to minimise the corpus with afl-cmin afterwards into
#        artifacts/fuzz/TARGET/cmin (then copy it over fuzz/corpus/TARGET by hand, after a look).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${1:?usage: bench/fuzz.sh TARGET [EXECUTIONS]}
EXECS=${2:-1000000}
CORPUS=fuzz/corpus/$TARGET
[ -d "$CORPUS" ] || { echo "no corpus $CORPUS (targets: $(ls fuzz/corpus | tr '\n' ' '))" >&2; exit 2; }
OUT=$PWD/artifacts/fuzz/$TARGET
BIN=$OUT/bin

# A fresh publish every time (REUSE_BIN=1: the last one, if complete): sharpfuzz rewrites assemblies in
# place and must see them uninstrumented.
if [ "${REUSE_BIN:-0}" != 1 ] || [ ! -f "$BIN/.instrumented" ]; then
  rm -rf "$BIN"
  dotnet tool restore >/dev/null
  nice -n 10 dotnet publish fuzz/Reloc.Fuzz -c Release -o "$BIN" 2>&1 | grep -E 'error|warn' || true
  [ -f "$BIN/Reloc.Fuzz.dll" ] || { echo "publish failed" >&2; exit 1; }
  # Instrument only the code under test: the branches afl-fuzz sees are ours, not Akka's or the harness's.
  case "$TARGET" in
    management) ASSEMBLIES="Reloc.Management.dll Reloc.Actors.dll" ;;
    *) ASSEMBLIES="Reloc.Nbd.dll" ;;
  esac
  for a in $ASSEMBLIES; do dotnet sharpfuzz "$BIN/$a" >/dev/null; done
  touch "$BIN/.instrumented"
fi
[ "${BUILD_ONLY:-0}" = 1 ] && exit 0

# SharpFuzz: the target is `dotnet X.dll`, not an AFL-compiled binary (AFL_SKIP_BIN_CHECK), and the .NET
# runtime reserves far more virtual memory than afl's default limit (-m none).
export AFL_SKIP_BIN_CHECK=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1
export DOTNET_TieredPGO=0 # steadier coverage between runs of one process
DOTNET=$(command -v dotnet) # afl-cmin wants a path, not a name
rm -rf "$OUT/findings"
START=$(date +%s)
nice -n 10 afl-fuzz -i "$CORPUS" -o "$OUT/findings" -t "${TIMEOUT_MS:-5000}" -m none -E "$EXECS" \
  -- "$DOTNET" "$BIN/Reloc.Fuzz.dll" "$TARGET" > "$OUT/afl.log" 2>&1 || { tail -30 "$OUT/afl.log" >&2; exit 1; }
END=$(date +%s)

STATS=$OUT/findings/default/fuzzer_stats
stat() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$STATS"; }
echo "target=$TARGET execs=$(stat execs_done) exec_per_sec=$(stat execs_per_sec) corpus=$(stat corpus_count)" \
     "crashes=$(stat saved_crashes) hangs=$(stat saved_hangs) stability=$(stat stability) seconds=$((END - START))"
ls "$OUT/findings/default/crashes" "$OUT/findings/default/hangs" 2>/dev/null | grep -v README || true

if [ "${CMIN:-0}" = 1 ]; then
  rm -rf "$OUT/cmin"
  nice -n 10 afl-cmin -i "$OUT/findings/default/queue" -o "$OUT/cmin" -t "${TIMEOUT_MS:-5000}" -m none \
    -- "$DOTNET" "$BIN/Reloc.Fuzz.dll" "$TARGET" > "$OUT/cmin.log" 2>&1 || { echo "afl-cmin failed (see $OUT/cmin.log)" >&2; exit 1; }
  # Names a checkout on any file system takes: a seed keeps its own name, a found input becomes afl-ID.
  for f in "$OUT"/cmin/*; do
    name=$(basename "$f")
    case "$name" in *orig:*) new=${name##*orig:} ;; *) new=afl-$(echo "$name" | sed 's/^id:\([0-9]*\),.*/\1/') ;; esac
    mv "$f" "$OUT/cmin/$new"
  done
  echo "afl-cmin: $(ls "$OUT/cmin" | wc -l) inputs, $(cat "$OUT"/cmin/* | wc -c) bytes in $OUT/cmin"
fi
