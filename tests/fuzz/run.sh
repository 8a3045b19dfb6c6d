#!/usr/bin/env bash
# run.sh [SECONDS] [MODE] - build the codec fuzz targets with clang and libFuzzer and
# run each for SECONDS (default 15); prints the executions of each target and their
# rate (per second of the target's own CPU time, which the machine's load does not
# blur, and per second of wall clock).
#
# MODE check (the default, the test command's stage): ASan + UBSan, from a fresh copy
#   of the checked-in seed corpus (tests/fuzz/corpus/<target>).
# MODE long (make fuzz): built for speed (-O2, UBSan only: ASan makes every
#   allocation several times dearer and a codec allocates per frame), on a corpus
#   that persists in $BUILD-fuzz/long/<target> from run to run; then every input of
#   that corpus is replayed once under the ASan + UBSan build, so what the fast run
#   kept is still checked for memory errors. Executions add up across runs in
#   $BUILD-fuzz/long/<target>.total (the 10^8 goal is counted there).
#
# Environment: BUILD (default build; objects go to $BUILD-fuzz), JOBS, FUZZ_CC,
# FUZZ_TARGETS (default "resp lines length http").
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-15}
mode=${2:-check}
out=$root/${BUILD:-build}-fuzz
cc=${FUZZ_CC:-clang}
targets=${FUZZ_TARGETS:-resp lines length http}
command -v "$cc" >/dev/null || { echo "fuzz: $cc not found"; exit 1; }
case $mode in check | long) ;; *) echo "fuzz: mode is check or long, not $mode"; exit 2 ;; esac

mkdir -p "$out"
# llhttp's sources (the HTTP codec's parser), pinned and fetched once.
llhttp=$(python3 "$root/scripts/llhttp.py" "$out/llhttp")
# DWARF 4: valgrind 3.19 (callgrind, to count a target's instructions) cannot read 5.
# Coverage (counters and comparison hooks) only where the input steers the code:
# tests/fuzz/coverage.allow says why.
common=(-std=c11 -g -gdwarf-4 -D_GNU_SOURCE -fno-omit-frame-pointer -fvisibility=hidden
  -I"$root/capi/include" -I"$root/core" -I"$llhttp"
  -fsanitize-coverage-allowlist="$root/tests/fuzz/coverage.allow"
  -fsanitize-coverage-ignorelist="$root/tests/fuzz/coverage.ignore")
flags_check=("${common[@]}" -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined)
flags_long=("${common[@]}" -O2 -fsanitize=fuzzer-no-link,undefined -fno-sanitize-recover=undefined)

# The longest input each target is given: enough for every limit a target sets
# (lines: 64 bytes; length: its maximum frame, at most 2 KiB; resp: nesting 128),
# short enough that an input is not mostly bytes copied around.
max_len() {
  case $1 in
    lines) echo 512 ;;
    length) echo 2304 ;;
    resp) echo 1024 ;;
    http) echo 2048 ;;
    *) echo 4096 ;;
  esac
}

