#!/usr/bin/env bash
# check-format.sh - every C source and header of the project is clang-formatted
# according to the one .clang-format at the top.
#
# Usage: scripts/check-format.sh [--fix]
# Checks *.c and *.h under core capi tests examples bench bindings (bench/peers/tokio is
# the Rust peer and is skipped). With --fix, rewrites the files in place instead.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=(--dry-run -Werror)
[ "${1:-}" = "--fix" ] && mode=(-i)

dirs=()
for d in core capi tests examples bench bindings; do [ -d "$d" ] && dirs+=("$d"); done
[ ${#dirs[@]} -gt 0 ] || { echo "check-format: no sources"; exit 0; }

mapfile -t files < <(find "${dirs[@]}" -path bench/peers/tokio -prune -o \
  -type f \( -name '*.c' -o -name '*.h' \) -print | sort)

bad=()
for f in "${files[@]}"; do
  if ! clang-format "${mode[@]}" "$f" >/dev/null 2>&1; then bad+=("$f"); fi
done

if [ ${#bad[@]} -gt 0 ]; then
  echo "check-format: not clang-formatted (fix: scripts/check-format.sh --fix):"
  for f in "${bad[@]}"; do
    echo "  $f"
    clang-format "$f" | diff -u "$f" - | head -n 20 | sed 's/^/    /' || true
  done
  exit 1
fi
echo "check-format: ${#files[@]} files formatted"
