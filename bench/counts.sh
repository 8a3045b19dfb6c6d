#!/usr/bin/env bash
# bench/counts.sh - instructions and syscalls per echo round trip, server side,
# for ekiden (epoll and io_uring backends, 1 and 2 workers) and the hand-written
# epoll server: figures that a loaded machine does not move the way it moves
# times (docs/benchmarks.md, "Per round trip").
#
#   bench/counts.sh [CONNS...]      (default: 1 100)
#
# Instructions: `perf stat -e instructions:u` when the machine has the counter,
# else valgrind --tool=callgrind (user space only: the kernel's share, which is
# where io_uring moves work, is not in either). Syscalls: strace -f -c.
# Each figure is a difference of two runs of the same server against
# `loadgen echo -s 64 -c CONNS -w 0`, one of D1 and one of D2 seconds:
# (count2 - count1) / (round trips2 - round trips1), so start-up, connection set-up
# and shutdown cancel out. Under valgrind and strace the server runs many times
# slower, so the load generator finds it less often idle than in a real run:
# per-round-trip counts of event-loop calls (epoll_wait, io_uring_enter) are
# lower than they would be unslowed, for every server alike.
#
# Environment: BENCH_BUILD_DIR (default build-bench), D1=1 D2=3 (seconds),
# COUNT_TOOL=perf|callgrind|none (default: perf when it works, else callgrind;
# none: syscalls only), COUNT_SERVERS (an extended regex on the server labels:
# only those run), ECHO_BIN (the ekiden server to count, default the build's
# echo_64k: to count an older build's beside this one), COUNT_SIZE (bytes per
# request, default 64). The Tokio and monoio
# peers are counted too when bench/run.sh has built them, and the Lua echo
# servers (bench/lua: the binding, luv) when the build has the Lua module
# (bench/lua/run.sh builds it; COUNT_SERVERS=Lua picks them). A run that does not
# end within D + COUNT_TIMEOUT s (default 60; valgrind on io_uring can hang)
# gives n/a.
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build-bench}
BIN=$BUILD/bench
D1=${D1:-1}
D2=${D2:-3}
CONNS=("$@")
[ ${#CONNS[@]} -gt 0 ] || CONNS=(1 100)

if [ ! -x "$BIN/loadgen" ] || [ ! -x "$BIN/epoll_echo" ] || [ ! -x "$BUILD/echo_64k" ] &&
    [ ! -x "$BUILD/examples/echo_64k" ] && [ ! -x "$BIN/echo_64k" ]; then
    cmake -S "$ROOT" -B "$BUILD" -DEK_BENCH=ON -DEK_TESTS=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null &&
        cmake --build "$BUILD" -j "${JOBS:-2}" --target loadgen epoll_echo echo_64k >/dev/null ||
        exit 1
fi
ECHO=${ECHO_BIN:-}
for p in "$BIN/echo_64k" "$BUILD/echo_64k" "$BUILD/examples/echo_64k"; do
    [ -z "$ECHO" ] && [ -x "$p" ] && ECHO=$p && break
done

TOOL=${COUNT_TOOL:-}
if [ -z "$TOOL" ]; then
    if perf stat -x, -e instructions:u true 2>&1 | grep -q '^[0-9]'; then TOOL=perf; else TOOL=callgrind; fi
fi
command -v strace >/dev/null || {
    echo "counts.sh: strace is needed" >&2
    exit 1
}

PORT=$((20000 + $$ % 5000))
TMP=$(mktemp -d)
MAIN=$BASHPID
echo 0 >"$TMP/n"
trap '[ "$BASHPID" = "$MAIN" ] && rm -rf "$TMP"' EXIT

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# one_run WRAPPER(perf|callgrind|strace) SECONDS CONNS ENV... -- SERVER ARGS...
# Prints "count round_trips" (count: instructions, or syscalls as "total name=n ...").
one_run() {
    local wrap=$1 secs=$2 conns=$3
    shift 3
    local envs=()
    while [ "$1" != -- ]; do
        envs+=("$1")
        shift
    done
    shift
    # one_run runs in a subshell: a fresh port per run from a counter file
    local n
    n=$(($(cat "$TMP/n" 2>/dev/null || echo 0) + 1))
    echo "$n" >"$TMP/n"
    PORT=$((PORT + n))
    local out=$TMP/out.$PORT pre=()
    case $wrap in
    perf) pre=(perf stat -x, -e instructions:u -o "$out") ;;
    callgrind) pre=(valgrind --tool=callgrind --callgrind-out-file="$out.cg" --log-file="$out.vg") ;;
    strace) pre=(strace -f -c -o "$out") ;;
    none)
        echo "0 0"
        return
        ;;
    esac
    pre=(timeout -k 5 $((secs + ${COUNT_TIMEOUT:-60})) "${pre[@]}")
    # The address goes where the command says @ADDR@ (the Lua servers: after
    # the script), else after the program.
    local cmd=("$1" "127.0.0.1:$PORT" "${@:2}") a
    if [[ " $* " == *" @ADDR@ "* ]]; then
        cmd=()
        for a in "$@"; do [ "$a" = @ADDR@ ] && cmd+=("127.0.0.1:$PORT") || cmd+=("$a"); done
    fi
    env "${envs[@]}" "${pre[@]}" "${cmd[@]}" >/dev/null 2>&1 &
    local pid=$! i
    for ((i = 0; i < 400; i++)); do
        port_open "$PORT" && break
        sleep 0.05
    done
    local lg
    lg=$("$BIN/loadgen" echo "127.0.0.1:$PORT" -c "$conns" -s "${COUNT_SIZE:-64}" -d "$secs" -w 0 2>/dev/null |
        awk '$1 == "LOAD" { for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "requests") print kv[2] } }')
    # TERM, not INT: a child killed by SIGINT makes bash act as if it had been.
    local kids
    kids=$(pgrep -P "$pid")
    kill -TERM "$pid" $kids 2>/dev/null
    # (the server under the tool is a grandchild: TERM its children too)
    for k in $kids; do pkill -TERM -P "$k" 2>/dev/null; done
    wait "$pid" 2>/dev/null
    local count
    case $wrap in
    perf) count=$(awk -F, '/instructions/ { print $1 }' "$out") ;;
    callgrind) count=$(awk '/^(summary|totals):/ { print $2; exit }' "$out.cg") ;;
    strace) count=$(awk '$NF == "total" { print $4 }' "$out") ;;
    esac
    if [ "$wrap" = strace ]; then
        # also the per-call counts of the calls that matter
        local calls
        calls=$(awk '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { print $NF "=" $4 }' "$out" | tr '\n' ' ')
        echo "${count:-0} ${lg:-0} $calls"
    else
        echo "${count:-0} ${lg:-0}"
    fi
}