# build VARIANT: the library once per variant, with the sanitizers' coverage
# (make's dependency tracking would be overkill: a source newer than its object,
# or a header newer than it, is rebuilt), then each target.
build() {
  local v=$1 dir=$out/$1 objs=() pids=() src obj
  local -n flags=flags_$1
  mkdir -p "$dir/obj"
  # Other flags than the objects were built with: build them all again.
  if [ "$(cat "$dir/flags" 2>/dev/null)" != "${flags[*]}" ]; then
    rm -f "$dir"/obj/*.o
    echo "${flags[*]}" >"$dir/flags"
  fi
  while IFS= read -r src; do
    obj=$dir/obj/$(echo "${src#$root/}" | tr '/' '_').o
    objs+=("$obj")
    if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find "$root/capi/include" "$root/core" "$root/tests/fuzz" \( -name '*.h' -o -name 'coverage.*' \) -newer "$obj" | head -1)" ]; then
      "$cc" "${flags[@]}" -c "$src" -o "$obj" &
      pids+=($!)
      if [ ${#pids[@]} -ge "${JOBS:-2}" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
    fi
  done < <(find "$root/core" "$root/capi" -name '*.c' | sort; printf '%s\n' "$llhttp/llhttp.c" "$llhttp/api.c" "$llhttp/http.c")
  for p in "${pids[@]}"; do wait "$p"; done
  rm -f "$dir/libekiden-fuzz.a"
  ar rcs "$dir/libekiden-fuzz.a" "${objs[@]}"
  for t in $targets; do
    "$cc" "${flags[@]}" -fsanitize=fuzzer "$root/tests/fuzz/fuzz_$t.c" "$dir/libekiden-fuzz.a" \
      -lpthread -lm -o "$dir/fuzz_$t"
  done
}

# A quarantine of 64 MiB still catches a use after free in a frame's lifetime and
# keeps the resident set (and its page faults) small.
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:quarantine_size_mb=64
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# run VARIANT TARGET CORPUS: fuzz for $secs; prints the figures (the CPU time is
# bash's own `time` of the fuzzer process); 1 on a crash.
run() {
  local v=$1 t=$2 corpus=$3 log=$out/$1/fuzz_$2.log rc=0 times
  local TIMEFORMAT='%U %S %R'
  times=$({ time "$out/$v/fuzz_$t" -max_total_time="$secs" -print_final_stats=1 \
    -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=1024 -artifact_prefix="$out/$v/" \
    "$corpus" >"$log" 2>&1 || rc=$?; } 2>&1)
  if [ "$rc" = 0 ]; then
    local execs
    execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log")
    LAST_EXECS=${execs:-0}
    echo "$LAST_EXECS $times" | awk -v t="$t" -v v="$v" '{ printf "fuzz_%s (%s): %d executions in %.0f s, %.0f per CPU second, %.0f per second; no crash\n", t, v, $1, $4, $1 / ($2 + $3 + 0.001), $1 / ($4 + 0.001) }'
    return 0
  fi
  echo "fuzz_$t ($v): FAILED (log: $log)"
  grep -E 'ERROR|check failed|SUMMARY|runtime error' "$log" | head -5
  return 1
}

status=0
# Two runs at once (of other targets: FUZZ_TARGETS) share the objects: one builds
# at a time.
exec 9>"$out/build.lock"
flock 9
build check
[ "$mode" = check ] || build long
exec 9>&-
if [ "$mode" = check ]; then
  for t in $targets; do
    corpus=$out/check/corpus_$t
    rm -rf "$corpus"
    mkdir -p "$corpus"
    cp "$root/tests/fuzz/corpus/$t/"* "$corpus/"
    run check "$t" "$corpus" || status=1
  done
  exit $status
fi

for t in $targets; do
  corpus=$out/long/$t
  mkdir -p "$corpus"
  cp -n "$root/tests/fuzz/corpus/$t/"* "$corpus/"
  LAST_EXECS=0
  run long "$t" "$corpus" || status=1
  total=$(($(cat "$corpus.total" 2>/dev/null || echo 0) + LAST_EXECS))
  echo "$total" >"$corpus.total"
  # Every input the fast run kept, once under ASan + UBSan.
  n=$(find "$corpus" -type f | wc -l)
  if "$out/check/fuzz_$t" -runs=0 -max_len="$(max_len "$t")" -artifact_prefix="$out/check/" \
    "$corpus" >"$out/check/replay_$t.log" 2>&1; then
    echo "fuzz_$t: $n corpus inputs replayed under ASan + UBSan, no error; $total executions in all runs so far"
  else
    echo "fuzz_$t: the ASan replay FAILED (log: $out/check/replay_$t.log)"
    grep -E 'ERROR|check failed|SUMMARY|runtime error' "$out/check/replay_$t.log" | head -5
    status=1
  fi
done
exit $status
