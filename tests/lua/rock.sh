#!/usr/bin/env bash
# rock.sh - the rockspec through LuaRocks: `luarocks make` of
# bindings/lua/ekiden-scm-1.rockspec (the project's CMake, Release, no tests) from a
# copy of the source into a temporary tree, then lua5.4 requires the installed
# module (found through `luarocks path`) and runs a task on it.
#
#   tests/lua/rock.sh SOURCE_DIR [BUILD_DIR]
# BUILD_DIR (default SOURCE_DIR/build): where a downloaded llhttp tarball is
# reused from, so that the rock's build does not download it again.
set -euo pipefail
src=$(cd "${1:?usage: rock.sh SOURCE_DIR [BUILD_DIR]}" && pwd)
build=${2:-$src/build}
command -v luarocks >/dev/null || { echo "luarocks is not installed (scripts/deps.sh installs it)"; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ekiden-rock.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src"
# The source without build trees and git metadata.
tar -C "$src" --exclude='./build*' --exclude='./.git' --exclude='./bench/peers/tokio/target' \
  -cf - . | tar -C "$tmp/src" -xf -
tgz=$(ls "$build"/_deps/llhttp-*.tar.gz 2>/dev/null | head -n 1 || true)
if [ -n "$tgz" ]; then
  mkdir -p "$tmp/src/build.luarocks/_deps"
  cp "$tgz" "$tmp/src/build.luarocks/_deps/"
fi
cd "$tmp/src"
if ! CMAKE_BUILD_PARALLEL_LEVEL=${JOBS:-2} timeout 1200 luarocks --lua-version 5.4 --tree "$tmp/tree" \
  make bindings/lua/ekiden-scm-1.rockspec >"$tmp/log" 2>&1; then
  tail -n 40 "$tmp/log"
  echo "rock: luarocks make failed"
  exit 1
fi
mod=$(find "$tmp/tree" -name ekiden.so -path '*lua/5.4*' | head -n 1)
[ -n "$mod" ] || { echo "rock: no ekiden.so installed in the tree"; find "$tmp/tree" | head -50; exit 1; }
echo "rock: installed $mod"
cd "$tmp"
eval "$(luarocks --lua-version 5.4 --tree "$tmp/tree" path)"
out=$(lua5.4 -e '
  local ek = require "ekiden"
  assert(package.searchpath("ekiden", package.cpath):find("/tree/", 1, true), "the tree module")
  io.write(ek.run(function() ek.sleep(0.001) return "rock " .. ek._VERSION end))')
echo "rock: lua5.4: $out"
[[ $out == "rock "* ]]
luarocks --lua-version 5.4 --tree "$tmp/tree" list 2>/dev/null | grep -q '^ekiden$' ||
  { echo "rock: luarocks list does not show ekiden"; exit 1; }
echo "rock: luarocks list shows ekiden"
