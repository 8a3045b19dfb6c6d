#!/usr/bin/env bash
# run.sh - the "lua" stage of tests/run_all.sh: the Lua binding as users get it.
#
# Usage: tests/lua/run.sh BUILD_DIR [CHECK...]
# Checks (all by default), each printed as "lua check NAME: ok|FAILED":
#   lua54    tests/lua/run.lua on lua5.4 with BUILD_DIR/lua/5.4/ekiden.so
#   luajit   tests/lua/run.lua on luajit with BUILD_DIR/lua/5.1/ekiden.so
#   echo54, echojit   examples/echo.lua driven by socat (tests/lua/echo_socat.sh)
#   http54, httpjit   examples/http.lua driven by curl (tests/lua/http_curl.sh)
#   rock     luarocks make of the rockspec into a temporary tree, required by lua5.4
#            (tests/lua/rock.sh)
#   install  cmake --install into a temporary prefix; both interpreters require
#            the installed module, which loads the installed libekiden.so
#   readme   README.md shows examples/echo.lua as it is
# The last line is "lua: N passed, N failed"; exit status 1 if any failed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:?usage: run.sh BUILD_DIR [CHECK...]}" && pwd)
shift
checks=("$@")
[ ${#checks[@]} -gt 0 ] || checks=(lua54 luajit echo54 echojit http54 httpjit install rock readme)

passed=0
failed=0
result() {
  if [ "$2" -eq 0 ]; then
    passed=$((passed + 1))
    echo "lua check $1: ok"
  else
    failed=$((failed + 1))
    echo "lua check $1: FAILED"
  fi
}

suite() { # NAME INTERPRETER CPATH
  if ! command -v "$2" >/dev/null; then
    echo "$2 is not installed (scripts/deps.sh installs it)"
    result "$1" 1
    return
  fi
  if [ ! -f "$3/ekiden.so" ]; then
    echo "$3/ekiden.so was not built"
    result "$1" 1
    return
  fi
  EK_BINARY_DIR=$build LUA_CPATH="$3/?.so" timeout 900 "$2" "$here/run.lua"
  result "$1" $?
}

install_check() {
  local work prefix rc=0 m
  work=$(mktemp -d "${TMPDIR:-/tmp}/ekiden-lua-install.XXXXXX")
  prefix=$work/prefix
  cmake --install "$build" --prefix "$prefix" >"$work/log" || { cat "$work/log"; rc=1; }
  for pair in "lua5.4:5.4" "luajit:5.1"; do
    local interp=${pair%%:*} ver=${pair##*:}
    m=$(find "$prefix" -path "*/lua/$ver/ekiden.so" | head -n 1)
    if [ -z "$m" ]; then
      echo "install: no lua/$ver/ekiden.so under the prefix"
      rc=1
      continue
    fi
    # (grep without -q: an early exit of grep would fail ldd with SIGPIPE under pipefail)
    if ! ldd "$m" | grep "$prefix/.*libekiden.so.0" >/dev/null; then
      echo "install: $m does not load the installed libekiden.so:"
      ldd "$m"
      rc=1
    fi
    # A clean environment: only the installed module is on the path.
    if ! out=$(cd "$work" && LUA_CPATH="$(dirname "$m")/?.so" "$interp" -e '
        local ek = require "ekiden"
        io.write(ek.run(function() ek.sleep(0.001) return "installed " .. ek._VERSION end))'); then
      echo "install: $interp cannot run the installed module"
      rc=1
    else
      echo "install: $interp: $out"
    fi
  done
  [ -f "$prefix/include/ekiden_lua.h" ] || { echo "install: ekiden_lua.h missing"; rc=1; }
  rm -rf "$work"
  return $rc
}

for c in "${checks[@]}"; do
  echo "---- lua check $c"
  case $c in
  lua54) suite lua54 lua5.4 "$build/lua/5.4" ;;
  luajit) suite luajit luajit "$build/lua/5.1" ;;
  echo54 | echojit)
    if [ -f "$src/examples/echo.lua" ]; then
      interp=lua5.4 dir=$build/lua/5.4
      [ "$c" = echojit ] && interp=luajit dir=$build/lua/5.1
      LUA_CPATH="$dir/?.so" bash "$here/echo_socat.sh" "$interp" "$src/examples/echo.lua"
      result "$c" $?
    fi
    ;;
  http54 | httpjit)
    interp=lua5.4 dir=$build/lua/5.4
    [ "$c" = httpjit ] && interp=luajit dir=$build/lua/5.1
    LUA_CPATH="$dir/?.so" bash "$here/http_curl.sh" "$interp" "$src/examples/http.lua"
    result "$c" $?
    ;;
  rock)
    bash "$here/rock.sh" "$src"
    result rock $?
    ;;
  install)
    install_check
    result install $?
    ;;
  readme)
    awk '/^<!-- echo.lua begin -->$/ { on = 1; next } /^<!-- echo.lua end -->$/ { on = 0 }
         on' "$src/README.md" | sed '1d;$d' | diff -u "$src/examples/echo.lua" -
    result readme $?
    ;;
  *)
    echo "unknown check $c"
    result "$c" 1
    ;;
  esac
done
echo "lua: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
