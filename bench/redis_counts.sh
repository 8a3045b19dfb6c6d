#!/usr/bin/env bash
# bench/redis_counts.sh - instructions and allocator calls per request of
# examples/mini_redis under `redis-benchmark -P P -c 50 -t T`, server side,
# counted with valgrind --tool=callgrind (user space only): figures that a
# loaded machine does not move the way it moves times (docs/benchmarks.md).
# Each figure is the difference of two runs of N1 and N2 requests, divided by
# N2 - N1, so start-up, connection set-up and shutdown cancel out.
#
#   bench/redis_counts.sh [TESTS] [P]     (default: "ping_mbulk set get" and 16)
#
# Environment: BUILD (default build), N1=20000 N2=60000.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/${BUILD:-build}
tests=${1:-ping_mbulk set get}
p=${2:-16}
n1=${N1:-20000}
n2=${N2:-60000}
[ -x "$build/mini_redis" ] || "$root/scripts/build.sh" "$build" "" -- --target mini_redis >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# count TEST N: "<instructions> <malloc+calloc+realloc calls> <free calls>"
count() {
  local out=$tmp/cg.$1.$2 pid port
  valgrind --tool=callgrind --callgrind-out-file="$out" "$build/mini_redis" 127.0.0.1:0 \
    >"$tmp/addr" 2>/dev/null &
  pid=$!
  for _ in $(seq 300); do grep -q listening "$tmp/addr" 2>/dev/null && break; sleep 0.1; done
  port=$(sed -nE 's/.*:([0-9]+)$/\1/p' "$tmp/addr")
  redis-benchmark -p "$port" -t "$1" -n "$2" -c 50 -P "$p" -q >/dev/null 2>&1
  kill -TERM "$pid"
  wait "$pid" || true
  : >"$tmp/addr"
  python3 - "$out" <<'PY'
import re, sys
names, total, allocs, frees, cfn = {}, 0, 0, 0, None
alloc = {"malloc", "calloc", "realloc"}
for line in open(sys.argv[1]):
    if line.startswith("summary:") or line.startswith("totals:"):
        total = int(line.split()[1])
    m = re.match(r"(c?)fn=\((\d+)\)(?: (.*))?", line)
    if m:
        if m.group(3): names[m.group(2)] = m.group(3).strip()
        if m.group(1): cfn = names.get(m.group(2))
        continue
    if line.startswith("calls=") and cfn is not None:
        c = int(line[6:].split()[0])
        if cfn in alloc: allocs += c
        elif cfn == "free": frees += c
        cfn = None
print(total, allocs, frees)
PY
}

echo "mini_redis, callgrind, -c 50 -P $p, per request (runs of $n1 and $n2); load $(cut -d' ' -f1-3 /proc/loadavg)"
for t in $tests; do
  read -r i1 a1 f1 < <(count "$t" "$n1")
  read -r i2 a2 f2 < <(count "$t" "$n2")
  d=$((n2 - n1))
  awk -v t="$t" -v i=$((i2 - i1)) -v a=$((a2 - a1)) -v f=$((f2 - f1)) -v d="$d" \
    'BEGIN { printf "%-12s %8.0f instructions %6.2f allocs %6.2f frees\n", t, i / d, a / d, f / d }'
done