per_rt() { # c1 r1 c2 r2
    awk -v c1="$1" -v r1="$2" -v c2="$3" -v r2="$4" 'BEGIN {
        if (r2 - r1 <= 0) print "n/a"; else printf "%.1f", (c2 - c1) / (r2 - r1) }'
}

# per-call differences for strace: "name=n ..." lines of two runs
calls_per_rt() {
    awk -v a="$1" -v b="$2" -v r="$3" 'BEGIN {
        n = split(a, x, " "); for (i = 1; i <= n; i++) { split(x[i], kv, "="); A[kv[1]] = kv[2] }
        n = split(b, y, " "); for (i = 1; i <= n; i++) { split(y[i], kv, "="); B[kv[1]] = kv[2] }
        out = "";
        for (k in B) { d = (B[k] - A[k]) / r; if (d >= 0.05) out = out sprintf("%s %.2f, ", k, d) }
        sub(/, $/, "", out); print out }'
}

ALL_SERVERS=(
    "ekiden epoll, 2 workers|EKIDEN_IO_BACKEND=epoll EKIDEN_WORKER_THREADS=2|$ECHO"
    "ekiden epoll, 1 worker|EKIDEN_IO_BACKEND=epoll EKIDEN_WORKER_THREADS=1|$ECHO"
    "ekiden io_uring, 2 workers|EKIDEN_IO_BACKEND=uring EKIDEN_WORKER_THREADS=2|$ECHO"
    "ekiden io_uring, 1 worker|EKIDEN_IO_BACKEND=uring EKIDEN_WORKER_THREADS=1|$ECHO"
    "epoll server, 1 thread|X=1|$BIN/epoll_echo 1"
)
PEERS=$ROOT/bench/peers
[ -x "$PEERS/tokio/target/release/echo_server" ] &&
    ALL_SERVERS+=("tokio 64 KiB, 2 workers|ECHO_BUF_SIZE=65536|$PEERS/tokio/target/release/echo_server")
