#!/usr/bin/env bash
# bench/redis.sh - examples/mini_redis against redis-server, side by side:
# `redis-benchmark -t ping,set,get -n N -c 50 -q`, without and with -P 16, for
# ROUNDS rounds; in each round both servers run every row, in an order that
# alternates from round to round (redis first in odd rounds, mini_redis first in
# even ones), so that a load change on the machine falls on both. Prints a
# markdown table: per row the median req/s of each server over the rounds, the
# median of the per-round ratios mini_redis / redis-server and their spread (the
# lowest and highest ratio of a round). Goal: >= 1.0 (redis is one thread,
# mini_redis uses every worker). The load average is printed before and after.
#
#   bench/redis.sh [N] [ROUNDS]     (default 1000000 requests per row, 3 rounds)
#
# Run it alone on the machine (on a shared one: flock /work/bench.lock).
# Environment: BUILD (default build: where mini_redis is; built if missing),
# PIPELINES (default "1 16": the -P values to run).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-1000000}
rounds=${2:-3}
pipelines=${PIPELINES:-1 16}
build=$root/${BUILD:-build}
[ -x "$build/mini_redis" ] || "$root/scripts/build.sh" "$build" "" -- --target mini_redis >/dev/null
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rport=$(port)
redis-server --port "$rport" --save '' --appendonly no --bind 127.0.0.1 >/dev/null 2>&1 &
rpid=$!
tmp=$(mktemp -d)
"$build/mini_redis" 127.0.0.1:0 >"$tmp/addr" &
mpid=$!
trap 'kill $rpid $mpid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do
  [ -s "$tmp/addr" ] && redis-cli -p "$rport" ping >/dev/null 2>&1 && break
  sleep 0.1
done
mport=$(sed -nE 's/.*:([0-9]+)$/\1/p' "$tmp/addr")
rows="PING_INLINE PING_MBULK SET GET"

# run SERVER PORT PIPELINE ROUND: one redis-benchmark run; "<row> <req/s>" lines
# appended to $tmp/<server>.<pipeline>.<row>.
run() {
  redis-benchmark -p "$2" -t ping,set,get -n "$n" -c 50 -P "$3" -q 2>/dev/null | tr '\r' '\n' |
    sed -nE 's/^([A-Z_]+): ([0-9.]+) requests per second.*/\1 \2/p' | sort -u -k1,1 |
    while read -r row v; do echo "$v" >>"$tmp/$1.$3.$row"; done
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; $rounds rounds of -n $n"
for r in $(seq "$rounds"); do
  for p in $pipelines; do
    if [ $((r % 2)) = 1 ]; then
      run redis "$rport" "$p"
      run mini "$mport" "$p"
    else
      run mini "$mport" "$p"
      run redis "$rport" "$p"
    fi
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| row (-n $n -c 50, $rounds rounds) | redis-server req/s | mini_redis req/s | ratio (median) | ratio spread |"
echo "| --- | ---: | ---: | ---: | ---: |"
for p in $pipelines; do
  for row in $rows; do
    paste "$tmp/redis.$p.$row" "$tmp/mini.$p.$row" | awk -v row="$row$([ "$p" = 16 ] && echo " -P 16")" '
      function median(a, k,   i, j, t) {
        for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
      }
      { k++; r[k] = $1; m[k] = $2; q[k] = $1 > 0 ? $2 / $1 : 0; lo = (k == 1 || q[k] < lo) ? q[k] : lo; hi = (k == 1 || q[k] > hi) ? q[k] : hi }
      END { printf "| %s | %.0f | %.0f | %.2f | %.2f–%.2f |\n", row, median(r, k), median(m, k), median(q, k), lo, hi }'
  done
done
