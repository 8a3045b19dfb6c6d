#!/usr/bin/env bash
# bench/ab.sh - A/B one workload of two builds of a bench program, alternating them.
#
#   bench/ab.sh OLD_BIN NEW_BIN WORKLOAD [ROUNDS]
#
# e.g. bench/ab.sh /tmp/wt001/build-bench/bench/ekiden_rt build-bench/bench/ekiden_rt \
#          rt_multi.yield_many 20
#
# Each round runs both binaries once on WORKLOAD (`BIN WORKLOAD` must print
# `BENCH WORKLOAD <ns> <iters>`, as bench/ekiden_rt, ekiden_sync and ekiden_svc
# do: the ns is that run's own median), the old one first in odd rounds and the
# new one first in even rounds, so that drift of the machine hits both alike.
# Each run holds the lock file $BENCH_LOCK (default /work/bench.lock when that
# directory exists; empty: no lock) so that other timed runs do not overlap it.
# Prints every round, then per side the first quartile and the median of the
# rounds' values in µs, and new/old for both: compare both, since some rows are
# bimodal (rt_multi.yield_many: 5-7 ms or 11-15 ms on a 2-core machine).
#
# Environment: BENCH_ITERS (iterations per run, passed on), BENCH_LOCK,
# BENCH_PREFIX (a command each run goes under, e.g. "chrt -f 10" on a machine
# other jobs load), ROUNDS also as the 4th argument (default 10).
set -u -o pipefail

if [ $# -lt 3 ]; then
    sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
OLD=$1
NEW=$2
WORKLOAD=$3
ROUNDS=${4:-${ROUNDS:-10}}
BENCH_PREFIX=${BENCH_PREFIX:-}
if [ -z "${BENCH_LOCK+x}" ]; then
    BENCH_LOCK=
    [ -d /work ] && BENCH_LOCK=/work/bench.lock
fi
for b in "$OLD" "$NEW"; do
    [ -x "$b" ] || { echo "ab.sh: $b is not an executable" >&2; exit 2; }
done
case $ROUNDS in '' | *[!0-9]* | 0) echo "ab.sh: ROUNDS must be a positive integer" >&2; exit 2 ;; esac

# One run of $1: the workload's ns, or nothing when the run failed.
run_one() {
    local out
    # shellcheck disable=SC2086 # BENCH_PREFIX is a command and its words
    if [ -n "$BENCH_LOCK" ]; then
        out=$(flock "$BENCH_LOCK" $BENCH_PREFIX "$1" "$WORKLOAD" 2>/dev/null)
    else
        out=$($BENCH_PREFIX "$1" "$WORKLOAD" 2>/dev/null)
    fi
    awk -v w="$WORKLOAD" '$1 == "BENCH" && $2 == w { print $3; exit }' <<<"$out"
}

old_vals=()
new_vals=()
for ((r = 1; r <= ROUNDS; r++)); do
    if ((r % 2)); then
        o=$(run_one "$OLD")
        n=$(run_one "$NEW")
    else
        n=$(run_one "$NEW")
        o=$(run_one "$OLD")
    fi
    if [ -z "$o" ] || [ -z "$n" ]; then
        echo "ab.sh: round $r: a run printed no BENCH $WORKLOAD line (old '$o', new '$n')" >&2
        exit 1
    fi
    old_vals+=("$o")
    new_vals+=("$n")
    awk -v r="$r" -v o="$o" -v n="$n" 'BEGIN { printf "round %2d  old %10.3f us  new %10.3f us\n", r, o / 1e3, n / 1e3 }'
done

# q1 and median (linear interpolation between order statistics), in ns; the
# ratios come from these unrounded values (rows of a few hundred ns exist).
stats() {
    printf '%s\n' "$@" | sort -n | awk '
        { v[NR] = $1 }
        function q(p,   h, lo) { h = (NR - 1) * p + 1; lo = int(h);
                                 return lo >= NR ? v[NR] : v[lo] + (h - lo) * (v[lo + 1] - v[lo]) }
        END { printf "%.1f %.1f\n", q(0.25), q(0.5) }'
}
read -r oq1 omed <<<"$(stats "${old_vals[@]}")"
read -r nq1 nmed <<<"$(stats "${new_vals[@]}")"
echo "$WORKLOAD, $ROUNDS alternated rounds (us):"
awk -v a="$oq1" -v b="$omed" -v f="$OLD" 'BEGIN { printf "  old  q1 %10.3f  median %10.3f   %s\n", a / 1e3, b / 1e3, f }'
awk -v a="$nq1" -v b="$nmed" -v f="$NEW" 'BEGIN { printf "  new  q1 %10.3f  median %10.3f   %s\n", a / 1e3, b / 1e3, f }'
awk -v a="$oq1" -v b="$omed" -v c="$nq1" -v d="$nmed" \
    'BEGIN { printf "  new/old  q1 %.3f  median %.3f\n", c / a, d / b }'
