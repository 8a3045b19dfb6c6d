#!/usr/bin/env bash
# run_all.sh - the whole test suite: what `make test` and CI run.
#
# Stages, in order (STAGES selects some, e.g. STAGES="header plain"):
#   format  every C file is clang-formatted (scripts/check-format.sh)
#   readme  README.md shows examples/echo.c as it is (scripts/check-readme.sh)
#   header  ekiden.h compiles alone as C11 and C++17 (scripts/check-header.sh)
#   layers  no #include or call cycle between the folders of core/ (scripts/check-layers.py)
#   model   the reactor's readiness protocol, checked exhaustively by spin
#           (tests/model/run.sh: the protocol holds, each mutation is caught)
#   plain   build in $BUILD, run ctest (unit tests, ABI test, exports, install test)
#   llhttp  the system-llhttp path: llhttp built from the pinned tarball into a
#           temporary prefix, ekiden configured and built against it, test_http
#           run (tests/install/system_llhttp.sh)
#   uring   the plain build's ctest again with EKIDEN_IO_BACKEND=uring (the io_uring
#           reactor; on a kernel or build without it the runtime falls back to epoll)
#   asan    build in $BUILD-asan with ASan+UBSan, run ctest; a leak is a failure
#   tsan    build in $BUILD-tsan with TSan, run ctest
#   asan-uring, tsan-uring  the sanitizer builds' ctest again on io_uring
#   echo    tests/net/echo_peers.sh against the plain build's echo (when it exists)
#   lua     the Lua binding on lua5.4 and LuaJIT, its echo server driven by socat,
#           its install (tests/lua/run.sh; each check counts)
#   fuzz    the codec fuzz targets (tests/fuzz/run.sh: clang, libFuzzer + ASan +
#           UBSan), each run for FUZZ_SECONDS (default 15) from its seed corpus
#   python  the Python binding: venv in $BUILD/py-venv, pip install ., pytest, mypy
#           --strict (tests/python/run.sh); the pytest tests are counted
#
# Every stage runs even after a failure, so one run shows everything. Counts each
# test program and check; the last line is "N passed, N failed" (also written to
# $BUILD/test-summary.txt for .ci/run). Exits non-zero on any failure.
# Environment: BUILD (default build), JOBS (default 2), STAGES.
set -uo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
JOBS=${JOBS:-2}
STAGES=${STAGES:-format readme header layers model plain llhttp uring asan asan-uring tsan tsan-uring echo lua fuzz python}
export JOBS

passed=0
failed=0
failures=()
t_all=$(date +%s)
mkdir -p "$BUILD"
summary_file=$BUILD/test-summary.txt
rm -f "$summary_file"

pass() { passed=$((passed + $1)); }
fail() { failed=$((failed + 1)); failures+=("$1"); }
banner() { printf '\n==== %s ====\n' "$*"; }

# A check is one command: it passes or fails as a whole.
check() {
  local name=$1
  shift
  if "$@"; then pass 1; else fail "$name"; fi
}

# Build one variant and run its ctest suite; each test program counts.
variant() {
  local name=$1 dir=$2 sanitize=$3
  banner "$name: build ($dir)"
  if ! scripts/build.sh "$dir" "$sanitize"; then
    fail "$name: build"
    return
  fi
  run_ctest "$name" "$dir" "$sanitize"
}

