#!/usr/bin/env bash
# rock.sh - the rockspec through LuaRocks: `luarocks make` of
# bindings/lua/ekiden-scm-1.rockspec (the project's CMake, Release, no tests) from a
# copy of the source into a temporary tree, for Lua 5.4 and for LuaJIT (with a
# LuaRocks configuration of this script's: Debian's luarocks has none for LuaJIT),
# then lua5.4 and luajit each require the installed module (found through
# `luarocks path`) and run a task on it.
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
# LuaJIT: Debian's luarocks has no configuration for it; this one makes a
# "5.1" LuaRocks whose interpreter is luajit and whose headers are LuaJIT's.
cat >"$tmp/luarocks-luajit.lua" <<'EOF'
lua_version = "5.1"
lua_interpreter = "luajit"
variables = {
  LUA = "/usr/bin/luajit",
  LUA_BINDIR = "/usr/bin",
  LUA_INCDIR = "/usr/include/luajit-2.1",
}
EOF
# rock VERSION INTERPRETER [CONFIG]: luarocks make into the tree, require the
# tree's module from INTERPRETER and run a task on it, luarocks list shows it.
# The second make reuses the first's build directory (build.luarocks): only the
# module is built again, for the other Lua.
rock() {
  local ver=$1 interp=$2 cfg=${3:-}
  local lr=(luarocks --lua-version "$ver" --tree "$tmp/tree")
  local envs=()
  [ -n "$cfg" ] && envs+=(LUAROCKS_CONFIG="$cfg")
  command -v "$interp" >/dev/null || { echo "rock: $interp is not installed"; return 1; }
  cd "$tmp/src" || return 1
  if ! env "${envs[@]}" CMAKE_BUILD_PARALLEL_LEVEL="${JOBS:-2}" timeout 1200 "${lr[@]}" \
    make bindings/lua/ekiden-scm-1.rockspec >"$tmp/log.$ver" 2>&1; then
    tail -n 40 "$tmp/log.$ver"
    echo "rock: luarocks make ($interp) failed"
    return 1
  fi
  local mod out
  mod=$(find "$tmp/tree" -name ekiden.so -path "*lua/$ver/*" | head -n 1)
  [ -n "$mod" ] || { echo "rock: no lua/$ver/ekiden.so in the tree"; find "$tmp/tree" | head -50; return 1; }
  echo "rock: $interp: installed $mod"
  cd "$tmp" || return 1
  out=$(eval "$(env "${envs[@]}" "${lr[@]}" path)" && "$interp" -e '
    local ek = require "ekiden"
    assert(package.searchpath("ekiden", package.cpath):find("/tree/", 1, true), "the tree module")
    io.write(ek.run(function() ek.sleep(0.001) return "rock " .. ek._VERSION end))')
  echo "rock: $interp: $out"
  [[ $out == "rock "* ]] || return 1
  env "${envs[@]}" "${lr[@]}" list 2>/dev/null | grep -q '^ekiden$' ||
    { echo "rock: luarocks list ($ver) does not show ekiden"; return 1; }
  echo "rock: luarocks list ($ver) shows ekiden"
}
rc=0
rock 5.4 lua5.4 || rc=1
rock 5.1 luajit "$tmp/luarocks-luajit.lua" || rc=1
exit $rc
