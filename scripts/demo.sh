#!/usr/bin/env bash
# demo.sh - `make demo`: Ekiden's servers under load, in its three languages,
# each printing what it achieved:
#   1. C       examples/demo: the echo server and a load generator in one process
#   2. C       examples/mini_redis under redis-benchmark (PING, SET, GET; -P 1 and 16)
#   3. Python  examples/python/echo.py under bench/loadgen (100 connections, 64 B)
#   4. Lua     examples/echo.lua under bench/loadgen (the same load)
# Short runs (a few seconds each), loopback only. A part whose interpreter or
# tool is missing is skipped with a message; a failing part fails the demo.
# Environment: BUILD (default build), DEMO_SECS (default 3).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=$root/${BUILD:-build}
secs=${DEMO_SECS:-3}
rc=0
pids=()
tmpdir=$(mktemp -d)
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmpdir"
}
trap cleanup EXIT
banner() { printf '\n==== %s ====\n' "$*"; }

scripts/build.sh "$build" "" -- --target demo --target mini_redis >/dev/null
cc -O2 -pthread -o "$tmpdir/loadgen" bench/loadgen.c

# Wait for a server's first line "... HOST:PORT" (or "... (HOST, PORT)") and print the port.
server_port() {
  local out=$1 i
  for i in $(seq 200); do
    if [ -s "$out" ]; then
      sed -nE '1{s/.*[:, ]([0-9]+)\)?$/\1/p}' "$out"
      return 0
    fi
    sleep 0.05
  done
  return 1
}

banner "1. C: the echo server under load (examples/demo)"
"$build/demo" --secs "$secs" || rc=1

banner "2. C: mini_redis under redis-benchmark (50 clients)"
if command -v redis-benchmark >/dev/null; then
  "$build/mini_redis" 127.0.0.1:0 >"$tmpdir/redis.out" &
  pids+=($!)
  port=$(server_port "$tmpdir/redis.out")
  for p in 1 16; do
    echo "pipeline $p:"
    redis-benchmark -p "$port" -t ping,set,get -n 200000 -c 50 -P "$p" -q 2>/dev/null |
      tr '\r' '\n' | grep 'requests per second' | sed 's/^/  /' || rc=1
  done
else
  echo "redis-benchmark not found (Debian redis-tools): skipped"
fi

run_echo() { # name, command...
  local name=$1
  shift
  "$@" >"$tmpdir/$name.out" 2>&1 &
  pids+=($!)
  local port
  if ! port=$(server_port "$tmpdir/$name.out"); then
    echo "$name: the server did not start:"
    cat "$tmpdir/$name.out"
    rc=1
    return
  fi
  "$tmpdir/loadgen" echo "127.0.0.1:$port" -c 100 -s 64 -d "$secs" | grep -v '^LOAD' || rc=1
}

banner "3. Python: examples/python/echo.py under load (100 connections, 64 B)"
venv=$build/py-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import ekiden' 2>/dev/null; then
  echo "building the Python package into $venv (pip install .) ..."
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check cffi==2.0.0 setuptools==75.6.0 wheel==0.45.1
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-build-isolation . || rc=1
fi
run_echo python "$venv/bin/python" examples/python/echo.py 0

banner "4. Lua: examples/echo.lua under load (100 connections, 64 B)"
if command -v lua5.4 >/dev/null; then
  scripts/build.sh "$build" >/dev/null
  module=$(find "$build" -path '*/lua/5.4/ekiden.so' | head -n 1)
  if [ -n "$module" ]; then
    run_echo lua env LUA_CPATH="$(dirname "$module")/?.so" lua5.4 examples/echo.lua 127.0.0.1:0
  else
    echo "the Lua module was not built"
    rc=1
  fi
else
  echo "lua5.4 not found: skipped"
fi
exit "$rc"
