#!/usr/bin/env bash
# bench/lua/run.sh - the Lua binding's benchmarks (issue 10), side by side in one run:
#
#  echo  the Lua echo server (bench/lua/echo_ekiden.lua, the issue's server), with
#        string reads (stream:read), with buffer reads (stream:read_into, no
#        garbage per read) and with buffer reads whose methods the loop holds in
#        locals (lean), and the buffer server on an older module (OLD), against
#        the same server on luv (bench/lua/echo_luv.lua, Debian lua-luv) and the
#        hand-written epoll server (bench/peers/epoll_echo.c, one thread), driven by
#        bench/loadgen (the load generator of the C rows), 64 B and 4 KiB, 1 and 100
#        connections. Every server takes ROUNDS turns per row, rotated; a row gives
#        the median and the range (min-max) of the rounds, and p99 (median).
#        Single-connection rows pin the server to core 0 and the load generator to
#        core 1 (taskset), as bench/run.sh does.
#  resp  a key-value service (SET/GET) on ek.serve{codec = "resp"}
#        (bench/lua/kv_ekiden.lua) against the same logic on luv with a Lua RESP
#        parser (bench/lua/kv_luv.lua), driven by redis-benchmark (-n requests,
#        50 clients, no pipelining, and again with -P 16), rotated rounds; the
#        epoll echo server under the same redis-benchmark (no work per request:
#        the ceiling of any server on this machine and load generator) and
#        redis-server (if installed) in the same rotation.
#
#  counts  instructions (callgrind) and syscalls (strace) per 64 B echo round trip
#        of the Lua server (1 worker, and current_thread), luv and the epoll server.
#  kvcounts  the same per redis-benchmark request of the two key-value servers,
#        -P 1 and -P 16.
#  kvcpu  the load generator's ceiling: CPU time per request (perf stat
#        task-clock, software events: user + kernel, all threads) of each
#        key-value server, redis-server and the epoll echo server, and of
#        redis-benchmark itself, under the resp part's settings (-P 1 and 16),
#        with each side's CPU use in cores (task-clock / the time the requests
#        took, from redis-benchmark's rates): a server
#        below 1 core while redis-benchmark is near 1 is bounded by the
#        generator, not by its own cost.
#
#   bench/lua/run.sh [echo] [resp] [counts] [kvcounts] [kvcpu]   (echo and resp by
#                                             default, about 3 minutes; also:
#                                             bench/run.sh lua ...)
#
# Environment: BUILD (default build-bench), ROUNDS (3), DURATION (seconds per
# loadgen run, 2), WARMUP (0.5), LUA (interpreter, lua5.4; luajit runs the
# LuaJIT module), EK_WORKERS (worker threads of the ekiden servers, 1), EK_FLAVOR
# (current_thread: the reactor on the Lua thread, as luv's loop, the default;
# multi_thread: the reactor on EK_WORKERS workers), REQUESTS
# (redis-benchmark -n, 100000), PIN (1), ECHO_SERVERS (the echo part's servers,
# of: ekiden ekbuf eklean ekold luv epoll; all by default), OLD (a directory
# holding an older build's lua/5.4/ekiden.so, or lua/5.1 for luajit, and its
# libekiden.so.0: the ekold server runs the buffer loop on it, an A/B in the
# same rotation), CPU (1: the echo part also gives each server's CPU time per
# round trip, perf stat task-clock over the counted seconds, user + kernel;
# steadier than req/s on a shared machine), GC (the collector's setting of every
# Lua server, ekiden's and luv's alike: bench/lua/gc_policy.lua; "default" is
# the interpreter's own, "incremental:PAUSE" the policy of docs/lua.md, the
# default here: incremental:400). Loopback only. Run it alone
# (flock /work/bench.lock on the shared machine): it measures the machine.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build-bench}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-2}
WARMUP=${WARMUP:-0.5}
LUA=${LUA:-lua5.4}
EK_WORKERS=${EK_WORKERS:-1}
EK_FLAVOR=${EK_FLAVOR:-current_thread}
REQUESTS=${REQUESTS:-100000}
PIN=${PIN:-1}
CPU=${CPU:-1}
command -v perf >/dev/null && perf stat -x, -e task-clock -o /dev/null true 2>/dev/null || CPU=0
export GC=${GC:-incremental:400}
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(echo resp)

