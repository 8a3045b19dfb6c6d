#!/usr/bin/env bash
# build.sh - configure (once) and build one build directory.
#
# Usage: scripts/build.sh DIR [SANITIZE] [-- extra cmake --build args, e.g. --target demo]
#   SANITIZE: '' (plain), 'address' (ASan+UBSan) or 'thread' (TSan); see EK_SANITIZE.
# Environment: JOBS (parallel jobs, default 2), CMAKE_ARGS (extra configure args).
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${1:?usage: build.sh DIR [SANITIZE] [-- build args]}
sanitize=${2:-}
shift $(($# >= 2 ? 2 : 1))
[ "${1:-}" = "--" ] && shift

configure=(cmake -S . -B "$dir" -DEK_SANITIZE="$sanitize")
# A fresh directory gets Ninja when it is there; an existing one keeps its generator.
if [ ! -f "$dir/CMakeCache.txt" ] && command -v ninja >/dev/null 2>&1; then
  configure+=(-G Ninja)
fi
# shellcheck disable=SC2206
configure+=(${CMAKE_ARGS:-})
# Configure quietly: progress lines go away, warnings and errors (stderr) stay.
"${configure[@]}" >/dev/null || { echo "build.sh: configuring $dir failed" >&2; exit 1; }
cmake --build "$dir" -j "${JOBS:-2}" "$@"