# Run a built variant's ctest suite (the caller's environment goes with it).
run_ctest() {
  local name=$1 dir=$2 sanitize=$3 t0 log line total nfail
  t0=$(date +%s)
  if [ ! -f "$dir/CTestTestfile.cmake" ]; then
    fail "$name: $dir is not built"
    return
  fi
  banner "$name: ctest"
  log=$dir/ctest-$name.log
  local runner=()
  # TSan needs the address space layout it expects; some kernels randomize more
  # than it tolerates ("unexpected memory mapping"). Running without ASLR avoids it.
  if [ "$sanitize" = thread ] && setarch "$(uname -m)" -R true 2>/dev/null; then
    runner=(setarch "$(uname -m)" -R)
  fi
  "${runner[@]}" ctest --test-dir "$dir" --output-on-failure --no-tests=error -j "$JOBS" 2>&1 |
    tee "$log"
  line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)
  if [ -z "$line" ]; then
    fail "$name: ctest did not finish"
  else
    total=${line##* out of }
    nfail=$(echo "$line" | sed -E 's/.*passed, ([0-9]+) tests? failed.*/\1/')
    pass $((total - nfail))
    local names=() t
    mapfile -t names < <(sed -n '/The following tests FAILED:/,$p' "$log" |
      sed -nE 's/^[[:space:]]+[0-9]+ - (.*)$/\1/p')
    for t in "${names[@]}"; do fail "$name: $t"; done
    for ((t = ${#names[@]}; t < nfail; t++)); do fail "$name: a ctest test"; done
  fi
  echo "$name: $(($(date +%s) - t0)) s; slowest tests:"
  sed -nE 's/^ *[0-9]+\/[0-9]+ Test +#[0-9]+: ([^ ]+) \.+.* ([0-9.]+) sec$/\2 \1/p' "$log" |
    sort -rn | head -n 3 | awk '{ printf "  %8.1f s  %s\n", $1, $2 }'
}

for stage in $STAGES; do
  case $stage in
  format)
    banner "clang-format"
    check "clang-format" scripts/check-format.sh
    ;;
  readme)
    banner "README's echo server is examples/echo.c"
    check "README echo example" scripts/check-readme.sh
    ;;
  header)
    banner "public header alone (C11, C++17)"
    check "header alone" scripts/check-header.sh
    ;;
  layers)
    banner "no #include cycle between the folders of core/"
    check "include layers" scripts/check-layers.py
    check "include layers self-test" scripts/check-layers.py --self-test
    ;;
  model)
    banner "readiness protocol model (spin)"
    check "readiness model" tests/model/run.sh
    ;;
  plain)
    variant plain "$BUILD" ""
    ;;
  llhttp)
    banner "system llhttp (tests/install/system_llhttp.sh)"
    check "system llhttp" tests/install/system_llhttp.sh "$BUILD"
    ;;
  uring)
    EKIDEN_IO_BACKEND=uring run_ctest uring "$BUILD" ""
    ;;
  asan)
    # halt_on_error: the first finding fails the test; detect_leaks: a leak is one.
    ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0 \
      UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      variant asan "$BUILD-asan" address
    ;;
  asan-uring)
    EKIDEN_IO_BACKEND=uring ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0 \
      UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      run_ctest asan-uring "$BUILD-asan" address
    ;;
  tsan)
    TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
      variant tsan "$BUILD-tsan" thread
    ;;
  tsan-uring)
    EKIDEN_IO_BACKEND=uring TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
      run_ctest tsan-uring "$BUILD-tsan" thread
    ;;
  echo)
    if [ -f tests/net/echo_peers.sh ]; then
      banner "echo server against socat/nc (tests/net/echo_peers.sh)"
      if [ -x "$BUILD/echo" ]; then
        check "echo peers" bash tests/net/echo_peers.sh "$BUILD/echo"
      else
        fail "echo peers: $BUILD/echo was not built"
      fi
    fi
    ;;
  lua)
    banner "Lua binding on lua5.4 and LuaJIT (tests/lua/run.sh)"
    if scripts/build.sh "$BUILD" >/dev/null; then
      lua_log=$BUILD/lua-stage.log
      bash tests/lua/run.sh "$BUILD" 2>&1 | tee "$lua_log"
      pass "$(grep -c '^lua check .*: ok$' "$lua_log")"
      while read -r name; do fail "lua: $name"; done < <(sed -nE 's/^lua check (.*): FAILED$/\1/p' "$lua_log")
      grep -q '^lua: [0-9]* passed' "$lua_log" || fail "lua: tests/lua/run.sh did not finish"
    else
      fail "lua: build"
    fi
    ;;
  fuzz)
    banner "codec fuzzing (tests/fuzz/run.sh, ${FUZZ_SECONDS:-15} s per target)"
    check "codec fuzzing" tests/fuzz/run.sh "${FUZZ_SECONDS:-15}"
    ;;
  python)
    banner "Python binding (tests/python/run.sh)"
    t0=$(date +%s)
    log=$BUILD/python-tests.log
    if bash tests/python/run.sh "$BUILD" 2>&1 | tee "$log"; then py_rc=0; else py_rc=1; fi
    # pytest's closing line: "N passed[, N failed][, ...] in S s"
    line=$(grep -E '^[0-9]+ (passed|failed)|^=* ?[0-9]+ (passed|failed)' "$log" | tail -n 1)
    npass=$(echo "$line" | sed -nE 's/.*\b([0-9]+) passed.*/\1/p')
    nfail=$(echo "$line" | sed -nE 's/.*\b([0-9]+) failed.*/\1/p')
    pass "${npass:-0}"
    for ((i = 0; i < ${nfail:-0}; i++)); do fail "python: a pytest test"; done
    if [ "$py_rc" -ne 0 ] && [ "${nfail:-0}" -eq 0 ]; then fail "python: build, pytest or mypy"; fi
    echo "python: $(($(date +%s) - t0)) s"
    ;;
  *)
    fail "unknown stage '$stage'"
    ;;
  esac
done

banner "summary ($(($(date +%s) - t_all)) s)"
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "$passed passed, $failed failed" | tee "$summary_file"
[ "$failed" -eq 0 ]
