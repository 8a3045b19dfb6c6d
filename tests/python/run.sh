#!/usr/bin/env bash
# tests/python/run.sh - the Python binding's suite, as run by tests/run_all.sh
# (stage "python"):
#   1. a virtual environment in $BUILD/py-venv with pinned cffi, pytest, mypy;
#   2. `pip wheel .` of the repository (builds libekiden.so.0 and the cffi
#      extension from the sources, nothing prebuilt), installed into the venv;
#   3. pytest tests/python, then mypy --strict on the package (as Python 3.9 and
#      as the running version) and on the tests.
# With EKIDEN_SANITIZE=address the package is built with ASan+UBSan in
# $BUILD/py-venv-asan and pytest runs with libasan preloaded (leak checking off:
# CPython's own allocations at exit are not ours).
# Usage: tests/python/run.sh [BUILD]   (default build)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=$(mkdir -p "${1:-build}" && cd "${1:-build}" && pwd)

PIP_PINS=(cffi==2.0.0 pytest==8.3.4 mypy==1.13.0 setuptools==75.6.0 wheel==0.45.1)
san=${EKIDEN_SANITIZE:-}
venv=$build/py-venv${san:+-$san}
py=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check "${PIP_PINS[@]}"
# Build a wheel from the sources (no build isolation: the pinned cffi/setuptools above
# build it, no second download) and install that: the tests then import the
# installed package, which must work without the source tree.
wheels=$build/py-wheel${san:+-$san}
rm -rf "$wheels"
"$venv/bin/python" -m pip wheel -q --disable-pip-version-check --no-build-isolation \
  --no-deps -w "$wheels" .
"$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps \
  "$wheels"/ekiden-*.whl

runner=()
if [ "$san" = address ]; then
  libasan=$(${CC:-cc} -print-file-name=libasan.so)
  export LD_PRELOAD=$libasan
  export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=0
  export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  runner=(env)
fi
cd tests/python
"${runner[@]}" "$venv/bin/python" -m pytest -q -p no:cacheprovider .
unset LD_PRELOAD
cd ../..
if [ -z "$san" ]; then
  mypy=("$venv/bin/python" -m mypy --strict --cache-dir "$build/mypy-cache")
  "${mypy[@]}" --python-version 3.9 bindings/python/ekiden
  "${mypy[@]}" bindings/python/ekiden tests/python
fi
