#!/usr/bin/env bash
# bench/redis.sh - examples/mini_redis against redis-server, side by side:
# redis-benchmark -t ping,set,get -n N -c 50 -q, without and with -P 16, the two
# servers alternating per row; prints a markdown table with the ratio
# mini_redis / redis-server per row (goal: >= 1.0; redis is one thread,
# mini_redis uses every worker).
#
#   bench/redis.sh [N]     (default 1000000 requests per row)
#
# Environment: BUILD (default build: where mini_redis is; built if missing).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-1000000}
build=$root/${BUILD:-build}
[ -x "$build/mini_redis" ] || "$root/scripts/build.sh" "$build" "" -- --target mini_redis >/dev/null
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rport=$(port)
redis-server --port "$rport" --save '' --appendonly no --bind 127.0.0.1 >/dev/null 2>&1 &
rpid=$!
tmp=$(mktemp)
"$build/mini_redis" 127.0.0.1:0 >"$tmp" &
mpid=$!
trap 'kill $rpid $mpid 2>/dev/null; rm -f "$tmp"' EXIT
for _ in $(seq 100); do
  [ -s "$tmp" ] && redis-cli -p "$rport" ping >/dev/null 2>&1 && break
  sleep 0.1
done
mport=$(sed -nE 's/.*:([0-9]+)$/\1/p' "$tmp")
rps() { # port test pipeline
  redis-benchmark -p "$1" -t "$2" -n "$n" -c 50 -P "$3" -q 2>/dev/null | tr '\r' '\n' |
    sed -nE 's/.*: ([0-9.]+) requests per second.*/\1/p' | tail -n 1
}
echo "| row (-n $n -c 50) | redis-server req/s | mini_redis req/s | ratio |"
echo "| --- | ---: | ---: | ---: |"
for p in 1 16; do
  for t in ping_mbulk set get; do
    test=$t
    [ "$t" = ping_mbulk ] && test=ping_mbulk
    r=$(rps "$rport" "$test" "$p")
    m=$(rps "$mport" "$test" "$p")
    ratio=$(awk -v a="$m" -v b="$r" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
    echo "| ${t^^}$([ "$p" = 16 ] && echo " -P 16") | $r | $m | $ratio |"
  done
done
