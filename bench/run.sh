#!/usr/bin/env bash
# bench/run.sh - build every benchmark program and run ekiden side by side with its
# peers (Tokio, libuv, a hand-written epoll server) in one run, alternating the
# sides to reduce drift; print a markdown table of medians and ratios.
#
#   bench/run.sh [FILTER...]
#
#   bench/run.sh python [echo|kv|micro...]   (the Python rows: bench/python/run.sh)
#   bench/run.sh lua [echo|resp|counts...]   (the Lua rows: bench/lua/run.sh)
#
# FILTER: rt | sync | time | mem | echo | pingpong | pump | net (= echo, pingpong,
# pump) | all (default), an exact workload name (rt_multi.ping_pong, echo.64B.x100),
# or, without a dot, any part of names (ping_pong, 4096). Several filters add up.
#
# Environment:
#   BENCH_ROUNDS=3       alternating rounds per compute workload (median of the
#                        per-round medians; each round is itself a median)
#   BENCH_NET_ROUNDS=3   rounds per network row (rotated; median and range shown)
#   BENCH_DURATION=3     seconds measured per network row (after BENCH_WARMUP=0.5)
#   BENCH_PIN=1          single-connection rows (echo x1, pingpong): server and load
#                        generator pinned to different cores with taskset (0: not)
#   BENCH_ITERS          iterations per compute workload (programs' defaults: 50/30/100)
#   BENCH_TIMERS=1000000 timers for time.million_timers, BENCH_TIMER_RUNS=3
#   BENCH_MAX_SECONDS=10 time budget of one workload in one program (min. 5 iterations)
#   BENCH_TIMEOUT=180    seconds before one program run is killed (a hang is n/a)
#   BENCH_BUILD_DIR      build directory (default build-bench at the repo root)
#   BENCH_OUT            where the table is also written (default
#                        $BENCH_BUILD_DIR/bench-results.md); the raw log goes beside it
#   ECHO_BUF_SIZE        read buffer of the Tokio echo server (default 1024, README)
#   EPOLL_ECHO_THREADS   threads of the hand-written epoll server (default nproc/2)
#   MONOIO_THREADS       threads of the monoio server (default: as the epoll server)
#   CARGO                cargo binary (default: cargo on PATH, else ~/.cargo/bin/cargo)
#
# Needs: cmake, ninja (or make), a C compiler, pkg-config + libuv1-dev, cargo
# (crates come from the crate registry on the first build).
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# `bench/run.sh python [echo|kv|micro...]`: the Python binding against asyncio and
# uvloop, in a run of its own (bench/python/run.sh; it shares BENCH_* settings).
if [ "${1:-}" = python ]; then
    shift
    exec "$ROOT/bench/python/run.sh" "$@"
fi
# `bench/run.sh lua [echo|resp|counts...]`: the Lua binding against luv and the
# epoll server (bench/lua/run.sh).
if [ "${1:-}" = lua ]; then
    shift
    exec "$ROOT/bench/lua/run.sh" "$@"
fi
BUILD=${BENCH_BUILD_DIR:-$ROOT/build-bench}
OUT=${BENCH_OUT:-$BUILD/bench-results.md}
LOG=${OUT%.md}.log
ROUNDS=${BENCH_ROUNDS:-3}
NET_ROUNDS=${BENCH_NET_ROUNDS:-3}
PIN=${BENCH_PIN:-1}
NCPU=$(nproc)
DURATION=${BENCH_DURATION:-3}
WARMUP=${BENCH_WARMUP:-0.5}
JOBS=${BENCH_JOBS:-2}
TOKIO_DIR=$ROOT/bench/peers/tokio
TOKIO_BIN=$TOKIO_DIR/target/release
MONOIO_DIR=$ROOT/bench/peers/monoio
MONOIO_BIN=$MONOIO_DIR/target/release
CARGO=${CARGO:-$(command -v cargo || echo "$HOME/.cargo/bin/cargo")}
FILTERS=("$@")

