#!/usr/bin/env bash
# bench/wake_counts.sh - who sleeps and who wakes: futex calls and context
# switches of one workload of two builds of a bench program, split by thread
# (the runtime's workers, named "ekiden-N", and the program's own thread, which
# spawns and waits in ek_block_on) and by kind, over several alternated runs.
#
#   bench/wake_counts.sh OLD_BIN NEW_BIN WORKLOAD [RUNS]
#
# e.g. bench/wake_counts.sh /tmp/wt001/build-bench/bench/ekiden_rt \
#          build-bench/bench/ekiden_rt rt_multi.spawn_many_remote_busy2 10
#
# Each run is `perf record` of the tracepoints syscalls:sys_enter_futex and
# sched:sched_switch (no call graph, so nothing is lost), under the lock file
# $BENCH_LOCK as bench/ab.sh's runs. Counted per run: futex FUTEX_WAKE and
# FUTEX_WAIT(_BITSET) calls of the workers (wk_futex_wake, wk_futex_wait) and of
# the program's thread (main_*), and the switches away from each, by the state
# the thread left in (S: it slept, R: preempted or sched_yield, D: blocked in
# the kernel). A worker's futex wait is a park on its futex, its
# wake mostly the unpark of another worker or of the program's thread (a join
# that completed). Prints per counter the median of the runs per side, the
# range, and new/old. A single run's totals vary by up to 3x on a loaded
# 2-core machine (the program's thread sleeps once per join it finds pending,
# and how often it does depends on where the kernel runs it): compare medians
# of several runs.
#
# Needs perf with tracepoint access (perf_event_paranoid <= 1 or root).
# Environment: BENCH_LOCK (default /work/bench.lock when /work exists; empty:
# no lock), BENCH_ITERS (passed on: give both sides the same).
set -u -o pipefail

if [ $# -lt 3 ]; then
    sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
OLD=$1
NEW=$2
WORKLOAD=$3
RUNS=${4:-10}
if [ -z "${BENCH_LOCK+x}" ]; then
    BENCH_LOCK=
    [ -d /work ] && BENCH_LOCK=/work/bench.lock
fi
for b in "$OLD" "$NEW"; do
    [ -x "$b" ] || { echo "wake_counts.sh: $b is not an executable" >&2; exit 2; }
done
case $RUNS in '' | *[!0-9]* | 0) echo "wake_counts.sh: RUNS must be a positive integer" >&2; exit 2 ;; esac
command -v perf >/dev/null || { echo "wake_counts.sh: perf is not installed" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One run of $1: "key=count ..." on one line, or nothing when the run failed.
count_one() {
    local rec=(perf record -q -o "$tmp/p.data" -e syscalls:sys_enter_futex -e sched:sched_switch
        "$1" "$WORKLOAD")
    if [ -n "$BENCH_LOCK" ]; then
        flock "$BENCH_LOCK" "${rec[@]}" >/dev/null 2>&1 || return 0
    else
        "${rec[@]}" >/dev/null 2>&1 || return 0
    fi
    perf script -i "$tmp/p.data" -F comm,event,trace 2>/dev/null | awk '
        function who(c) { return c ~ /^ekiden-[0-9]/ ? "wk" : "main" }
        function hex(h,    i, d, x) {
            x = 0; h = tolower(h); sub(/^0x/, "", h)
            for (i = 1; i <= length(h); i++) {
                d = index("0123456789abcdef", substr(h, i, 1))
                if (d == 0) return -1
                x = x * 16 + d - 1
            }
            return x
        }
        /sys_enter_futex/ {
            op = ""
            for (i = 1; i <= NF; i++) if ($i == "op:") op = $(i + 1)
            sub(/,$/, "", op)
            o = hex(op) % 128 # without FUTEX_PRIVATE_FLAG
            k = o == 1 ? "wake" : (o == 0 || o == 9) ? "wait" : "other"
            n[who($1) "_futex_" k]++
            n["futex"]++
        }
        /sched_switch/ {
            c = ""; st = ""
            for (i = 1; i <= NF; i++) {
                if ($i ~ /^prev_comm=/) c = substr($i, 11)
                if ($i ~ /^prev_state=/) st = substr($i, 12, 1)
            }
            if (c ~ /^ekiden/) { n[who(c) "_cs_" st]++; n["cs"]++ }
        }
        END { for (x in n) printf "%s=%d ", x, n[x]; print "" }'
}

for ((r = 1; r <= RUNS; r++)); do
    if ((r % 2)); then
        echo "old $(count_one "$OLD")"
        echo "new $(count_one "$NEW")"
    else
        echo "new $(count_one "$NEW")"
        echo "old $(count_one "$OLD")"
    fi
done >"$tmp/runs.txt"

echo "$WORKLOAD, $RUNS alternated runs per side (median [min-max])"
awk '
    { side = $1; runs[side]++
      for (i = 2; i <= NF; i++) { split($i, kv, "="); key[kv[1]] = 1; v[side, kv[1], runs[side]] = kv[2] } }
    function median(side, k,    m, i, j, t, a) {
        m = runs[side]
        for (i = 1; i <= m; i++) a[i] = (side SUBSEP k SUBSEP i) in v ? v[side, k, i] + 0 : 0
        for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
        lo[side] = a[1]; hi[side] = a[m]
        return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
    }
    END {
        for (k in key) {
            o = median("old", k); olo = lo["old"]; ohi = hi["old"]
            nn = median("new", k)
            printf "  %-15s old %8.0f [%d-%d]  new %8.0f [%d-%d]  new/old %s\n", k, o, olo, ohi,
                nn, lo["new"], hi["new"], (o > 0 ? sprintf("%.2f", nn / o) : "n/a")
        }
    }' "$tmp/runs.txt" | sort
