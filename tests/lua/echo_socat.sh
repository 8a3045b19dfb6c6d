#!/usr/bin/env bash
# echo_socat.sh - examples/echo.lua against real peers: the same checks as the C
# echo server's (tests/net/echo_peers.sh: socat, nc, a Python client with 16
# interleaved connections), with the Lua server run by the given interpreter.
#
#   LUA_CPATH=... tests/lua/echo_socat.sh INTERPRETER path/to/echo.lua
set -euo pipefail
interp=${1:?usage: echo_socat.sh INTERPRETER echo.lua}
script=$(cd "$(dirname "${2:?}")" && pwd)/$(basename "$2")
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# echo_peers.sh runs an executable with the address as its argument.
cat >"$tmp/echo" <<SH
#!/bin/sh
LUA_CPATH='${LUA_CPATH:-}' exec $(command -v "$interp") '$script' "\$@"
SH
chmod +x "$tmp/echo"
bash "$here/../net/echo_peers.sh" "$tmp/echo"