# The peers and tools (installs only what is missing: luv is no build
# dependency, so a new machine lacks it; the counts parts need valgrind, strace).
extra=(lua-luv)
[[ " ${parts[*]} " =~ " counts " || " ${parts[*]} " =~ " kvcounts " ]] && extra+=(valgrind strace)
scripts/deps.sh "${extra[@]}" >/dev/null || echo "scripts/deps.sh ${extra[*]} failed: some rows may be missing" >&2

CMAKE_ARGS="-DEK_BENCH=ON -DEK_TESTS=OFF -DCMAKE_BUILD_TYPE=Release" \
  scripts/build.sh "$BUILD" "" -- --target loadgen epoll_echo ekiden_lua ekiden_luajit >/dev/null ||
  { echo "build failed" >&2; exit 1; }
case $LUA in
*jit*) cpath=$BUILD/lua/5.1/?.so ;;
*) cpath=$BUILD/lua/5.4/?.so ;;
esac
export LUA_CPATH="$ROOT/$cpath;;"

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# (below the ephemeral range, 32768-60999, where clients' ports would collide)
port=$((10000 + RANDOM % 20000))
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
declare -A ADDR PID
# start TAG CMD...: CMD's argument @ADDR@ becomes the server's address.
start() {
  local tag=$1 a args=()
  shift
  while port_open "$port"; do port=$((port + 1)); done
  for a in "$@"; do
    case $a in
    @ADDR@) args+=("127.0.0.1:$port") ;;
    @PORT@) args+=("$port") ;;
    *) args+=("$a") ;;
    esac
  done
  "${args[@]}" >/dev/null 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 200); do
    port_open "$port" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if port_open "$port"; then
    ADDR[$tag]=127.0.0.1:$port
    PID[$tag]=$pid
  else
    echo "$tag did not start: $*" >&2
    ADDR[$tag]=""
  fi
  port=$((port + 1))
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
crange() { sort -g | awk '{ v[NR] = $1 } END { if (NR >= 2) printf "%.2f-%.2f", v[1], v[NR] }'; }
range() { sort -g | awk '{ v[NR] = $1 } END { if (NR >= 2) printf "%.0f-%.0f", v[1], v[NR] }'; }
int0() { awk -v a="$1" 'BEGIN { if (a == "n/a" || a == "") print "n/a"; else printf "%.0f", a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }

NCPU=$(nproc)
pin() { [ "$PIN" = 1 ] && [ "$NCPU" -ge 2 ] && taskset -a -p -c 0 "$1" >/dev/null 2>&1; }
unpin() { [ "$PIN" = 1 ] && [ "$NCPU" -ge 2 ] && taskset -a -p -c "0-$((NCPU - 1))" "$1" >/dev/null 2>&1; }

echo "Lua benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC'), $NCPU cores, commit $(git rev-parse --short HEAD 2>/dev/null)," \
  "$($LUA -v 2>&1 | head -n 1 | cut -d' ' -f1-2), ekiden workers $EK_WORKERS ($EK_FLAVOR)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "Lua collector of every Lua server (echo and key-value): GC=$GC, the same for ekiden (ek.run's gc option) and luv (collectgarbage)"

# The echo servers, by tag: ECHO_SERVERS picks some (default all of those
# that can run; ekold needs OLD).
declare -A ECHO_LABEL=(
  [ekiden]="ekiden (stream:read)"
  [ekbuf]="ekiden buf (read_into)"
  [eklean]="ekiden lean (read_into, methods in locals)"
  [ekold]="OLD buf (read_into)"
  [luv]="luv"
  [epoll]="epoll"
)
echo_part() {
  local servers=() tag
  for tag in ${ECHO_SERVERS:-ekiden ekbuf eklean ekold luv epoll}; do
    case $tag in
    ekiden) start ekiden "$LUA" bench/lua/echo_ekiden.lua @ADDR@ "$EK_WORKERS" "$EK_FLAVOR" string ;;
    ekbuf) start ekbuf "$LUA" bench/lua/echo_ekiden.lua @ADDR@ "$EK_WORKERS" "$EK_FLAVOR" buffer ;;
    eklean) start eklean "$LUA" bench/lua/echo_ekiden.lua @ADDR@ "$EK_WORKERS" "$EK_FLAVOR" lean ;;
    ekold)
      [ -n "${OLD:-}" ] || continue
      start ekold env LD_LIBRARY_PATH="$OLD" LUA_CPATH="$OLD/${cpath#"$BUILD/"};;" \
        "$LUA" bench/lua/echo_ekiden.lua @ADDR@ "$EK_WORKERS" "$EK_FLAVOR" buffer
      ;;
    luv) start luv "$LUA" bench/lua/echo_luv.lua @ADDR@ ;;
    epoll) start epoll "$BUILD/bench/epoll_echo" @ADDR@ 1 ;;
    *) echo "unknown echo server $tag" >&2; continue ;;
    esac
    servers+=("$tag")
  done
  local tmp
  tmp=$(mktemp -d)
  echo
  echo "req/s: median [min-max] of $ROUNDS rotated rounds; p99 µs: median; ratios of the medians"
  [ -n "${OLD:-}" ] && echo "OLD: the module and libekiden in $OLD (an A/B of the buffer server, the same script)"
  echo
  local head="| echo row" rule="|---"
  for tag in "${servers[@]}"; do head+=" | ${ECHO_LABEL[$tag]} req/s"; rule+="|---:"; done
  for tag in "${servers[@]}"; do
    case $tag in luv | epoll) ;; *) head+=" | ${tag}/epoll | ${tag}/luv"; rule+="|---:|---:" ;; esac
  done
  for tag in "${servers[@]}"; do head+=" | p99 ${tag}"; rule+="|---:"; done
  if [ "$CPU" = 1 ]; then
    for tag in "${servers[@]}"; do head+=" | CPU µs/rt ${tag}"; rule+="|---:"; done
  fi
  echo "$head |"
  echo "$rule|"
  local size conns r k i out
  for size in 64 4096; do
    for conns in 1 100; do
      rm -f "$tmp"/*
      for ((r = 0; r < ROUNDS; r++)); do
        for ((k = 0; k < ${#servers[@]}; k++)); do
          i=$(((k + r) % ${#servers[@]}))
          tag=${servers[$i]}
          [ -n "${ADDR[$tag]}" ] || continue
          local pre=()
          if [ "$conns" = 1 ] && pin "${PID[$tag]}"; then pre=(taskset -c 1); fi
          # The server's CPU time over the counted seconds (perf stat
          # task-clock, all its threads, user + kernel), when perf can.
          local cpid=""
          if [ "$CPU" = 1 ]; then
            (sleep "$WARMUP"; perf stat -x, -e task-clock -p "${PID[$tag]}" -o "$tmp/cpu" -- sleep "$DURATION") \
              >/dev/null 2>&1 &
            cpid=$!
          fi
          out=$(timeout 60 "${pre[@]}" "$BUILD/bench/loadgen" echo "${ADDR[$tag]}" -c "$conns" -s "$size" \
            -d "$DURATION" -w "$WARMUP" 2>/dev/null | awk '$1 == "LOAD" { for (i = 3; i <= NF; i++) {
              split($i, kv, "="); f[kv[1]] = kv[2] } print f["req_per_s"], f["p99_us"], f["errors"] }')
          [ -n "$cpid" ] && wait "$cpid"
          [ "$conns" = 1 ] && unpin "${PID[$tag]}"
          read -r v p e <<<"$out"
          [ -n "${v:-}" ] || continue
          echo "$v" >>"$tmp/$tag.v"
          echo "$p" >>"$tmp/$tag.p"
          if [ -n "$cpid" ] && [ -s "$tmp/cpu" ]; then
            awk -F, -v v="$v" -v d="$DURATION" '$3 == "task-clock" && v > 0 { printf "%.3f\n", $1 * 1000 / (v * d) }' \
              "$tmp/cpu" >>"$tmp/$tag.c"
            rm -f "$tmp/cpu"
          fi
          [ "${e:-0}" = 0 ] || echo "($tag ${size}B x$conns: $e errors)" >&2
        done
      done
      declare -A med=()
      local row="| echo.${size}B.x$conns"
      for tag in "${servers[@]}"; do
        med[$tag]=$(median <"$tmp/$tag.v" 2>/dev/null || echo n/a)
        row+=" | $(int0 "${med[$tag]}") [$(range <"$tmp/$tag.v" 2>/dev/null)]"
      done
      for tag in "${servers[@]}"; do
        case $tag in luv | epoll) ;; *) row+=" | $(ratio "${med[$tag]}" "${med[epoll]:-n/a}") | $(ratio "${med[$tag]}" "${med[luv]:-n/a}")" ;; esac
      done
      for tag in "${servers[@]}"; do row+=" | $(median <"$tmp/$tag.p" 2>/dev/null)"; done
      if [ "$CPU" = 1 ]; then
        for tag in "${servers[@]}"; do row+=" | $(median <"$tmp/$tag.c" 2>/dev/null | awk '{ printf "%.2f", $1 }') [$(crange <"$tmp/$tag.c" 2>/dev/null)]"; done
      fi
      echo "$row |"
    done
  done
  rm -rf "$tmp"
  for tag in "${servers[@]}"; do [ -n "${PID[$tag]:-}" ] && kill "${PID[$tag]}" 2>/dev/null; done
}

resp_part() {
  command -v redis-benchmark >/dev/null || { echo "redis-benchmark not installed (redis-tools)"; return; }
  start kv_ekiden "$LUA" bench/lua/kv_ekiden.lua @ADDR@ "$EK_WORKERS" "$EK_FLAVOR"
  start kv_luv "$LUA" bench/lua/kv_luv.lua @ADDR@
  # The ceiling under the same load: the epoll echo server (its echo of a
  # command is one RESP array reply, so redis-benchmark counts it as the
  # answer) does no work per request but the socket's; redis-server for scale.
  start kv_epoll "$BUILD/bench/epoll_echo" @ADDR@ 1
  local servers=(kv_ekiden kv_luv kv_epoll) tmp pipe r k i tag
  if command -v redis-server >/dev/null; then
    start kv_redis redis-server --bind 127.0.0.1 --port @PORT@ --save "" --appendonly no
    servers+=(kv_redis)
  fi
  tmp=$(mktemp -d)
  echo
  echo "| redis-benchmark ($REQUESTS requests, 50 clients) | ek.serve (Lua service) req/s | range | luv + Lua parser req/s | range | ratio | epoll echo (ceiling) req/s | ceiling / luv | redis-server req/s |"
  echo "|---|---:|---|---:|---|---:|---:|---:|---:|"
  for pipe in 1 16; do
    rm -f "$tmp"/*
    for ((r = 0; r < ROUNDS; r++)); do
      for ((k = 0; k < ${#servers[@]}; k++)); do
        i=$(((k + r) % ${#servers[@]}))
        tag=${servers[$i]}
        [ -n "${ADDR[$tag]}" ] || continue
        timeout 120 redis-benchmark -h 127.0.0.1 -p "${ADDR[$tag]##*:}" -t set,get -n "$REQUESTS" -c 50 \
          -P "$pipe" --csv 2>/dev/null | tr -d '"' | awk -F, -v d="$tmp" -v t="$tag" \
          '$1 == "SET" || $1 == "GET" { print $2 >> (d "/" t "." $1) }'
      done
    done
    local test ev lv cv rv
    for test in SET GET; do
      ev=$(median <"$tmp/kv_ekiden.$test" 2>/dev/null || echo n/a)
      lv=$(median <"$tmp/kv_luv.$test" 2>/dev/null || echo n/a)
      cv=$(median <"$tmp/kv_epoll.$test" 2>/dev/null || echo n/a)
      rv=$(median <"$tmp/kv_redis.$test" 2>/dev/null || echo n/a)
      printf '| %s -P %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$test" "$pipe" "$(int0 "$ev")" \
        "$(range <"$tmp/kv_ekiden.$test" 2>/dev/null)" "$(int0 "$lv")" "$(range <"$tmp/kv_luv.$test" 2>/dev/null)" \
        "$(ratio "$ev" "$lv")" "$(int0 "$cv")" "$(ratio "$cv" "$lv")" "$(int0 "$rv")"
    done
  done
  rm -rf "$tmp"
  for tag in "${servers[@]}"; do [ -n "${PID[$tag]:-}" ] && kill "${PID[$tag]}" 2>/dev/null; done
}

# counts: instructions (callgrind, user space) and syscalls (strace -f -c) per
# 64 B echo round trip, server side, as bench/counts.sh counts them: the
# difference of a D1 and a D2 second run, so start-up and shutdown cancel out.
# Figures a loaded machine does not move the way it moves times.
count_run() { # TOOL SECS CONNS SIZE CMD... (@ADDR@ in CMD) -> "count round_trips [calls]"
  local tool=$1 secs=$2 conns=$3 size=$4 a args=() out pre=()
  shift 4
  while port_open "$port"; do port=$((port + 1)); done
  for a in "$@"; do [ "$a" = @ADDR@ ] && args+=("127.0.0.1:$port") || args+=("$a"); done
  out=$(mktemp)
  case $tool in
  callgrind) pre=(valgrind --tool=callgrind --callgrind-out-file="$out.cg" --log-file="$out.vg") ;;
  strace) pre=(strace -f -c -o "$out") ;;
  esac
  "${pre[@]}" "${args[@]}" >/dev/null 2>&1 &
  local pid=$! i lg
  for ((i = 0; i < 600; i++)); do port_open "$port" && break; sleep 0.05; done
  lg=$("$BUILD/bench/loadgen" echo "127.0.0.1:$port" -c "$conns" -s "$size" -d "$secs" -w 0 2>/dev/null |
    awk '$1 == "LOAD" { for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "requests") print kv[2] } }')
  kill -TERM $(pgrep -P "$pid") "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  port=$((port + 1))
  local count calls=""
  if [ "$tool" = callgrind ]; then
    count=$(awk '/^(summary|totals):/ { print $2; exit }' "$out.cg")
  else
    count=$(awk '$NF == "total" { print $4 }' "$out")
    calls=$(awk '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { print $NF "=" $4 }' "$out" | tr '\n' ' ')
  fi
  rm -f "$out" "$out.cg" "$out.vg"
  echo "${count:-0} ${lg:-0} $calls"
}
per_rt() { awk -v c1="$1" -v r1="$2" -v c2="$3" -v r2="$4" 'BEGIN { if (r2 - r1 <= 0) print "n/a"; else printf "%.1f", (c2 - c1) / (r2 - r1) }'; }
calls_per_rt() {
  awk -v a="$1" -v b="$2" -v r="$3" 'BEGIN {
    n = split(a, x, " "); for (i = 1; i <= n; i++) { split(x[i], kv, "="); A[kv[1]] = kv[2] }
    n = split(b, y, " "); for (i = 1; i <= n; i++) { split(y[i], kv, "="); B[kv[1]] = kv[2] }
    out = "";
    for (k in B) { d = (B[k] - A[k]) / r; if (d >= 0.05) out = out sprintf("%s %.2f, ", k, d) }
    sub(/, $/, "", out); print out }'
}
counts_part() {
  command -v valgrind >/dev/null && command -v strace >/dev/null ||
    { echo "counts: valgrind and strace are needed"; return; }
  local D1=${D1:-1} D2=${D2:-3} conns s label cmd
  local servers=(
    "ekiden (Lua), 1 worker|$LUA bench/lua/echo_ekiden.lua @ADDR@ 1"
    "ekiden (Lua), current_thread|$LUA bench/lua/echo_ekiden.lua @ADDR@ 1 current_thread"
    "ekiden (Lua, buffer reads), current_thread|$LUA bench/lua/echo_ekiden.lua @ADDR@ 1 current_thread buffer"
    "luv|$LUA bench/lua/echo_luv.lua @ADDR@"
    "epoll server, 1 thread|$BUILD/bench/epoll_echo @ADDR@ 1"
  )
  echo
  echo "instructions (callgrind, user space) and syscalls (strace -f -c) per echo round trip,"
  echo "server side; difference of a ${D1} s and a ${D2} s run; collector: GC=$GC"
  echo
  echo "| server | size | connections | instructions / round trip | syscalls / round trip | of which |"
  echo "|---|---:|---:|---:|---:|---|"
  local size
  for size in ${COUNT_SIZES:-64}; do
  for conns in ${COUNT_CONNS:-1 100}; do
    for s in "${servers[@]}"; do
      IFS='|' read -r label cmd <<<"$s"
      [[ $label =~ ${COUNT_SERVERS:-.} ]] || continue
      local i1 r1 i2 r2 s1 q1 c1 s2 q2 c2
      # shellcheck disable=SC2086
      read -r i1 r1 < <(count_run callgrind "$D1" "$conns" "$size" $cmd)
      # shellcheck disable=SC2086
      read -r i2 r2 < <(count_run callgrind "$D2" "$conns" "$size" $cmd)
      # shellcheck disable=SC2086
      read -r s1 q1 c1 < <(count_run strace "$D1" "$conns" "$size" $cmd)
      # shellcheck disable=SC2086
      read -r s2 q2 c2 < <(count_run strace "$D2" "$conns" "$size" $cmd)
      echo "| $label | $size | $conns | $(per_rt "$i1" "$r1" "$i2" "$r2") | $(per_rt "$s1" "$q1" "$s2" "$q2") |" \
        "$(calls_per_rt "$c1" "$c2" "$(awk -v a="$q1" -v b="$q2" 'BEGIN { print (b - a > 0 ? b - a : 1) }')") |"
    done
  done
  done
}

# kvcounts: instructions (callgrind) and syscalls (strace) per request of the
# two key-value servers under redis-benchmark (SET and GET, 50 clients), -P 1
# and -P 16: the difference of a K1 and a K2 request run (K1=1000, K2=5000 of
# each command), so start-up and shutdown cancel out.
kv_count_run() { # TOOL N PIPE CMD... -> count
  local tool=$1 n=$2 pipe=$3 a args=() out pre=()
  shift 3
  while port_open "$port"; do port=$((port + 1)); done
  for a in "$@"; do [ "$a" = @ADDR@ ] && args+=("127.0.0.1:$port") || args+=("$a"); done
  out=$(mktemp)
  case $tool in
  callgrind) pre=(valgrind --tool=callgrind --callgrind-out-file="$out.cg" --log-file="$out.vg") ;;
  strace) pre=(strace -f -c -o "$out") ;;
  esac
  "${pre[@]}" "${args[@]}" >/dev/null 2>&1 &
  local pid=$! i
  for ((i = 0; i < 1200; i++)); do port_open "$port" && break; sleep 0.05; done
  timeout 300 redis-benchmark -h 127.0.0.1 -p "$port" -t set,get -n "$n" -c 50 -P "$pipe" -q >/dev/null 2>&1
  kill -TERM $(pgrep -P "$pid") "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  port=$((port + 1))
  if [ "$tool" = callgrind ]; then
    awk '/^(summary|totals):/ { print $2; exit }' "$out.cg"
  else
    awk '$NF == "total" { print $4 }' "$out"
  fi
  rm -f "$out" "$out.cg" "$out.vg"
}
kvcounts_part() {
  command -v valgrind >/dev/null && command -v strace >/dev/null && command -v redis-benchmark >/dev/null ||
    { echo "kvcounts: valgrind, strace and redis-benchmark are needed"; return; }
  local K1=${K1:-1000} K2=${K2:-5000} pipe s label cmd tool c1 c2 per=()
  local servers=(
    "ek.serve (Lua service, args), $EK_FLAVOR|$LUA bench/lua/kv_ekiden.lua @ADDR@ $EK_WORKERS $EK_FLAVOR"
    "ek.serve (Lua service, request table), $EK_FLAVOR|$LUA bench/lua/kv_ekiden.lua @ADDR@ $EK_WORKERS $EK_FLAVOR table"
    "luv + Lua parser|$LUA bench/lua/kv_luv.lua @ADDR@"
  )
  echo
  echo "instructions (callgrind, user space) and syscalls (strace -f -c) per redis-benchmark request"
  echo "(SET and GET, 50 clients), server side; difference of $K1 and $K2 requests of each"
  echo
  echo "| server | pipeline | instructions / request | syscalls / request |"
  echo "|---|---:|---:|---:|"
  for pipe in 1 16; do
    for s in "${servers[@]}"; do
      IFS='|' read -r label cmd <<<"$s"
      [[ $label =~ ${COUNT_SERVERS:-.} ]] || continue
      per=()
      for tool in callgrind strace; do
        # shellcheck disable=SC2086
        c1=$(kv_count_run "$tool" "$K1" "$pipe" $cmd)
        # shellcheck disable=SC2086
        c2=$(kv_count_run "$tool" "$K2" "$pipe" $cmd)
        per+=("$(awk -v a="${c1:-0}" -v b="${c2:-0}" -v n=$((2 * (K2 - K1))) \
          'BEGIN { if (b <= a) print "n/a"; else printf "%.1f", (b - a) / n }')")
      done
      echo "| $label | $pipe | ${per[0]} | ${per[1]} |"
    done
  done
}

# kvcpu: one server per run under perf stat, one redis-benchmark run (SET and
# GET, REQUESTS each, 50 clients) under perf stat; ROUNDS rotated rounds,
# medians. Servers are not pinned (as in resp). The server's count includes
# its start-up (a few ms: small beside 2 x REQUESTS requests).
KVCPU_EV=task-clock,user_time,system_time,context-switches
kv_cpu_run() { # OUTDIR TAG PIPE CMD... (@ADDR@, @PORT@, @EMPTY@ = "" in CMD) -> appends "req_s_set req_s_get srv_ms lg_ms"
  local d=$1 tag=$2 pipe=$3 a args=() p0
  shift 3
  while port_open "$port"; do port=$((port + 1)); done
  for a in "$@"; do
    case $a in
    @ADDR@) args+=("127.0.0.1:$port") ;;
    @PORT@) args+=("$port") ;;
    @EMPTY@) args+=("") ;;
    *) args+=("$a") ;;
    esac
  done
  perf stat -x, -e "$KVCPU_EV" -o "$d/srv.stat" "${args[@]}" >/dev/null 2>&1 &
  local pid=$! i
  for ((i = 0; i < 600; i++)); do port_open "$port" && break; sleep 0.05; done
  timeout 300 perf stat -x, -e "$KVCPU_EV" -o "$d/lg.stat" redis-benchmark -h 127.0.0.1 -p "$port" \
    -t set,get -n "$REQUESTS" -c 50 -P "$pipe" --csv 2>/dev/null | tr -d '"' >"$d/lg.csv"
  kill -TERM $(pgrep -P "$pid") 2>/dev/null
  wait "$pid" 2>/dev/null
  port=$((port + 1))
  local set get srv lg
  set=$(awk -F, '$1 == "SET" { print $2 }' "$d/lg.csv")
  get=$(awk -F, '$1 == "GET" { print $2 }' "$d/lg.csv")
  srv=$(awk -F, '$3 == "task-clock" { print $1 }' "$d/srv.stat")
  lg=$(awk -F, '$3 == "task-clock" { print $1 }' "$d/lg.stat")
  [ -n "$set" ] && [ -n "$get" ] && [ -n "$srv" ] && [ -n "$lg" ] &&
    echo "$set $get $srv $lg" >>"$d/$tag.$pipe"
}
kvcpu_part() {
  command -v redis-benchmark >/dev/null && command -v perf >/dev/null ||
    { echo "kvcpu: redis-benchmark and perf are needed"; return; }
  perf stat -x, -e "$KVCPU_EV" -o /dev/null true 2>/dev/null ||
    { echo "kvcpu: perf stat cannot count $KVCPU_EV here"; return; }
  local servers=(
    "kv_ekiden|ek.serve (Lua service), $EK_FLAVOR|$LUA bench/lua/kv_ekiden.lua @ADDR@ $EK_WORKERS $EK_FLAVOR"
    "kv_luv|luv + Lua parser|$LUA bench/lua/kv_luv.lua @ADDR@"
    "kv_epoll|epoll echo (no work per request)|$BUILD/bench/epoll_echo @ADDR@ 1"
  )
  command -v redis-server >/dev/null &&
    servers+=("kv_redis|redis-server $(redis-server --version | sed -nE 's/.*v=([0-9.]+).*/\1/p')|redis-server --bind 127.0.0.1 --port @PORT@ --save @EMPTY@ --appendonly no")
  local tmp pipe r k i tag label cmd
  tmp=$(mktemp -d)
  echo
  echo "CPU time per request (perf stat task-clock, user + kernel, all threads; the whole run's"
  echo "CPU divided by its $((2 * REQUESTS)) requests, SET and GET) of each server and of redis-benchmark"
  echo "(-c 50, -n $REQUESTS each); CPU use in cores = task-clock / the time redis-benchmark measured"
  echo "(requests / req/s, SET and GET); medians of $ROUNDS rounds"
  echo
  echo "| server | -P | SET req/s | GET req/s | server CPU µs / request | server cores | redis-benchmark CPU µs / request | redis-benchmark cores |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  for pipe in 1 16; do
    for ((r = 0; r < ROUNDS; r++)); do
      for ((k = 0; k < ${#servers[@]}; k++)); do
        i=$(((k + r) % ${#servers[@]}))
        IFS='|' read -r tag label cmd <<<"${servers[$i]}"
        # shellcheck disable=SC2086
        kv_cpu_run "$tmp" "$tag" "$pipe" $cmd
      done
    done
    for s in "${servers[@]}"; do
      IFS='|' read -r tag label cmd <<<"$s"
      [ -s "$tmp/$tag.$pipe" ] || { echo "| $label | $pipe | n/a | | | | | |"; continue; }
      awk -v l="$label" -v p="$pipe" -v n=$((2 * REQUESTS)) '
        function med(a, m,   t, i, j) { for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
          return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
        { m++; st[m] = $1; gt[m] = $2; sc[m] = $3 * 1000 / n; lc[m] = $4 * 1000 / n
          busy = (n / 2 / $1 + n / 2 / $2) * 1000; su[m] = $3 / busy; lu[m] = $4 / busy }
        END { printf "| %s | %s | %.0f | %.0f | %.2f | %.2f | %.2f | %.2f |\n", l, p, med(st, m), med(gt, m),
          med(sc, m), med(su, m), med(lc, m), med(lu, m) }' "$tmp/$tag.$pipe"
    done
  done
  rm -rf "$tmp"
}

for part in "${parts[@]}"; do
  case $part in
  echo) echo_part ;;
  resp) resp_part ;;
  counts) counts_part ;;
  kvcounts) kvcounts_part ;;
  kvcpu) kvcpu_part ;;
  *) echo "unknown part $part (echo, resp, counts, kvcounts, kvcpu)" >&2 ;;
  esac
done
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
