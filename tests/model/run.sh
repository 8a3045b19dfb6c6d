#!/usr/bin/env bash
# run.sh - check the readiness protocol model (tests/model/readiness.pml) with
# spin, exhaustively: the protocol as io.c implements it must have no error,
# and each mutation of it must have one (so the model can fail at all).
# Needs spin (Debian package `spin`, installed by scripts/deps.sh) and cc.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here/readiness.pml" "$work/"
cd "$work"

# errors NAME [spin -D flags]: run one variant, print its error count.
errors() {
  local name=$1
  shift
  spin -a "$@" readiness.pml >/dev/null
  cc -O2 -w -DSAFETY -o "pan-$name" pan.c
  # -n: no unreached-code listing; -m100000: search depth bound (never hit).
  local out
  out=$(./"pan-$name" -n -m100000)
  if grep -q 'search depth too small\|max search depth too small' <<<"$out"; then
    echo "model: $name: search depth too small" >&2
    exit 1
  fi
  local n states
  n=$(sed -nE 's/.*errors: ([0-9]+).*/\1/p' <<<"$out" | head -n 1)
  states=$(sed -nE 's/^ *([0-9e.+]+) states, stored.*/\1/p' <<<"$out" | head -n 1)
  echo "model: $name: $n errors, $states states" >&2
  echo "$n"
}

status=0
for n in 1 2 3; do
  [ "$(errors "protocol-N$n" -DN=$n)" = 0 ] || { echo "FAIL: the protocol (N=$n) loses a wake-up" >&2; status=1; }
done
for m in NO_TICK_CHECK NO_RELOAD; do
  [ "$(errors "$m" -D$m)" != 0 ] || { echo "FAIL: mutation $m is not caught" >&2; status=1; }
done
[ "$(errors "TICKS=2" -DTICKS=2)" != 0 ] || { echo "FAIL: a wrapping tick is not caught" >&2; status=1; }
[ "$status" = 0 ] && echo "model: readiness protocol checked; every mutation caught"
exit "$status"
