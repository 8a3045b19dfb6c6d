#!/usr/bin/env bash
# bench/python/counts.sh - what one key-value request costs each server, counted
# rather than timed (stable on a loaded machine): under callgrind, instructions
# per request (whole process, every thread) and calls from C into Python per
# request (cffi's general_invoke_callback: every extern "Python" callback), over
# one redis-benchmark -t set,get -c 50 -n KV_COUNT_N run after a warm-up, with
# and without -P 16. Collection is zeroed before the run and dumped after it
# (callgrind_control), so start-up and shutdown are not counted.
#
# Usage: bench/python/counts.sh PYTHON   (the venv bench/python/run.sh made;
# `bench/python/run.sh counts` calls it). Environment: KV_COUNT_N (requests per
# command, 20000 with -P 16, a quarter of it without), COUNT_ONLY (a regex: only
# the rows whose label matches it). Prints a markdown table.
set -uo pipefail
cd "$(dirname "$0")/../.."
py=${1:?usage: counts.sh PYTHON}
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
