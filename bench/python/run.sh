#!/usr/bin/env bash
# bench/python/run.sh - the Python binding side by side with asyncio and uvloop,
# in one run (also `bench/run.sh python [SECTION...]`):
#
#   echo   the README's echo server (echo_ekiden.py) on ekiden (one worker, and a
#          current-thread runtime), the same server on asyncio streams with the
#          default loop and with uvloop (echo_asyncio.py), and the hand-written
#          epoll server (bench/peers/epoll_echo.c, one thread) as the ceiling;
#          bench/loadgen (the load generator of the C rows), 64 B and 4 KiB, 1
#          and 100 connections. Every row runs BENCH_NET_ROUNDS rounds, the
#          servers rotated each round; the table gives the median, the range
#          (min-max) and the server's CPU time per request.
#   kv     a GET/SET key-value service: ekiden.serve(codec="resp") (kv_ekiden.py;
#          one worker with the default server and with serve(local=True), a
#          current-thread runtime (local) with a plain-def handler, an
#          async-def one and a batch handler) against the same service on uvloop with
#          hiredis's reader (kv_asyncio.py), and redis-server as the ceiling;
#          redis-benchmark -t set,get -c 50 -n KV_N, without and with -P 16,
#          rounds rotated; req/s, the server's CPU µs per request, ratios, and
#          redis-benchmark's own CPU µs per request (lg): at 1/lg req/s it
#          fills a core, the most it can show of any server on this machine.
#   kvlg   the same servers driven by bench/loadgen resp-set / resp-get (-c 50,
#          -P 1 and 16, BENCH_DURATION s each): one send and one recv per -P
#          commands, cheaper per request than redis-benchmark, so a server
#          faster than redis-benchmark's ceiling shows it.
#   micro  the binding's per-operation costs (micro.py): a cffi call, a task
#          poll, spawn + await, against asyncio and uvloop.
#   counts the key-value servers under callgrind (counts.sh): instructions and
#          calls into Python per request, -P 16 and without (not in the
#          default: valgrind takes minutes).
#
# Usage: bench/python/run.sh [echo] [kv] [kvlg] [micro] [counts]   (default: echo kv micro)
# Environment: BENCH_BUILD_DIR (default build-bench), BENCH_DURATION (seconds per
# echo run, 2), BENCH_WARMUP (0.5), BENCH_NET_ROUNDS (3), BENCH_PIN (1: the
# single-connection rows pin the server to core 0 and loadgen to core 1), KV_N
# (requests per redis-benchmark run, 100000), BENCH_OUT (the markdown table, default
# BUILD/python-bench.md; the raw log beside it). Wrap it in `flock /work/bench.lock`
# on a shared machine. Loopback only. The venv BUILD/py-bench-venv gets the
# package (pip install .) and pinned uvloop and hiredis; none of them is needed
# by the test suite.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BUILD=${BENCH_BUILD_DIR:-$ROOT/build-bench}
DURATION=${BENCH_DURATION:-2}
WARMUP=${BENCH_WARMUP:-0.5}
ROUNDS=${BENCH_NET_ROUNDS:-3}
PIN=${BENCH_PIN:-1}
KV_N=${KV_N:-100000}
OUT=${BENCH_OUT:-$BUILD/python-bench.md}
LOG=${OUT%.md}.log
SECTIONS=("$@")
[ ${#SECTIONS[@]} -gt 0 ] || SECTIONS=(echo kv micro)
venv=$BUILD/py-bench-venv
py=$venv/bin/python
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$BUILD"
: >"$LOG"
: >"$OUT"
log() { echo "$*" | tee -a "$LOG" >&2; }
emit() { echo "$*" | tee -a "$OUT"; }
want() {
  local s
  for s in "${SECTIONS[@]}"; do [ "$s" = "$1" ] && return 0; done
  return 1
}

log "== building loadgen, epoll_echo; venv $venv"
CMAKE_ARGS="-DEK_BENCH=ON -DEK_TESTS=OFF -DCMAKE_BUILD_TYPE=Release" \
  scripts/build.sh "$BUILD" "" -- --target loadgen epoll_echo >>"$LOG" 2>&1 || {
  log "build failed (see $LOG)"
  exit 1
}
[ -x "$py" ] || python3 -m venv "$venv"
"$py" -m pip install -q --disable-pip-version-check cffi==2.0.0 setuptools==75.6.0 wheel==0.45.1 \
  uvloop==0.21.0 hiredis==3.5.0 >>"$LOG" 2>&1 &&
  "$py" -m pip install -q --disable-pip-version-check --no-build-isolation --no-deps . >>"$LOG" 2>&1 || {
  log "pip install failed (see $LOG)"
  exit 1
}
LOADGEN=$BUILD/bench/loadgen
EPOLL=$BUILD/bench/epoll_echo
NCPU=$(nproc)

# Ports below the ephemeral range, as bench/run.sh picks them.
EPH_LOW=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
SPAN=$((EPH_LOW > 12000 ? EPH_LOW - 11000 : 1000))
PORT=$((10000 + ($$ * 53 % SPAN)))
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
declare -A ADDR PID

# start TAG CMD... (PORT in CMD's words becomes the port): start a server and
# wait (bounded) until it accepts.
start() {
  local tag=$1 try a args
  shift
  ADDR[$tag]=""
  for ((try = 0; try < 5; try++)); do
    PORT=$((PORT + 1))
    port_open "$PORT" && continue
    args=()
    for a in "$@"; do args+=("${a//PORT/$PORT}"); done
    "${args[@]}" >>"$LOG" 2>&1 &
    local pid=$! i
    PIDS+=("$pid")
    for ((i = 0; i < 200; i++)); do
      if port_open "$PORT"; then
        ADDR[$tag]=127.0.0.1:$PORT
        PID[$tag]=$pid
        log "   $tag on ${ADDR[$tag]} (pid $pid)"
        return
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null
  done
  log "   $tag did not start (see $LOG)"
}

# stop TAG: SIGINT (Ctrl-C) for the Python servers, as a user stops a server
# (one still there after 10 s is reported: the binding must handle Ctrl-C, and
# the servers undo the SIGINT-ignored state a background job starts in); SIGTERM
# for the C ones (epoll_echo, redis-server), which keep that state.
stop() {
  local pid=${PID[$1]:-} i sig=INT
  [ -n "$pid" ] || return 0
  case $1 in epoll | redis) sig=TERM ;; esac
  kill -"$sig" "$pid" 2>/dev/null
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "   $1: still running 10 s after SIG$sig: killed"
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  PID[$1]=""
}

cpu_ticks() { # utime + stime of every thread of a process, in clock ticks
  awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
# children_ticks FILE: the children's user + system time in the output of bash's
# `times` (its second line), in clock ticks. A load generator is run in a
# subshell of its own, `( cmd; times >FILE )`: a new process starts with no
# children's time, so that line is the load generator's (and its pipe's).
children_ticks() {
  awk -v hz="$HZ" 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/)
    printf "%d\n", ((u[1] + s[1]) * 60 + u[2] + s[2]) * hz + 0.5 }' "$1" 2>/dev/null || echo 0
}
HZ=$(getconf CLK_TCK)

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
range() { sort -g | awk '{ v[NR] = $1 } END { if (NR >= 2) printf "%.0f–%.0f", v[1], v[NR] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "n/a" }'; }
# min-max of the per-round ratios A/B (files of one value per round, same order)
ratio_range() {
  paste "$1" "$2" 2>/dev/null | awk '$1 > 0 && $2 > 0 { r = $1 / $2; if (n == 0 || r < lo) lo = r; if (n == 0 || r > hi) hi = r; n++ }
    END { if (n >= 2) printf "%.2f–%.2f", lo, hi }'
}