mkdir -p "$BUILD"
: >"$LOG"
RESULTS=$(mktemp)
SERVER_PIDS=()
cleanup() {
    for p in "${SERVER_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -f "$RESULTS"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "$*" | tee -a "$LOG" >&2; }

# want SECTION NAME: is this workload selected by the filters? A filter that is a
# section name selects that section; one with a dot selects the workload of that
# exact name (and NAME.*); any other is a part of a workload name (the programs
# themselves use the same rule, bench/bench_util.h).
want() {
    local section=$1 name=$2 f
    [ ${#FILTERS[@]} -eq 0 ] && return 0
    for f in "${FILTERS[@]}"; do
        case $f in
        all | "$section") return 0 ;;
        net) case $section in echo | pingpong | pump) return 0 ;; esac ;;
        rt | sync | time | mem | echo | pingpong | pump) ;;
        *.*) [[ $name == "$f" || $name == "$f".* ]] && return 0 ;;
        *) [[ $name == *"$f"* ]] && return 0 ;;
        esac
    done
    return 1
}

# ---------------------------------------------------------------- build
# Everything is built in BUILD; the ekiden programs may not build while the
# runtime is incomplete: their rows then say n/a and the rest still runs.
build() {
    log "== building into $BUILD"
    local gen=()
    command -v ninja >/dev/null && gen=(-G Ninja)
    if [ ! -f "$BUILD/CMakeCache.txt" ]; then
        cmake -S "$ROOT" -B "$BUILD" "${gen[@]}" -DEK_BENCH=ON -DEK_TESTS=OFF \
            -DCMAKE_BUILD_TYPE=Release >>"$LOG" 2>&1 || {
            log "cmake configure failed (see $LOG)"
            exit 1
        }
    else
        cmake "$BUILD" -DEK_BENCH=ON >>"$LOG" 2>&1
    fi
    cmake --build "$BUILD" -j "$JOBS" --target loadgen epoll_echo >>"$LOG" 2>&1 || {
        log "building loadgen/epoll_echo failed (see $LOG)"
        exit 1
    }
    local t
    for t in uv_echo_server uv_million_timers uv_million_timers_now ekiden_rt ekiden_sync echo echo_64k; do
        if cmake --build "$BUILD" -j "$JOBS" --target "$t" >>"$LOG" 2>&1; then
            log "   built $t"
        else
            log "   $t: not built (rows marked n/a; see $LOG)"
        fi
    done
    log "== cargo build --release (bench/peers/tokio)"
    if [ ! -x "$CARGO" ]; then
        log "   cargo not found (install Rust, e.g. rustup): Tokio rows marked n/a"
    elif ! (cd "$TOKIO_DIR" && "$CARGO" build --release -j "$JOBS") >>"$LOG" 2>&1; then
        log "   Tokio peer not built (rows marked n/a; see $LOG)"
    fi
    # monoio: network rows only (a kernel that refuses io_uring makes its
    # server exit at start with the error in the log: rows n/a)
    if [ -x "$CARGO" ]; then
        log "== cargo build --release (bench/peers/monoio)"
        (cd "$MONOIO_DIR" && "$CARGO" build --release -j "$JOBS") >>"$LOG" 2>&1 ||
            log "   monoio peer not built (rows marked n/a; see $LOG)"
    fi
}

BIN=$BUILD/bench
ek_bin() { # the path of an ekiden-side program, or nothing
    local p
    for p in "$BIN/$1" "$BUILD/$1" "$BUILD/examples/$1"; do
        [ -x "$p" ] && {
            echo "$p"
            return
        }
    done
}

