#!/usr/bin/env bash
# doc-examples.sh BUILD_DIR [CFLAGS...] - compile and run every C example in docs/*.md.
# An example is a ```c block whose first line is "/* doc-example: NAME */". Each is built
# against the static library of BUILD_DIR (with the same sanitizer flags, passed after
# the build directory) and must exit 0 within 60 s.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$1
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
count=0
for md in "$root"/docs/*.md; do
  awk -v dir="$tmp" '
    /^```c[[:space:]]*$/ { inblock = 1; name = ""; next }
    /^```/ && inblock { inblock = 0; if (name != "") close(file); next }
    inblock && name == "" && match($0, /doc-example: [A-Za-z0-9_]+/) {
      name = substr($0, RSTART + 13, RLENGTH - 13); file = dir "/" name ".c"
    }
    inblock && name != "" { print > file }
  ' "$md"
done
for src in "$tmp"/*.c; do
  [ -e "$src" ] || continue
  name=$(basename "$src" .c)
  cc -std=c11 -Wall -Wextra -Werror "$@" -I"$root/capi/include" "$src" "$build/libekiden.a" \
    -lpthread $(pkg-config --libs liburing 2>/dev/null) -o "$tmp/$name"
  if ! timeout 60 "$tmp/$name" >"$tmp/$name.out" 2>&1; then
    echo "doc example '$name' failed:"; cat "$tmp/$name.out"; exit 1
  fi
  count=$((count + 1))
done
[ "$count" -gt 0 ] || { echo "no doc examples found"; exit 1; }
echo "doc examples: $count built and run"