# ------------------------------------------------------------------ echo
echo_section() {
  local servers=(ekiden ekiden_ct asyncio uvloop epoll)
  log "== echo servers"
  start ekiden "$py" bench/python/echo_ekiden.py PORT 1
  start ekiden_ct "$py" bench/python/echo_ekiden.py PORT ct
  start asyncio "$py" bench/python/echo_asyncio.py PORT asyncio
  start uvloop "$py" bench/python/echo_asyncio.py PORT uvloop
  start epoll "$EPOLL" 127.0.0.1:PORT 1
  local tmp
  tmp=$(mktemp -d)
  emit ""
  emit "Echo, $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg), $ROUNDS rounds of ${DURATION} s per cell (rotated), req/s median [min–max]; CPU µs/req = the server's CPU time per request (median)."
  emit ""
  emit "| row | ekiden (1 worker) | ekiden (current thread) | asyncio streams | uvloop streams | epoll (C) | ekiden / uvloop | ekiden ct / uvloop | ekiden / asyncio | ekiden / epoll |"
  emit "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  local size conns r k i tag n=${#servers[@]} row
  for size in 64 4096; do
    for conns in 1 100; do
      row="${size} B x${conns}"
      log "-- $row"
      for ((r = 0; r < ROUNDS; r++)); do
        for ((k = 0; k < n; k++)); do
          i=$(((k + r) % n))
          tag=${servers[$i]}
          [ -n "${ADDR[$tag]}" ] || continue
          local pre=() pinned=0
          if [ "$conns" = 1 ] && [ "$PIN" = 1 ] && [ "$NCPU" -ge 2 ]; then
            taskset -a -p -c 0 "${PID[$tag]}" >/dev/null 2>&1 && pinned=1 && pre=(taskset -c 1)
          fi
          local c0 c1 out req rps
          c0=$(cpu_ticks "${PID[$tag]}")
          out=$(timeout $((${DURATION%.*} + 60)) "${pre[@]}" "$LOADGEN" echo "${ADDR[$tag]}" -c "$conns" \
            -s "$size" -d "$DURATION" -w "$WARMUP" 2>>"$LOG")
          c1=$(cpu_ticks "${PID[$tag]}")
          [ $pinned = 1 ] && taskset -a -p -c "0-$((NCPU - 1))" "${PID[$tag]}" >/dev/null 2>&1
          echo "$tag $row round $r: $out" >>"$LOG"
          read -r req rps < <(echo "$out" | awk '$1 == "LOAD" { for (i = 3; i <= NF; i++) {
            split($i, kv, "="); f[kv[1]] = kv[2] } print f["requests"], f["req_per_s"] }')
          [ -n "${rps:-}" ] || rps=0
          echo "$rps" >>"$tmp/$tag.v"
          # CPU per request: the ticks cover the warm-up too, loadgen counts
          # only the measured requests; scale those by (duration + warm-up) /
          # duration.
          awk -v c=$((c1 - c0)) -v hz="$HZ" -v req="${req:-0}" -v d="$DURATION" -v w="$WARMUP" \
            'BEGIN { if (req > 0) printf "%.1f\n", c / hz * 1e6 / (req * (d + w) / d) }' >>"$tmp/$tag.c"
        done
      done
      local cells=() t v c
      for t in "${servers[@]}"; do
        v=$(median <"$tmp/$t.v" 2>/dev/null)
        c=$(median <"$tmp/$t.c" 2>/dev/null)
        cells+=("$(printf '%.0f' "$v" 2>/dev/null || echo n/a) [$(range <"$tmp/$t.v" 2>/dev/null)] ${c} µs")
      done
      local m_ek m_ct m_aio m_uv m_ep
      m_ek=$(median <"$tmp/ekiden.v")
      m_ct=$(median <"$tmp/ekiden_ct.v")
      m_aio=$(median <"$tmp/asyncio.v")
      m_uv=$(median <"$tmp/uvloop.v")
      m_ep=$(median <"$tmp/epoll.v")
      emit "| $row | ${cells[0]} | ${cells[1]} | ${cells[2]} | ${cells[3]} | ${cells[4]} |" \
        "$(ratio "$m_ek" "$m_uv") [$(ratio_range "$tmp/ekiden.v" "$tmp/uvloop.v")] |" \
        "$(ratio "$m_ct" "$m_uv") [$(ratio_range "$tmp/ekiden_ct.v" "$tmp/uvloop.v")] |" \
        "$(ratio "$m_ek" "$m_aio") |" "$(ratio "$m_ek" "$m_ep") |"
      rm -f "$tmp"/*
    done
  done
  rm -rf "$tmp"
  local t
  for t in "${servers[@]}"; do stop "$t"; done
}

# ------------------------------------------------------------------ kv
kv_section() {
  command -v redis-benchmark >/dev/null || {
    log "redis-benchmark not found: kv section skipped"
    return
  }
  local servers=(ekiden ekiden_local ekiden_ct ekiden_async ekiden_batch uvloop redis)
  log "== key-value servers"
  start ekiden "$py" bench/python/kv_ekiden.py PORT 1 def
  start ekiden_local "$py" bench/python/kv_ekiden.py PORT 1 def local
  start ekiden_ct "$py" bench/python/kv_ekiden.py PORT ct def local
  start ekiden_async "$py" bench/python/kv_ekiden.py PORT ct async local
  start ekiden_batch "$py" bench/python/kv_ekiden.py PORT ct batch local
  start uvloop "$py" bench/python/kv_asyncio.py PORT uvloop
  if command -v redis-server >/dev/null; then
    start redis redis-server --port PORT --bind 127.0.0.1 --save '' --appendonly no
  fi
  local tmp
  tmp=$(mktemp -d)
  emit ""
  emit "Key-value service, $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg), redis-benchmark -c 50 -n $KV_N, $ROUNDS rounds rotated, req/s median [min–max]; CPU µs/req = the server's CPU time per request (median), lg = redis-benchmark's own (median: it fills its core at 1/lg req/s). Handlers: a plain def (def), an async def (async) or a batch handler (batch: Service(batch=True), one call per batch, what a user picks for speed); the ratios are to uvloop + hiredis, [min–max] over the rounds."
  emit ""
  emit "| row | ekiden 1 worker (def) | ekiden 1 worker, local (def) | ekiden current thread, local (def) | ekiden current thread, local (async) | ekiden current thread, local (batch) | uvloop + hiredis | redis-server | ekiden / uvloop | ekiden local / uvloop | ekiden ct / uvloop | ekiden ct async / uvloop | ekiden ct batch / uvloop |"
  emit "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  local p t r k i tag n=${#servers[@]}
  for p in 1 16; do
    for t in set get; do
      local row="${t^^}$([ "$p" = 16 ] && echo " -P 16")"
      log "-- $row"
      for ((r = 0; r < ROUNDS; r++)); do
        for ((k = 0; k < n; k++)); do
          i=$(((k + r) % n))
          tag=${servers[$i]}
          [ -n "${ADDR[$tag]:-}" ] || continue
          local v c0 c1 lg
          c0=$(cpu_ticks "${PID[$tag]}")
          # redis-benchmark's own CPU time (user + system, from bash's times
          # of its children) around the run
          (
            timeout 300 redis-benchmark -h 127.0.0.1 -p "${ADDR[$tag]##*:}" -t "$t" -n "$KV_N" -c 50 \
              -P "$p" -q 2>>"$LOG" | tr '\r' '\n' | sed -nE 's/.*: ([0-9.]+) requests per second.*/\1/p' |
              tail -n 1 >"$tmp/last"
            times >"$tmp/times"
          )
          lg=$(children_ticks "$tmp/times")
          v=$(cat "$tmp/last")
          c1=$(cpu_ticks "${PID[$tag]}")
          echo "$tag $row round $r: ${v:-failed} (redis-benchmark CPU ${lg:-?} ticks)" >>"$LOG"
          echo "${v:-0}" >>"$tmp/$tag.v"
          awk -v c=$((c1 - c0)) -v hz="$HZ" -v req="$KV_N" \
            'BEGIN { if (req > 0) printf "%.2f\n", c / hz * 1e6 / req }' >>"$tmp/$tag.c"
          awk -v c="${lg:-0}" -v hz="$HZ" -v req="$KV_N" \
            'BEGIN { if (req > 0) printf "%.2f\n", c / hz * 1e6 / req }' >>"$tmp/$tag.lg"
        done
      done
      local cells=() s
      for s in "${servers[@]}"; do
        cells+=("$(printf '%.0f' "$(median <"$tmp/$s.v" 2>/dev/null)" 2>/dev/null || echo n/a) [$(range <"$tmp/$s.v" 2>/dev/null)] $(median <"$tmp/$s.c" 2>/dev/null) µs, lg $(median <"$tmp/$s.lg" 2>/dev/null) µs")
      done
      emit "| $row | ${cells[0]} | ${cells[1]} | ${cells[2]} | ${cells[3]} | ${cells[4]} | ${cells[5]} | ${cells[6]} |" \
        "$(ratio "$(median <"$tmp/ekiden.v")" "$(median <"$tmp/uvloop.v")") [$(ratio_range "$tmp/ekiden.v" "$tmp/uvloop.v")] |" \
        "$(ratio "$(median <"$tmp/ekiden_local.v")" "$(median <"$tmp/uvloop.v")") [$(ratio_range "$tmp/ekiden_local.v" "$tmp/uvloop.v")] |" \
        "$(ratio "$(median <"$tmp/ekiden_ct.v")" "$(median <"$tmp/uvloop.v")") [$(ratio_range "$tmp/ekiden_ct.v" "$tmp/uvloop.v")] |" \
        "$(ratio "$(median <"$tmp/ekiden_async.v")" "$(median <"$tmp/uvloop.v")") [$(ratio_range "$tmp/ekiden_async.v" "$tmp/uvloop.v")] |" \
        "$(ratio "$(median <"$tmp/ekiden_batch.v")" "$(median <"$tmp/uvloop.v")") [$(ratio_range "$tmp/ekiden_batch.v" "$tmp/uvloop.v")] |"
      rm -f "$tmp"/*
    done
  done
  rm -rf "$tmp"
  for t in "${servers[@]}"; do stop "$t"; done
}

# ------------------------------------------------------------------ kvlg
kvlg_section() {
  local servers=(ekiden ekiden_local ekiden_ct ekiden_async ekiden_batch uvloop redis)
  log "== key-value servers, driven by loadgen resp-set / resp-get"
  start ekiden "$py" bench/python/kv_ekiden.py PORT 1 def
  start ekiden_local "$py" bench/python/kv_ekiden.py PORT 1 def local
  start ekiden_ct "$py" bench/python/kv_ekiden.py PORT ct def local
  start ekiden_async "$py" bench/python/kv_ekiden.py PORT ct async local
  start ekiden_batch "$py" bench/python/kv_ekiden.py PORT ct batch local
  start uvloop "$py" bench/python/kv_asyncio.py PORT uvloop
  if command -v redis-server >/dev/null; then
    start redis redis-server --port PORT --bind 127.0.0.1 --save '' --appendonly no
  fi
  local tmp
  tmp=$(mktemp -d)
  emit ""
  emit "Key-value service driven by bench/loadgen resp-set / resp-get, $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg), -c 50, ${DURATION} s after ${WARMUP} s of warm-up, $ROUNDS rounds rotated, req/s median [min–max]; CPU µs/req = the server's, lg = loadgen's own (medians); the ratios are to uvloop + hiredis."
  emit ""
  emit "| row | ekiden 1 worker (def) | ekiden 1 worker, local (def) | ekiden current thread, local (def) | ekiden current thread, local (async) | ekiden current thread, local (batch) | uvloop + hiredis | redis-server | ekiden / uvloop | ekiden local / uvloop | ekiden ct / uvloop | ekiden ct async / uvloop | ekiden ct batch / uvloop |"
  emit "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  local p t r k i tag n=${#servers[@]}
  for p in 1 16; do
    for t in set get; do
      local row="${t^^}$([ "$p" = 16 ] && echo " -P 16")"
      log "-- loadgen $row"
      for ((r = 0; r < ROUNDS; r++)); do
        for ((k = 0; k < n; k++)); do
          i=$(((k + r) % n))
          tag=${servers[$i]}
          [ -n "${ADDR[$tag]:-}" ] || continue
          local c0 c1 lg out req rps
          c0=$(cpu_ticks "${PID[$tag]}")
          (
            timeout $((${DURATION%.*} + 60)) "$LOADGEN" "resp-$t" "${ADDR[$tag]}" -c 50 -P "$p" \
              -d "$DURATION" -w "$WARMUP" >"$tmp/last" 2>>"$LOG"
            times >"$tmp/times"
          )
          lg=$(children_ticks "$tmp/times")
          c1=$(cpu_ticks "${PID[$tag]}")
          out=$(cat "$tmp/last")
          echo "$tag loadgen $row round $r: $out (loadgen CPU ${lg:-?} ticks)" >>"$LOG"
          read -r req rps < <(echo "$out" | awk '$1 == "LOAD" { for (i = 3; i <= NF; i++) {
            split($i, kv, "="); f[kv[1]] = kv[2] } print f["requests"], f["req_per_s"] }')
          [ -n "${rps:-}" ] || rps=0
          echo "$rps" >>"$tmp/$tag.v"
          # Both CPU times cover the warm-up too: scale the measured requests by
          # (duration + warm-up) / duration.
          awk -v c=$((c1 - c0)) -v l="${lg:-0}" -v hz="$HZ" -v req="${req:-0}" -v d="$DURATION" -v w="$WARMUP" \
            'BEGIN { if (req > 0) { n = req * (d + w) / d; printf "%.2f\n", c / hz * 1e6 / n > "/dev/stderr"; printf "%.2f\n", l / hz * 1e6 / n } }' \
            >>"$tmp/$tag.lg" 2>>"$tmp/$tag.c"
        done
      done
      local cells=() s
      for s in "${servers[@]}"; do
        cells+=("$(printf '%.0f' "$(median <"$tmp/$s.v" 2>/dev/null)" 2>/dev/null || echo n/a) [$(range <"$tmp/$s.v" 2>/dev/null)] $(median <"$tmp/$s.c" 2>/dev/null) µs, lg $(median <"$tmp/$s.lg" 2>/dev/null) µs")
      done
      emit "| $row | ${cells[0]} | ${cells[1]} | ${cells[2]} | ${cells[3]} | ${cells[4]} | ${cells[5]} | ${cells[6]} |" \
        "$(ratio "$(median <"$tmp/ekiden.v")" "$(median <"$tmp/uvloop.v")") [$(ratio_range "$tmp/ekiden.v" "$tmp/uvloop.v")] |" \
        "$(ratio "$(median <"$tmp/ekiden_local.v")" "$(median <"$tmp/uvloop.v")") [$(ratio_range "$tmp/ekiden_local.v" "$tmp/uvloop.v")] |" \
        "$(ratio "$(median <"$tmp/ekiden_ct.v")" "$(median <"$tmp/uvloop.v")") [$(ratio_range "$tmp/ekiden_ct.v" "$tmp/uvloop.v")] |" \
        "$(ratio "$(median <"$tmp/ekiden_async.v")" "$(median <"$tmp/uvloop.v")") [$(ratio_range "$tmp/ekiden_async.v" "$tmp/uvloop.v")] |" \
        "$(ratio "$(median <"$tmp/ekiden_batch.v")" "$(median <"$tmp/uvloop.v")") [$(ratio_range "$tmp/ekiden_batch.v" "$tmp/uvloop.v")] |"
      rm -f "$tmp"/*
    done
  done
  rm -rf "$tmp"
  for t in "${servers[@]}"; do stop "$t"; done
}

# ------------------------------------------------------------------ micro
micro_section() {
  emit ""
  emit "Per-operation costs (bench/python/micro.py; CPU time per operation, best of 3), load average $(cut -d' ' -f1-3 /proc/loadavg):"
  emit ""
  emit '```'
  "$py" bench/python/micro.py 2>>"$LOG" | tee -a "$OUT"
  emit '```'
}

want echo && echo_section
want kv && kv_section
want kvlg && kvlg_section
want micro && micro_section
if want counts; then
  emit ""
  emit "Counts under callgrind (bench/python/counts.sh), $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg):"
  emit ""
  bench/python/counts.sh "$py" 2>>"$LOG" | tee -a "$OUT"
fi
log "== table in $OUT, log in $LOG"
