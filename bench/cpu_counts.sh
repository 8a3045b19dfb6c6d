#!/usr/bin/env bash
# bench/cpu_counts.sh - per echo round trip, server side: CPU time (user and
# kernel), context switches and syscalls (each call counted by the kernel's
# tracepoints, not by strace, so the server is not slowed), for ekiden (both
# backends, 1 and 2 workers, io_uring with and without deferred receive
# arms), the hand-written epoll server, Tokio and monoio. For machines where
# perf has no hardware counters (this VM: `perf stat -e instructions` says
# "not supported"), where bench/counts.sh falls back to callgrind, which hangs
# on io_uring servers.
#
#   bench/cpu_counts.sh [CONNS...]      (default: 1 100)
#
# Each row: the medians over ROUNDS=3 rotated rounds (the range beside CPU
# time) of one server against `loadgen echo -s 64 -c CONNS -d D -w 0` (D=2 s).
# The per-round-trip figures divide the server's whole-run counts by the
# round trips loadgen counted, so start-up and connection set-up are in them
# (small at 1 and 100 connections). CPU time moves with the machine's load;
# context switches and syscalls per round trip move far less. The last two
# columns are the load generator's own CPU time per round trip (one thread:
# the rate cannot pass 1 / that, whatever the server) and the IPIs it raises
# (tracepoint ipi:ipi_send_cpu; on loopback its send runs the server socket's
# receive path, and a wake-up that must interrupt a running server thread is
# an IPI: io_uring's task work without IORING_SETUP_COOP_TASKRUN).
#
# Environment: BENCH_BUILD_DIR (default build-bench), ROUNDS, D, COUNT_SERVERS
# (an extended regex on the labels: only those run), ECHO_BIN (the ekiden
# server, default the build's echo_64k).
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build-bench}
BIN=$BUILD/bench
ROUNDS=${ROUNDS:-3}
D=${D:-2}
CONNS=("$@")
[ ${#CONNS[@]} -gt 0 ] || CONNS=(1 100)
ECHO=${ECHO_BIN:-$BIN/echo_64k}
for p in "$BIN/loadgen" "$BIN/epoll_echo" "$ECHO"; do
    [ -x "$p" ] || {
        echo "cpu_counts.sh: $p not built (bench/run.sh builds it)" >&2
        exit 1
    }
done
EV=task-clock,context-switches,user_time,system_time,raw_syscalls:sys_enter
EV=$EV,syscalls:sys_enter_recvfrom,syscalls:sys_enter_futex,syscalls:sys_enter_io_uring_enter
EV=$EV,syscalls:sys_enter_epoll_wait
# The load generator's side: its CPU time, and the IPIs it raises (on loopback
# its send runs the server socket's receive path, and with it the wake-up of
# the server: an IPI when the server's thread must be interrupted).
LEV=task-clock,ipi:ipi_send_cpu
perf stat -x, -e "$EV,$LEV" -o /dev/null true 2>/dev/null || {
    echo "cpu_counts.sh: perf stat cannot count $EV here" >&2
    exit 1
}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
    local p
    for ((;;)); do
        p=$((20000 + RANDOM % 10000))
        port_open "$p" || break
    done
    echo "$p"
}

# one_run CONNS ENV... -- SERVER ARGS: prints "requests tc_ms cs user_ns sys_ns syscalls recv futex
# uring_enter epoll_wait loadgen_tc_ms loadgen_ipis"
one_run() {
    local conns=$1
    shift
    local envs=()
    while [ "$1" != -- ]; do
        envs+=("$1")
        shift
    done
    shift
    local port out i req
    port=$(free_port)
    out=$TMP/stat.$port
    env "${envs[@]}" perf stat -x, -e "$EV" -o "$out" "$1" "127.0.0.1:$port" "${@:2}" >/dev/null 2>&1 &
    local pid=$!
    for ((i = 0; i < 600; i++)); do
        port_open "$port" && break
        sleep 0.05
    done
    req=0
    if port_open "$port"; then
        req=$(timeout $((D + 30)) perf stat -x, -e "$LEV" -o "$out.lg" "$BIN/loadgen" echo "127.0.0.1:$port" -c "$conns" -s 64 -d "$D" -w 0 2>/dev/null |
            awk '$1 == "LOAD" { for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "requests") print kv[2] } }')
    fi
    # TERM the server (perf's child); perf then writes its counts and exits.
    kill -TERM $(pgrep -P "$pid") 2>/dev/null
    wait "$pid" 2>/dev/null
    awk -F, -v r="${req:-0}" '
        $3 == "task-clock" { tc = $1 } $3 == "context-switches" { cs = $1 }
        $3 == "user_time" { ut = $1 } $3 == "system_time" { st = $1 }
        $3 == "raw_syscalls:sys_enter" { sc = $1 } $3 ~ /recvfrom/ { rf = $1 } $3 ~ /futex/ { fx = $1 }
        $3 ~ /io_uring_enter/ { ue = $1 } $3 ~ /epoll_wait/ { ew = $1 }
        END { print r + 0, tc + 0, cs + 0, ut + 0, st + 0, sc + 0, rf + 0, fx + 0, ue + 0, ew + 0 }' "$out" | tr '\n' ' '
    awk -F, '$3 == "task-clock" { tc = $1 } $3 ~ /ipi_send_cpu/ { ipi = $1 }
        END { print tc + 0, ipi + 0 }' "$out.lg" 2>/dev/null || echo 0 0
}

ALL_SERVERS=(
    "ekiden epoll, 2 workers|EKIDEN_IO_BACKEND=epoll EKIDEN_WORKER_THREADS=2|$ECHO"
    "ekiden epoll, 1 worker|EKIDEN_IO_BACKEND=epoll EKIDEN_WORKER_THREADS=1|$ECHO"
    "ekiden io_uring, 2 workers|EKIDEN_IO_BACKEND=uring EKIDEN_WORKER_THREADS=2|$ECHO"
    "ekiden io_uring, 2 workers, arms not deferred|EKIDEN_IO_BACKEND=uring EKIDEN_WORKER_THREADS=2 EKIDEN_URING_DEFER_ARMS=0|$ECHO"
    "ekiden io_uring, 1 worker|EKIDEN_IO_BACKEND=uring EKIDEN_WORKER_THREADS=1|$ECHO"
    "ekiden io_uring, 2 workers, no COOP_TASKRUN|EKIDEN_IO_BACKEND=uring EKIDEN_WORKER_THREADS=2 EKIDEN_URING_COOP=0|$ECHO"
    "ekiden io_uring, 1 worker, no COOP_TASKRUN|EKIDEN_IO_BACKEND=uring EKIDEN_WORKER_THREADS=1 EKIDEN_URING_COOP=0|$ECHO"
    "epoll server, 1 thread|X=1|$BIN/epoll_echo 1"
)
PEERS=$ROOT/bench/peers
[ -x "$PEERS/tokio/target/release/echo_server" ] &&
    ALL_SERVERS+=("tokio 64 KiB, 2 workers|ECHO_BUF_SIZE=65536|$PEERS/tokio/target/release/echo_server")
[ -x "$PEERS/monoio/target/release/echo_server" ] &&
    ALL_SERVERS+=("monoio, 1 thread|MONOIO_THREADS=1|$PEERS/monoio/target/release/echo_server")
SERVERS=()
for s in "${ALL_SERVERS[@]}"; do
    [[ ${s%%|*} =~ ${COUNT_SERVERS:-.} ]] && SERVERS+=("$s")
done

echo "server-side counts per 64 B echo round trip (perf stat: task-clock, context switches,"
echo "syscall tracepoints); medians of $ROUNDS rotated ${D} s rounds; $(nproc) cores,"
echo "$(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| server | conns | req/s | CPU µs / rt (range) | user / kernel µs | context switches / rt | syscalls / rt | recvfrom | futex | io_uring_enter | epoll_wait | loadgen CPU µs / rt | loadgen IPIs / rt |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
n=${#SERVERS[@]}
for conns in "${CONNS[@]}"; do
    for ((r = 0; r < ROUNDS; r++)); do
        for ((k = 0; k < n; k++)); do
            i=$(((k + r) % n))
            IFS='|' read -r label envs cmd <<<"${SERVERS[$i]}"
            # shellcheck disable=SC2086
            one_run "$conns" $envs -- $cmd >>"$TMP/rows.$conns.$i"
        done
    done
    for ((i = 0; i < n; i++)); do
        IFS='|' read -r label envs cmd <<<"${SERVERS[$i]}"
        awk -v l="$label" -v c="$conns" -v d="$D" '
            function med(a, m,   t, i, j) { for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
                return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
            $1 > 0 { m++; q[m] = $1 / d; cpu[m] = $2 * 1000 / $1; lo = (m == 1 || cpu[m] < lo) ? cpu[m] : lo; hi = (cpu[m] > hi) ? cpu[m] : hi
                us[m] = $4 / 1000 / $1; ks[m] = $5 / 1000 / $1; cs[m] = $3 / $1; sc[m] = $6 / $1
                rf[m] = $7 / $1; fx[m] = $8 / $1; ue[m] = $9 / $1; ew[m] = $10 / $1
                lc[m] = $11 * 1000 / $1; li[m] = $12 / $1 }
            END { if (!m) { printf "| %s | %s | n/a | | | | | | | | | | |\n", l, c; exit }
                printf "| %s | %s | %.0f | %.2f (%.2f–%.2f) | %.2f / %.2f | %.3f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.3f |\n", l, c, med(q, m),
                    med(cpu, m), lo, hi, med(us, m), med(ks, m), med(cs, m), med(sc, m), med(rf, m), med(fx, m), med(ue, m), med(ew, m),
                    med(lc, m), med(li, m) }' \
            "$TMP/rows.$conns.$i"
    done
done
