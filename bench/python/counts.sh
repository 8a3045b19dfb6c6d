#!/usr/bin/env bash
# bench/python/counts.sh - what one key-value request costs each server, counted
# rather than timed (stable on a loaded machine): under callgrind, instructions
# per request (whole process, every thread) and calls from C into Python per
# request (cffi's general_invoke_callback: every extern "Python" callback), over
# one redis-benchmark -t set,get -c 50 -n KV_COUNT_N run after a warm-up, with
# and without -P 16. Collection is zeroed before the run and dumped after it
# (callgrind_control), so start-up and shutdown are not counted.
#
# The echo section: instructions per round trip of the README's echo server
# (current thread and 1 worker) and of uvloop's streams, driven by bench/loadgen
# (64 B and 4 KiB, 1 and 100 connections): the whole process, the difference of
# two runs (ECHO_COUNT_SECS, 3, and three times that) over the difference of the
# round trips loadgen counted, after 1 s of warm-up.
#
# Usage: bench/python/counts.sh PYTHON [kv] [echo]  (default both; the venv
# bench/python/run.sh made; `bench/python/run.sh counts` calls it). Environment:
# LOADGEN (default build-bench/bench/loadgen), KV_COUNT_N (requests per
# command, 20000 with -P 16, a quarter of it without), COUNT_ONLY (a regex: only
# the rows whose label matches it). Prints a markdown table.
set -uo pipefail
cd "$(dirname "$0")/../.."
py=${1:?usage: counts.sh PYTHON [kv] [echo]}
shift
SECTIONS=("$@")
[ ${#SECTIONS[@]} -gt 0 ] || SECTIONS=(kv echo)
want() {
  local s
  for s in "${SECTIONS[@]}"; do [ "$s" = "$1" ] && return 0; done
  return 1
}
LOADGEN=${LOADGEN:-${BENCH_BUILD_DIR:-build-bench}/bench/loadgen}
ECHO_SECS=${ECHO_COUNT_SECS:-3}
N=${KV_COUNT_N:-20000}
ONLY=${COUNT_ONLY:-.}
command -v valgrind >/dev/null && command -v callgrind_control >/dev/null || {
  echo "valgrind not found: counts skipped" >&2
  exit 0
}
command -v redis-benchmark >/dev/null || {
  echo "redis-benchmark not found: counts skipped" >&2
  exit 0
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
EPH_LOW=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
SPAN=$((EPH_LOW > 12000 ? EPH_LOW - 11000 : 1000))
PORT=$((10000 + ($$ * 61 % SPAN)))

# count LABEL P CMD... (PORT in CMD's words becomes the port)
count() {
  local label=$1 p=$2 n=$N a args=() i
  shift 2
  [[ $label =~ $ONLY ]] || return 0
  [ "$p" = 1 ] && n=$((N / 4))
  PORT=$((PORT + 1))
  for a in "$@"; do args+=("${a//PORT/$PORT}"); done
  valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.%p" "${args[@]}" >"$tmp/log" 2>&1 &
  local pid=$!
  # The server's own "listening" line, not a connect to the port: on a shared
  # machine another program may hold it (the server then fails to bind).
  for ((i = 0; i < 1200; i++)); do
    grep -q listening "$tmp/log" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if ! grep -q listening "$tmp/log" 2>/dev/null; then
    echo "| $label | -P $p | n/a (the server did not start) | n/a |"
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rm -f "$tmp"/cg.*
    return
  fi
  redis-benchmark -h 127.0.0.1 -p "$PORT" -t set,get -n 2000 -c 50 -P "$p" -q >/dev/null 2>&1
  callgrind_control -z "$pid" >/dev/null 2>&1
  redis-benchmark -h 127.0.0.1 -p "$PORT" -t set,get -n "$n" -c 50 -P "$p" -q >/dev/null 2>&1
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill -INT "$pid" 2>/dev/null
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  local f
  f=$(ls "$tmp"/cg.*.1 2>/dev/null | head -n 1)
  if [ -z "$f" ]; then
    echo "| $label | -P $p | n/a | n/a |"
    rm -f "$tmp"/cg.*
    return
  fi
  python3 - "$f" $((2 * n)) "$label" "$p" <<'EOF'
import re, sys
path, reqs, label, p = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
names, total, calls, cfn = {}, 0, 0, None
for line in open(path, errors="replace"):
    if line.startswith("summary:") or line.startswith("totals:"):
        total = max(total, int(line.split()[1]))
    m = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
    if m:
        if m.group(3):
            names[m.group(2)] = m.group(3)
        if m.group(1) == "cfn":
            cfn = names.get(m.group(2), "")
        continue
    if line.startswith("calls=") and cfn is not None and cfn.startswith("general_invoke_callback"):
        calls += int(line.split("=")[1].split()[0])
print(f"| {label} | -P {p} | {total / reqs:,.0f} | {calls / reqs:.3f} |")
EOF
  rm -f "$tmp"/cg.*
}

# echo_count LABEL CONNS SIZE CMD...: instructions per echo round trip of the
# server under callgrind (see the top).
echo_count() {
  local label=$1 conns=$2 size=$3 a args=() i
  shift 3
  [[ "$label $conns x $size" =~ $ONLY ]] || return 0
  PORT=$((PORT + 1))
  for a in "$@"; do args+=("${a//PORT/$PORT}"); done
  valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.%p" "${args[@]}" >"$tmp/log" 2>&1 &
  local pid=$!
  for ((i = 0; i < 1200; i++)); do
    grep -q listening "$tmp/log" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  # Two runs (ECHO_SECS, then three times as long), each with collection zeroed
  # before and dumped after: the difference of their instructions over the
  # difference of their round trips leaves out what both share (loadgen's
  # connections accepted, their tasks made and ended).
  local r1=0 r2=0 d
  if grep -q listening "$tmp/log" 2>/dev/null; then
    "$LOADGEN" echo "127.0.0.1:$PORT" -c "$conns" -s "$size" -d 1 -w 0 >/dev/null 2>&1
    for d in "$ECHO_SECS" $((3 * ECHO_SECS)); do
      callgrind_control -z "$pid" >/dev/null 2>&1
      r2=$("$LOADGEN" echo "127.0.0.1:$PORT" -c "$conns" -s "$size" -d "$d" -w 0 2>/dev/null |
        awk '$1 == "LOAD" { for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "requests") print kv[2] } }')
      callgrind_control -d "$pid" >/dev/null 2>&1
      [ "$d" = "$ECHO_SECS" ] && r1=${r2:-0}
    done
  fi
  kill -INT "$pid" 2>/dev/null
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  local f1 f2 i1 i2
  f1=$(ls "$tmp"/cg.*.1 2>/dev/null | head -n 1)
  f2=$(ls "$tmp"/cg.*.2 2>/dev/null | head -n 1)
  if [ -z "$f1" ] || [ -z "$f2" ] || [ "$((${r2:-0} - r1))" -le 0 ]; then
    echo "| $label | $size B x $conns | n/a |"
    rm -f "$tmp"/cg.*
    return
  fi
  i1=$(awk '/^(summary|totals):/ { if ($2 > t) t = $2 } END { print t + 0 }' "$f1")
  i2=$(awk '/^(summary|totals):/ { if ($2 > t) t = $2 } END { print t + 0 }' "$f2")
  awk -v i="$((i2 - i1))" -v r="$((r2 - r1))" -v l="$label" -v s="$size" -v c="$conns" \
    'BEGIN { printf "| %s | %s B x %s | %.0f |\n", l, s, c, i / r }'
  rm -f "$tmp"/cg.*
}

if want kv; then
echo "| server | pipeline | instructions / request | calls into Python / request |"
echo "|---|---|---:|---:|"
for p in 16 1; do
  count "ekiden, 1 worker (def)" "$p" "$py" bench/python/kv_ekiden.py PORT 1 def
  count "ekiden, current thread (def)" "$p" "$py" bench/python/kv_ekiden.py PORT ct def
  count "ekiden, current thread, local (def)" "$p" "$py" bench/python/kv_ekiden.py PORT ct def local
  count "ekiden, current thread, local (async)" "$p" "$py" bench/python/kv_ekiden.py PORT ct async local
  count "ekiden, current thread, local (batch)" "$p" "$py" bench/python/kv_ekiden.py PORT ct batch local
  count "uvloop + hiredis" "$p" "$py" bench/python/kv_asyncio.py PORT uvloop
done
fi

if want echo; then
  [ -x "$LOADGEN" ] || {
    echo "loadgen not found ($LOADGEN): echo counts skipped" >&2
    exit 0
  }
  echo
  echo "| echo server | size x connections | instructions / round trip |"
  echo "|---|---|---:|"
  for row in "64 1" "64 100" "4096 1" "4096 100"; do
    read -r size conns <<<"$row"
    echo_count "ekiden, current thread" "$conns" "$size" "$py" bench/python/echo_ekiden.py PORT ct
    echo_count "ekiden, 1 worker" "$conns" "$size" "$py" bench/python/echo_ekiden.py PORT 1
    echo_count "uvloop streams" "$conns" "$size" "$py" bench/python/echo_asyncio.py PORT uvloop
  done
fi
