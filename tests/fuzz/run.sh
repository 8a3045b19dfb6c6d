#!/usr/bin/env bash
# run.sh [SECONDS] - build the codec fuzz targets with clang (libFuzzer + ASan +
# UBSan) and run each for SECONDS (default 20) from a copy of its checked-in seed
# corpus (tests/fuzz/corpus/<target>); prints the executions of each target.
# Environment: BUILD (default build; objects go to $BUILD-fuzz), JOBS.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-20}
out=$root/${BUILD:-build}-fuzz
cc=${FUZZ_CC:-clang}
command -v "$cc" >/dev/null || { echo "fuzz: $cc not found"; exit 1; }
mkdir -p "$out/obj"
# llhttp's sources (the HTTP codec's parser), pinned and fetched once.
llhttp=$(python3 "$root/scripts/llhttp.py" "$out/llhttp")
flags=(-std=c11 -g -O1 -D_GNU_SOURCE -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined
  -fno-sanitize-recover=undefined -fvisibility=hidden -I"$root/capi/include" -I"$root/core" -I"$llhttp")
# The library once, with the sanitizers' coverage (make's dependency tracking
# would be overkill: a source newer than its object is rebuilt).
objs=()
pids=()
while IFS= read -r src; do
  obj=$out/obj/$(echo "${src#$root/}" | tr '/' '_').o
  objs+=("$obj")
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find "$root/capi/include" "$root/core" -name '*.h' -newer "$obj" | head -1)" ]; then
    "$cc" "${flags[@]}" -c "$src" -o "$obj" &
    pids+=($!)
    if [ ${#pids[@]} -ge "${JOBS:-2}" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
  fi
done < <(find "$root/core" "$root/capi" -name '*.c' | sort; printf '%s\n' "$llhttp/llhttp.c" "$llhttp/api.c" "$llhttp/http.c")
for p in "${pids[@]}"; do wait "$p"; done
rm -f "$out/libekiden-fuzz.a"
ar rcs "$out/libekiden-fuzz.a" "${objs[@]}"
status=0
for t in resp lines length; do
  "$cc" "${flags[@]}" -fsanitize=fuzzer "$root/tests/fuzz/fuzz_$t.c" "$out/libekiden-fuzz.a" -lpthread -lm \
    -o "$out/fuzz_$t"
  corpus=$out/corpus_$t
  rm -rf "$corpus"
  mkdir -p "$corpus"
  cp "$root/tests/fuzz/corpus/$t/"* "$corpus/"
  log=$out/fuzz_$t.log
  if ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 "$out/fuzz_$t" -max_total_time="$secs" \
    -print_final_stats=1 -max_len=4096 -timeout=10 -rss_limit_mb=1024 -artifact_prefix="$out/" \
    "$corpus" >"$log" 2>&1; then
    execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log")
    echo "fuzz_$t: ${execs:-?} executions in ${secs} s, no crash"
  else
    echo "fuzz_$t: FAILED (log: $log)"
    grep -E 'ERROR|check failed|SUMMARY' "$log" | head -5
    status=1
  fi
done
exit $status
