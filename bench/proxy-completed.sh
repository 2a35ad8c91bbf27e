#!/usr/bin/env bash
# Starts `reloc-node proxy` on an image whose relocation is already complete: a fresh copy of a completed
# state directory (TEMPLATE, made by a finished proxy run) in a new directory under PARENT, then exec (the
# pid stays the proxy's, so whoever started this can stop it). The source must answer (the proxy probes
# its size at start) but is not read: the disk recovers as complete. For bench-nbd.sh custom: specs.
# Usage: bench/proxy-completed.sh TEMPLATE PARENT SOURCE_URI PORT EXPORT IMAGE
set -euo pipefail
[ $# = 6 ] || { sed -n 2,6p "$0" >&2; exit 2; }
template=$1 parent=$2 source=$3 port=$4 export=$5 image=$6
state=$(mktemp -d "$parent/state.XXXXXX")
cp -a "$template/." "$state/"
exec dotnet "$(cd "$(dirname "$0")/.." && pwd)/src/Reloc.Node/bin/Release/net10.0/reloc-node.dll" proxy \
  --listen "127.0.0.1:$port" --export "$export=$image" --source "$source" --state-dir "$state"
