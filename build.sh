#!/usr/bin/env bash
# Bootstrapper: restore the local Cake tool, then run build.cake with the given arguments
# (./build.sh --target=Test | --target=Serve | --target=Build).
set -euo pipefail
cd "$(dirname "$0")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet tool restore >/dev/null
exec dotnet cake build.cake "$@"
