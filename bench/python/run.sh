#!/usr/bin/env bash
# bench/python/run.sh - the Python echo server on Ekiden against the same server on
# asyncio streams (default loop and uvloop), driven by bench/loadgen (the load
# generator of every C row), 64 B and 4 KiB, 1 and 100 connections; then the
# binding's per-operation costs (bench/python/micro.py).
#
# Usage: bench/python/run.sh [BUILD]  (default build-bench). Environment: DURATION
# (seconds per row, default 3), WARMUP (default 0.5), WORKERS (ekiden workers, 1).
# Loopback only. Installs the package and uvloop (pinned) in BUILD/py-bench-venv.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build-bench}
DURATION=${DURATION:-3}
WARMUP=${WARMUP:-0.5}
WORKERS=${WORKERS:-1}
venv=$BUILD/py-bench-venv

CMAKE_ARGS="-DEK_BENCH=ON -DEK_TESTS=OFF" scripts/build.sh "$BUILD" "" -- --target loadgen >/dev/null
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check cffi==2.0.0 uvloop==0.21.0 .
py=$venv/bin/python

port=$((20000 + RANDOM % 20000))
row() { # NAME CMD...
  local name=$1
  shift
  "$@" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
    sleep 0.1
  done
  for size in 64 4096; do
    for conns in 1 100; do
      out=$("$BUILD/bench/loadgen" echo "127.0.0.1:$port" -c "$conns" -s "$size" -d "$DURATION" \
        -w "$WARMUP" 2>/dev/null | awk '$1 == "LOAD" { for (i = 3; i <= NF; i++) {
          split($i, kv, "="); f[kv[1]] = kv[2] } print f["req_per_s"], f["p99_us"] }')
      printf '%-16s %5s B x%-4s %12s req/s  p99 %s us\n' "$name" "$size" "$conns" \
        "${out%% *}" "${out##* }"
    done
  done
  kill -INT "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  # A server still there after 10 s is reported and killed (seen once: see docs/python.md).
  if kill -0 "$pid" 2>/dev/null; then echo "$name: server ignored SIGINT for 10 s, killed" >&2; fi
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  port=$((port + 1))
}

row ekiden "$py" bench/python/echo_ekiden.py "$port" "$WORKERS"
row asyncio "$py" bench/python/echo_asyncio.py "$port" asyncio
row uvloop "$py" bench/python/echo_asyncio.py "$port" uvloop
"$py" bench/python/micro.py
