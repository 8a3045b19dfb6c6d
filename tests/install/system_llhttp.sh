#!/usr/bin/env bash
# system_llhttp.sh - the "system llhttp" path of the build (CMakeLists.txt: a
# system llhttp 9 where CMake finds one, as on Debian 13), which Debian 12 (no
# llhttp package) never takes otherwise:
# 1. build llhttp from the pinned source distribution (scripts/llhttp.pin; the
#    tarball the build in BUILD_DIR already fetched is reused, else
#    scripts/llhttp.py fetches it from PyPI) into a temporary prefix, installed
#    as a distribution would: a shared libllhttp.so.9 (and libllhttp.a), llhttp.h
#    and a pkg-config file;
# 2. configure ekiden with CMAKE_PREFIX_PATH=that prefix in a fresh build
#    directory and build libekiden.so, test_http and http_hello;
# 3. check that the build used that llhttp and not a fetched copy: configure
#    reports "system: ON" with the prefix's include folder, nothing was fetched
#    or extracted into the build's _deps, libekiden.so needs libllhttp.so.9 and
#    does not define llhttp_execute itself, and the programs load the prefix's
#    libllhttp.so.9;
# 4. run test_http (every HTTP codec and server test) on it.
#
# Usage: tests/install/system_llhttp.sh [BUILD_DIR]   (tests/run_all.sh stage `llhttp`)
# Environment: CC (default cc), CMAKE (default cmake), JOBS (default 2), KEEP=1
# keeps the temporary folder.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${1:-$src/build}
cc=${CC:-cc}
cmake=${CMAKE:-cmake}
work=$(mktemp -d "${TMPDIR:-/tmp}/ekiden-llhttp.XXXXXX")
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

version=$(sed -n 's/^version=//p' "$src/scripts/llhttp.pin")
# ---- 1. llhttp into $prefix, from the tarball the build fetched when it is there ----
tarball=$build/_deps/llhttp-$version.tar.gz
if [ -f "$tarball" ]; then export EKIDEN_LLHTTP_TARBALL=$tarball; fi
lib=$(python3 "$src/scripts/llhttp.py" "$work/sdist") || { bad "llhttp sources (scripts/llhttp.py)"; exit 1; }
major=$(sed -nE 's/^#define LLHTTP_VERSION_MAJOR ([0-9]+).*/\1/p' "$lib/llhttp.h")
minor=$(sed -nE 's/^#define LLHTTP_VERSION_MINOR ([0-9]+).*/\1/p' "$lib/llhttp.h")
patch=$(sed -nE 's/^#define LLHTTP_VERSION_PATCH ([0-9]+).*/\1/p' "$lib/llhttp.h")
[ -n "$major" ] || { bad "no LLHTTP_VERSION_MAJOR in $lib/llhttp.h"; exit 1; }
prefix=$work/prefix
mkdir -p "$prefix/include" "$prefix/lib/pkgconfig" "$work/llhttp-obj"
for f in llhttp api http; do
  "$cc" -O2 -fPIC -w -I"$lib" -c "$lib/$f.c" -o "$work/llhttp-obj/$f.o"
done
so=libllhttp.so.$major.$minor.$patch
"$cc" -shared -Wl,-soname,libllhttp.so."$major" -o "$prefix/lib/$so" "$work"/llhttp-obj/*.o
ln -s "$so" "$prefix/lib/libllhttp.so.$major"
ln -s "libllhttp.so.$major" "$prefix/lib/libllhttp.so"
ar rcs "$prefix/lib/libllhttp.a" "$work"/llhttp-obj/*.o
cp "$lib/llhttp.h" "$prefix/include/"
cat >"$prefix/lib/pkgconfig/libllhttp.pc" <<EOF
prefix=$prefix
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: libllhttp
Description: Node.js llhttp library
Version: $major.$minor.$patch
Libs: -L\${libdir} -lllhttp
Cflags: -I\${includedir}
EOF
ok "llhttp $major.$minor.$patch built into the prefix (libllhttp.so.$major, libllhttp.a, llhttp.h, libllhttp.pc)"

# ---- 2. ekiden against it ----
b=$work/build
gen=()
command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
if ! "$cmake" -S "$src" -B "$b" "${gen[@]}" -DCMAKE_PREFIX_PATH="$prefix" -DEK_LUA=OFF \
  >"$work/configure.log" 2>&1; then
  cat "$work/configure.log"
  bad "configure with CMAKE_PREFIX_PATH=$prefix"
  exit 1
fi
if ! "$cmake" --build "$b" -j "${JOBS:-2}" --target ekiden test_http http_hello >"$work/build.log" 2>&1; then
  tail -n 30 "$work/build.log"
  bad "build of libekiden.so, test_http and http_hello against the prefix's llhttp"
  exit 1
fi
ok "libekiden.so, test_http and http_hello built"

# ---- 3. the build used the prefix's llhttp, not a fetched copy ----
line=$(grep 'ekiden: llhttp:' "$work/configure.log" || true)
echo "configure: ${line#-- }"
if [ "$line" = "-- ekiden: llhttp: $prefix/include (system: ON)" ]; then
  ok "configure found the system llhttp in the prefix"
else
  bad "configure did not take the prefix's llhttp"
fi
if grep -q 'downloading llhttp' "$work/configure.log" || [ -n "$(find "$b" -name 'llhttp*.tar.gz' -o -name 'llhttp.c' | head -n 1)" ]; then
  bad "the build fetched or extracted llhttp's sources"
else
  ok "nothing of llhttp fetched or extracted into the build"
fi
shared=$(find "$b" -name 'libekiden.so.*' -type f | head -n 1)
if readelf -d "$shared" | grep -q "NEEDED.*\[libllhttp.so.$major\]"; then
  ok "libekiden.so needs libllhttp.so.$major"
else
  bad "libekiden.so does not need libllhttp.so.$major"
fi
if nm -D --defined-only "$shared" | grep -qw llhttp_execute || nm --defined-only "$shared" 2>/dev/null | grep -qw llhttp_execute; then
  bad "libekiden.so defines llhttp_execute itself (a bundled copy)"
else
  ok "libekiden.so does not define llhttp_execute"
fi
want=$(realpath "$prefix/lib/$so")
for prog in "$b/test_http" "$(find "$b" -name http_hello -type f | head -n 1)"; do
  got=$(ldd "$prog" | awk -v n="libllhttp.so.$major" '$1 == n { print $3 }')
  if [ -n "$got" ] && [ "$(realpath "$got")" = "$want" ]; then
    ok "$(basename "$prog") loads the prefix's libllhttp.so.$major"
  else
    bad "$(basename "$prog") does not load $want (ldd: ${got:-none})"
  fi
done

# ---- 4. the HTTP tests on it ----
if (cd "$b" && EK_SOURCE_DIR=$src EK_BINARY_DIR=$b ./test_http >"$work/test_http.log" 2>&1); then
  ok "test_http: $(grep -E '^\[  PASSED  \]' "$work/test_http.log" | sed 's/^\[  PASSED  \] //')"
else
  tail -n 30 "$work/test_http.log"
  bad "test_http"
fi

echo "system llhttp: $fails failure(s)"
[ "$fails" -eq 0 ]
