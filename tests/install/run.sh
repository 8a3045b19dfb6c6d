#!/usr/bin/env bash
# run.sh - install a build into a temporary prefix and use the INSTALLED copy as a
# user would: compile consumer.c with `pkg-config --cflags --libs ekiden`, and as a
# CMake project with find_package(ekiden) (shared and static); run all three.
# (What the library exports is checked by exports.sh.)
#
# Usage: tests/install/run.sh BUILD_DIR      (registered with ctest as test_install)
# Environment: CMAKE (cmake binary), CC (C compiler), KEEP=1 keeps the prefix.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:?usage: run.sh BUILD_DIR}" && pwd)
cmake=${CMAKE:-cmake}
cc=${CC:-cc}

work=$(mktemp -d "${TMPDIR:-/tmp}/ekiden-install.XXXXXX")
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
fails=0
ok() { echo "ok: $*"; }
# Does program $1 load the installed libekiden.so.0 (and not some other copy)?
loads_installed() {
  local got
  got=$(ldd "$1" | awk '$1 == "libekiden.so.0" { print $3 }')
  [ -n "$got" ] && [ "$(realpath "$got")" = "$(realpath "$so")" ]
}
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

"$cmake" --install "$build" --prefix "$prefix" >"$work/install.log" ||
  { cat "$work/install.log"; bad "cmake --install"; exit 1; }

so=$(find "$prefix" -name 'libekiden.so.0' | head -n 1)
[ -n "$so" ] || { find "$prefix"; bad "libekiden.so.0 not installed"; exit 1; }
libdir=$(dirname "$so")
for f in "$prefix/include/ekiden.h" "$libdir/libekiden.so" "$libdir/libekiden.a" \
  "$libdir/pkgconfig/ekiden.pc" "$libdir/cmake/ekiden/ekidenConfig.cmake" \
  "$libdir/cmake/ekiden/ekidenConfigVersion.cmake"; do
  [ -e "$f" ] && ok "installed ${f#"$prefix"/}" || bad "not installed: ${f#"$prefix"/}"
done

# ---- a program built with pkg-config ----
export PKG_CONFIG_PATH=$libdir/pkgconfig
flags=$(pkg-config --cflags --libs ekiden) || { bad "pkg-config --cflags --libs ekiden"; flags=; }
echo "pkg-config --cflags --libs ekiden: $flags"
incdir=$(pkg-config --variable=includedir ekiden)
if [ -d "$incdir" ] && [ "$(realpath "$incdir")" = "$(realpath "$prefix/include")" ]; then
  ok "pkg-config points at the prefix"
else
  bad "pkg-config includedir '$incdir' is not $prefix/include (is the .pc file relocatable?)"
fi
if "$cc" -std=c11 -Wall -Wextra -Werror -o "$work/consumer_pc" "$here/consumer.c" $flags \
  -Wl,-rpath,"$libdir" 2>"$work/cc.log"; then
  if loads_installed "$work/consumer_pc"; then
    ok "pkg-config program loads the installed libekiden.so.0"
  else
    bad "pkg-config program does not load $libdir/libekiden.so.0"
  fi
  "$work/consumer_pc" && ok "pkg-config program runs" || bad "pkg-config program failed"
else
  cat "$work/cc.log"
  bad "pkg-config program does not compile/link"
fi

# ---- a CMake project with find_package(ekiden) ----
if "$cmake" -S "$here" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_C_COMPILER="$cc" >"$work/cmake.log" 2>&1 &&
  "$cmake" --build "$work/cmake" >>"$work/cmake.log" 2>&1; then
  ok "find_package(ekiden) project builds"
  for exe in consumer_shared consumer_static; do
    "$work/cmake/$exe" && ok "find_package program $exe runs" || bad "$exe failed"
  done
  if loads_installed "$work/cmake/consumer_shared"; then
    ok "find_package program loads the installed libekiden.so.0"
  else
    bad "find_package program does not load $libdir/libekiden.so.0"
  fi
else
  cat "$work/cmake.log"
  bad "find_package(ekiden) project does not build"
fi

if [ "$fails" -ne 0 ]; then
  echo "install test: $fails failures"
  exit 1
fi
echo "install test: all checks passed"
