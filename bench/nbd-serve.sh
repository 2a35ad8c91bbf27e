#!/usr/bin/env bash
# Data-path benchmark: Reloc's `reloc-node serve` side by side with nbdkit and qemu-nbd, through the
# shared harness (../shared/bench/bench-nbd.sh: nbdcopy whole-image read, fio 4 KiB random read and
# write at QD16, 1 MiB sequential write at QD4; repetitions interleaved; medians and ratios to nbdkit).
# Usage: bench/nbd-serve.sh            (REPS, RUNTIME, IOSIZE... pass through to the harness)
set -euo pipefail
cd "$(dirname "$0")/.."
HARNESS=${HARNESS:-../shared/bench/bench-nbd.sh}
dotnet build -c Release src/Reloc.Node >/dev/null
NODE=$PWD/src/Reloc.Node/bin/Release/net10.0/reloc-node.dll
export REPS=${REPS:-3}
exec "$HARNESS" nbdkit qemu-nbd "custom:reloc:10820:export:dotnet $NODE serve --listen 127.0.0.1:{PORT} --export {EXPORT}={IMG}"
