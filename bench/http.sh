#!/usr/bin/env bash
# bench/http.sh - examples/http_hello against hyper's hello server (Tokio + hyper 1,
# bench/peers/tokio/src/bin/http_hello.rs), side by side: `wrk -t1 -c50 -d<D>s` on
# GET /, ROUNDS rounds with the order rotated each round; prints every round, the
# median and range (min-max) of each side, and the ratio http_hello / hyper of the
# medians with the range of the per-round ratios (goal: >= 1.0).
#
#   bench/http.sh [SECONDS] [ROUNDS]     (default 10 s per run, 3 rounds)
#
# Both servers use their runtime's default worker count (one per core); wrk runs
# on the same machine. Builds what is missing: http_hello in $BUILD (CMake) and
# the hyper peer with cargo (only here: the test command never runs cargo).
# Environment: BUILD (default build), CARGO, WRK_CONNS (50), WRK_THREADS (1).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-10}
rounds=${2:-3}
build=$root/${BUILD:-build}
conns=${WRK_CONNS:-50}
threads=${WRK_THREADS:-1}
cargo=${CARGO:-$(command -v cargo || echo "$HOME/.cargo/bin/cargo")}
command -v wrk >/dev/null || { echo "http.sh: wrk is not installed (scripts/deps.sh wrk)"; exit 1; }
"$root/scripts/build.sh" "$build" "" -- --target http_hello >/dev/null
(cd "$root/bench/peers/tokio" && "$cargo" build -q --release --bin http_hello)
hyper=$root/bench/peers/tokio/target/release/http_hello

tmp=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT
# start NAME BINARY: run it on a free port (in this shell, so that the EXIT trap
# stops it); its first line names the address, which goes into addr_NAME.
start() {
  "$2" 127.0.0.1:0 >"$tmp/$1.out" 2>&1 &
  pids+=($!)
  for _ in $(seq 200); do grep -q 'listening on' "$tmp/$1.out" && break; sleep 0.05; done
  printf -v "addr_$1" '%s' "$(sed -nE 's/.*listening on ([0-9.]+:[0-9]+).*/\1/p' "$tmp/$1.out" | head -n 1)"
}
start ekiden "$build/http_hello"
start hyper "$hyper"
[ -n "$addr_ekiden" ] && [ -n "$addr_hyper" ] || { echo "http.sh: a server did not start"; cat "$tmp"/*.out; exit 1; }

# one run: requests per second, or 0 (and the reason on stderr) on any error
run() {
  local out rps
  out=$(timeout $((secs + 60)) wrk -t"$threads" -c"$conns" -d"${secs}s" --timeout 10s "http://$1/" 2>&1)
  rps=$(echo "$out" | sed -nE 's/^Requests\/sec: *([0-9.]+).*/\1/p')
  if echo "$out" | grep -qE 'Socket errors|Non-2xx' || [ -z "$rps" ]; then
    echo "$out" | grep -E 'Socket errors|Non-2xx|requests in' >&2
    echo 0
  else
    echo "$rps"
  fi
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
echo "http_hello vs hyper: wrk -t$threads -c$conns -d${secs}s, $rounds rounds rotated, $(nproc) cores, load average at start $load_start"
for ((r = 0; r < rounds; r++)); do
  if ((r % 2 == 0)); then order=(ekiden hyper); else order=(hyper ekiden); fi
  for side in "${order[@]}"; do
    a=addr_$side
    v=$(run "${!a}")
    echo "$v" >>"$tmp/$side.v"
    printf '  round %d %-7s %s req/s\n' "$((r + 1))" "$side" "$v"
  done
  paste "$tmp/ekiden.v" "$tmp/hyper.v" | tail -n 1 | awk '{ if ($2 > 0) printf "%.3f\n", $1 / $2 }' >>"$tmp/ratio"
done
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
range() { sort -g | awk -v f="$1" '{ v[NR] = $1 } END { printf f "-" f, v[1], v[NR] }'; }
me=$(median <"$tmp/ekiden.v")
mh=$(median <"$tmp/hyper.v")
echo
echo "| row | http_hello req/s (median, range) | hyper req/s (median, range) | ratio (median; per-round range) |"
echo "| --- | ---: | ---: | ---: |"
printf '| GET / wrk -t%s -c%s -d%ss x%s | %.0f (%s) | %.0f (%s) | %s (%s) |\n' "$threads" "$conns" "$secs" "$rounds" \
  "$me" "$(range %.0f <"$tmp/ekiden.v")" "$mh" "$(range %.0f <"$tmp/hyper.v")" \
  "$(awk -v a="$me" -v b="$mh" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')" \
  "$(range %.2f <"$tmp/ratio")"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