# ---------------------------------------------------------------- compute pairs
# run_prog PROGRAM NAME: run one workload, print "name value" for each BENCH line.
run_prog() {
    local prog=$1 name=$2 out rc
    [ -n "$prog" ] && [ -x "$prog" ] || return 1
    out=$(timeout "${BENCH_TIMEOUT:-180}" "$prog" "$name" 2>>"$LOG")
    rc=$?
    echo "$out" >>"$LOG"
    [ $rc -eq 0 ] || echo "   ($(basename "$prog") $name exited with $rc)" | tee -a "$LOG" >&2
    echo "$out" | awk '$1 == "BENCH" { print $2, $3 }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# "min-max" of the values on stdin (empty for fewer than two)
range() { sort -g | awk '{ v[NR] = $1 } END { if (NR >= 2) print v[1] "-" v[NR] }'; }

# pair SECTION UNIT DIRECTION NAME "EKPROG" "PEER1NAME:PROG" ["PEER2NAME:PROG" ...]
# Runs every program ROUNDS times in rotating order; each program prints one or
# more BENCH lines (NAME and NAME.*): every one becomes a row per peer.
pair() {
    local section=$1 unit=$2 dir=$3 name=$4 ekprog=$5
    shift 5
    local peers=("$@") progs=("ekiden:$ekprog") r i k tag prog n
    want "$section" "$name" || return 0
    progs+=("${peers[@]}")
    log "-- $name"
    local tmp
    tmp=$(mktemp -d)
    n=${#progs[@]}
    for ((r = 0; r < ROUNDS; r++)); do
        for ((k = 0; k < n; k++)); do
            i=$(((k + r) % n)) # rotate who goes first
            tag=${progs[$i]%%:*}
            prog=${progs[$i]#*:}
            run_prog "$prog" "$name" | while read -r metric value; do
                echo "$value" >>"$tmp/$tag@$metric"
            done
        done
    done
    # rows: the metrics that ekiden or the first peer printed (a peer's extra
    # lines, e.g. libuv's dispatch/cleanup split, stay in the log)
    local metrics first=${peers[0]%%:*}
    metrics=$(ls "$tmp" 2>/dev/null | grep -E "^(ekiden|$first)@" | sed 's/^[^@]*@//' | sort -u)
    [ -n "$metrics" ] || metrics=$name
    local metric ekv pv p
    for metric in $metrics; do
        ekv=$(cat "$tmp/ekiden@$metric" 2>/dev/null | median)
        for p in "${peers[@]}"; do
            tag=${p%%:*}
            pv=$(cat "$tmp/$tag@$metric" 2>/dev/null | median)
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t\t\t\t\t\n' "$section" "$metric" "$unit" "$dir" \
                "$tag" "$ekv" "$pv" >>"$RESULTS"
        done
    done
    rm -rf "$tmp"
}

run_compute() {
    local EKRT EKSYNC w
    EKRT=$(ek_bin ekiden_rt)
    EKSYNC=$(ek_bin ekiden_sync)
    for w in spawn_many_local spawn_many_remote_idle spawn_many_remote_busy1 \
        spawn_many_remote_busy2 ping_pong yield_many chained_spawn; do
        pair rt "ns/iter" time "rt_multi.$w" "$EKRT" "tokio:$TOKIO_BIN/rt_bench"
    done
    pair time "ns" time time.million_timers "$EKRT" "tokio:$TOKIO_BIN/rt_bench" \
        "libuv:$BIN/uv_million_timers" "libuv_now:$BIN/uv_million_timers_now"
    pair mem "bytes/task" time mem.idle_task_bytes "$EKRT" "tokio:$TOKIO_BIN/rt_bench"
    for w in send_data_512 send_data_32k contention_bounded contention_bounded_full \
        contention_unbounded uncontended_bounded uncontended_unbounded; do
        pair sync "ns/iter" time "sync_mpsc.$w" "$EKSYNC" "tokio:$TOKIO_BIN/sync_bench"
    done
    for w in uncontended uncontended_concurrent_multi contended_concurrent_multi; do
        pair sync "ns/iter" time "sync_semaphore.$w" "$EKSYNC" "tokio:$TOKIO_BIN/sync_bench"
    done
}

# ---------------------------------------------------------------- network
# Listening ports below the kernel's ephemeral range (32768.. by default): a port
# in it may be held by some client's outgoing connection, and bind then fails.
EPH_LOW=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
PORT_SPAN=$((EPH_LOW > 12000 ? EPH_LOW - 11000 : 1000))
PORT_BASE=$((10000 + ($$ * 37 % PORT_SPAN)))
declare -A SERVER_ADDR SERVER_PID

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_server TAG PORT CMD...: start it, wait until it accepts; empty addr if not.
# A port that turns out to be taken is retried 100 ports higher (5 tries).
start_server() {
    local tag=$1 port=$2 try
    shift 2
    SERVER_ADDR[$tag]=""
    [ -x "$1" ] || {
        log "   $tag server not available (${1:-not built})"
        return
    }
    for ((try = 0; try < 5; try++, port += 100)); do
        port_open "$port" && continue
        "$1" "127.0.0.1:$port" "${@:2}" >>"$LOG" 2>&1 &
        local pid=$! i
        SERVER_PIDS+=("$pid")
        for ((i = 0; i < 100; i++)); do
            if port_open "$port"; then
                SERVER_ADDR[$tag]="127.0.0.1:$port"
                SERVER_PID[$tag]=$pid
                log "   $tag: $(basename "$1") on 127.0.0.1:$port"
                return
            fi
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill "$pid" 2>/dev/null
    done
    log "   $tag server did not start (see $LOG)"
}

# one loadgen run: prints "value p99" (value = req/s or Gbit/s), or nothing
# pin SERVERPID: on a single-connection row, the server (every thread) goes to
# core 0 and the load generator (pinned by load_once) to core 1, so that the two
# processes never share a core (unpinned, these rows fall into two clusters,
# 13-20k or 70-117k round trips/s, by where the scheduler puts them). unpin
# gives the server every core back.
pinned=0
pin() {
    [ "$PIN" = 1 ] && [ "$NCPU" -ge 2 ] && command -v taskset >/dev/null || return 0
    taskset -a -p -c 0 "$1" >/dev/null 2>&1 && pinned=1
}
unpin() {
    [ "$pinned" = 1 ] || return 0
    taskset -a -p -c "0-$((NCPU - 1))" "$1" >/dev/null 2>&1
    pinned=0
}

load_once() {
    local mode=$1 addr=$2 conns=$3 size=$4 out pre=()
    [ "$pinned" = 1 ] && pre=(taskset -c 1)
    out=$(timeout $((${DURATION%.*} + 60)) "${pre[@]}" "$BIN/loadgen" "$mode" "$addr" -c "$conns" -s "$size" \
        -d "$DURATION" -w "$WARMUP" 2>>"$LOG")
    echo "$out" >>"$LOG"
    echo "$out" | awk -v mode="$mode" '$1 == "LOAD" {
        for (i = 3; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
        if (mode == "pump") print f["gbit_per_s"], "";
        else print f["req_per_s"], f["p99_us"];
        if (f["errors"] + 0 > 0) print "errors=" f["errors"] > "/dev/stderr"
    }'
}

# net_row SECTION NAME UNIT MODE CONNS SIZE PEER...
# Every server takes NET_ROUNDS turns, rotated; each row gives the median and,
# beside it, the range (min-max) of the rounds.
net_row() {
    local section=$1 name=$2 unit=$3 mode=$4 conns=$5 size=$6
    shift 6
    local peers=("$@") all=("${EK_SERVERS[@]}" "$@") r k i tag n tmp
    want "$section" "$name" || return 0
    log "-- $name"
    tmp=$(mktemp -d)
    n=${#all[@]}
    for ((r = 0; r < NET_ROUNDS; r++)); do
        for ((k = 0; k < n; k++)); do
            i=$(((k + r) % n))
            tag=${all[$i]}
            [ -n "${SERVER_ADDR[$tag]:-}" ] || continue
            [ "$conns" = 1 ] && pin "${SERVER_PID[$tag]}"
            load_once "$mode" "${SERVER_ADDR[$tag]}" "$conns" "$size" | {
                read -r v p99 && [ -n "$v" ] && {
                    echo "$v" >>"$tmp/$tag.v"
                    [ -n "${p99:-}" ] && echo "$p99" >>"$tmp/$tag.p"
                }
            }
            unpin "${SERVER_PID[$tag]}"
        done
    done
    local p ek
    # Same read buffer on both sides: Tokio's README server (1 KiB) against
    # examples/echo; the 64 KiB servers against echo_64k. The epoll server
    # (the bare-metal limit) and monoio (io_uring) are also compared with every
    # other ekiden variant.
    for p in "${peers[@]}"; do
        ek=ekiden_64k
        [ "$p" = tokio ] && ek=ekiden
        net_result "$tmp" "$section" "$name" "$unit" "$mode" "$ek" "$p"
        if [ "$p" = epoll ] || [ "$p" = monoio ]; then
            for ek in "${EK_SERVERS[@]}"; do
                case $ek in ekiden | ekiden_64k) continue ;; esac
                net_result "$tmp" "$section" "$name" "$unit" "$mode" "$ek" "$p"
            done
        fi
    done
    rm -rf "$tmp"
}

net_result() {
    local tmp=$1 section=$2 name=$3 unit=$4 mode=$5 ek=$6 p=$7 ekv ekp pv pp ekr pr
    ekv=$(cat "$tmp/$ek.v" 2>/dev/null | median)
    ekr=$(cat "$tmp/$ek.v" 2>/dev/null | range)
    ekp=$(cat "$tmp/$ek.p" 2>/dev/null | median)
    pv=$(cat "$tmp/$p.v" 2>/dev/null | median)
    pr=$(cat "$tmp/$p.v" 2>/dev/null | range)
    pp=$(cat "$tmp/$p.p" 2>/dev/null | median)
    [ "$mode" = pump ] && ekp="" pp=""
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$section" "$name" "$unit" throughput \
        "$p" "$ekv" "$pv" "$ekp" "$pp" "$ek" "$ekr" "$pr" >>"$RESULTS"
}

EK_SERVERS=(ekiden ekiden_64k ekiden_64k_w1 ekiden_uring ekiden_uring_w1)
NET_ROWS=()
for size in 64 4096; do
    for conns in 1 100 1000; do
        NET_ROWS+=("echo echo.${size}B.x${conns} req/s echo $conns $size")
    done
done
NET_ROWS+=("pingpong pingpong round_trips/s pingpong 1 5")
NET_ROWS+=("pump pump.x1 Gbit/s pump 1 8192" "pump pump.x100 Gbit/s pump 100 8192")

run_net() {
    local row any=0
    for row in "${NET_ROWS[@]}"; do
        # shellcheck disable=SC2086
        set -- $row
        want "$1" "$2" && any=1
    done
    [ $any = 1 ] || return 0
    ulimit -n "$(ulimit -Hn)" 2>/dev/null
    log "== starting echo servers"
    # ekiden: examples/echo (1 KiB reads, for Tokio's README server) and echo_64k
    # on each reactor backend with the default worker count (one per core) and
    # with one worker.
    start_server ekiden $((PORT_BASE + 1)) "$(ek_bin echo)"
    EKIDEN_IO_BACKEND=epoll start_server ekiden_64k $((PORT_BASE + 6)) "$(ek_bin echo_64k)"
    EKIDEN_IO_BACKEND=epoll EKIDEN_WORKER_THREADS=1 start_server ekiden_64k_w1 $((PORT_BASE + 7)) "$(ek_bin echo_64k)"
    EKIDEN_IO_BACKEND=uring start_server ekiden_uring $((PORT_BASE + 8)) "$(ek_bin echo_64k)"
    EKIDEN_IO_BACKEND=uring EKIDEN_WORKER_THREADS=1 start_server ekiden_uring_w1 $((PORT_BASE + 9)) "$(ek_bin echo_64k)"
    # Tokio twice: the README server as written (1 KiB reads), and the same with
    # 64 KiB reads like the libuv and epoll servers, so that a buffer size alone
    # never decides a row.
    ECHO_BUF_SIZE=${ECHO_BUF_SIZE:-1024} start_server tokio $((PORT_BASE + 2)) "$TOKIO_BIN/echo_server"
    ECHO_BUF_SIZE=65536 start_server tokio_64k $((PORT_BASE + 5)) "$TOKIO_BIN/echo_server"
    start_server libuv $((PORT_BASE + 3)) "$BIN/uv_echo_server"
    # the hand-written server gets half the cores: the load generator needs the rest
    # (on 2 cores, 1 thread beat 2 threads in throughput and p99)
    local ethreads=${EPOLL_ECHO_THREADS:-$(($(nproc) / 2))}
    [ "$ethreads" -ge 1 ] || ethreads=1
    start_server epoll $((PORT_BASE + 4)) "$BIN/epoll_echo" "$ethreads"
    # monoio: thread-per-core io_uring, one listener per thread (SO_REUSEPORT)
    MONOIO_THREADS=${MONOIO_THREADS:-$ethreads} start_server monoio $((PORT_BASE + 10)) \
        "$MONOIO_BIN/echo_server"
    for row in "${NET_ROWS[@]}"; do
        # shellcheck disable=SC2086
        set -- $row
        net_row "$1" "$2" "${3//_/ }" "$4" "$5" "$6" tokio tokio_64k libuv epoll monoio
    done
}

# ---------------------------------------------------------------- table
table() {
    echo
    echo "| workload | unit | ekiden server | peer | ekiden | range | peer value | range | ekiden/peer | ekiden p99 µs | peer p99 µs |"
    echo "|---|---|---|---|---:|---|---:|---|---:|---:|---:|"
    awk -F'\t' '
    function rng(r,   a) {
        if (r == "") return "";
        split(r, a, "-");
        return fmt(a[1]) "–" fmt(a[2]);
    }
    function fmt(v) {
        if (v == "" ) return "";
        if (v == "n/a") return "n/a";
        if (v + 0 >= 1000) return sprintf("%.0f", v);
        if (v + 0 >= 10) return sprintf("%.1f", v);
        return sprintf("%.3g", v);
    }
    {
        ek = $6; pv = $7; ratio = "n/a";
        if (ek != "n/a" && pv != "n/a" && pv + 0 > 0) ratio = sprintf("%.2f", ek / pv);
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $2, $3, $10, $5, fmt(ek), rng($11), fmt(pv), rng($12), ratio, fmt($8), fmt($9);
    }' "$RESULTS"
    echo
    echo "Ratios: time and memory rows are ekiden/peer of the medians (below 1: ekiden is"
    echo "faster or smaller); throughput rows (req/s, round trips/s, Gbit/s) are"
    echo "ekiden/peer of the throughputs (above 1: ekiden is faster). n/a: not measured"
    echo "(program not built yet, or it failed: see the log). ekiden server: ekiden is"
    echo "examples/echo (1 KiB reads), ekiden_64k echo_64k on epoll with one worker per"
    echo "core, _w1 with one worker (EKIDEN_WORKER_THREADS=1), ekiden_uring on io_uring"
    echo "(EKIDEN_IO_BACKEND=uring). The epoll and monoio peers are compared with every"
    echo "ekiden variant. range: min-max of the rounds (network rows)."
}

build
log "== machine: $(nproc) cores, $(uname -sr); rounds $ROUNDS (net $NET_ROUNDS), ${DURATION}s per network row"
START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
run_compute
run_net
{
    echo "ekiden benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "load average at start: $LOAD_START; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    table
} | tee "$OUT"
log "== done in $(($(date +%s) - START)) s; table in $OUT, log in $LOG"