[ -x "$PEERS/monoio/target/release/echo_server" ] &&
    ALL_SERVERS+=("monoio, 1 thread|MONOIO_THREADS=1|$PEERS/monoio/target/release/echo_server")
# The Lua echo servers of bench/lua (issue 10) when the build has the Lua 5.4
# module: the binding on a current-thread runtime and on one worker, and luv.
if [ -f "$BUILD/lua/5.4/ekiden.so" ] && command -v lua5.4 >/dev/null; then
    LUAENV="LUA_CPATH=$BUILD/lua/5.4/?.so;;"
    ALL_SERVERS+=("ekiden (Lua), current_thread|$LUAENV|lua5.4 $ROOT/bench/lua/echo_ekiden.lua @ADDR@ 1 current_thread")
    ALL_SERVERS+=("ekiden (Lua), 1 worker|$LUAENV|lua5.4 $ROOT/bench/lua/echo_ekiden.lua @ADDR@ 1")
    lua5.4 -e 'require "luv"' 2>/dev/null &&
        ALL_SERVERS+=("luv (Lua)|X=1|lua5.4 $ROOT/bench/lua/echo_luv.lua @ADDR@")
fi
SERVERS=()
for s in "${ALL_SERVERS[@]}"; do
    [[ ${s%%|*} =~ ${COUNT_SERVERS:-.} ]] && SERVERS+=("$s")
done

echo "instructions ($TOOL, user space) and syscalls (strace -f -c) per echo round trip, ${COUNT_SIZE:-64} B;"
echo "difference of a ${D1} s and a ${D2} s run; $(nproc) cores, $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "ekiden server: $ECHO"
echo
echo "| server | connections | instructions / round trip | syscalls / round trip | of which |"
echo "|---|---:|---:|---:|---|"
for conns in "${CONNS[@]}"; do
    for s in "${SERVERS[@]}"; do
        IFS='|' read -r label envs cmd <<<"$s"
        # shellcheck disable=SC2086
        read -r i1 r1 < <(one_run "$TOOL" "$D1" "$conns" $envs -- $cmd)
        # shellcheck disable=SC2086
        read -r i2 r2 < <(one_run "$TOOL" "$D2" "$conns" $envs -- $cmd)
        # shellcheck disable=SC2086
        read -r s1 q1 c1 < <(one_run strace "$D1" "$conns" $envs -- $cmd)
        # shellcheck disable=SC2086
        read -r s2 q2 c2 < <(one_run strace "$D2" "$conns" $envs -- $cmd)
        ipr=$(per_rt "$i1" "$r1" "$i2" "$r2")
        spr=$(per_rt "$s1" "$q1" "$s2" "$q2")
        detail=$(calls_per_rt "$c1" "$c2" "$(awk -v a="$q1" -v b="$q2" 'BEGIN { print (b - a > 0 ? b - a : 1) }')")
        echo "| $label | $conns | $ipr | $spr | $detail |"
    done
done
