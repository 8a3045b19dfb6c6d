#!/usr/bin/env bash
# lua_host.sh - examples/lua_host (a C program embedding Lua on its runtime)
# driven by real clients: socat sends lines to the Lua service, which calls the C
# service through the registry; a Python client makes a second connection with
# pipelined lines. The host serves two connections, then must exit 0.
#
#   tests/lua/lua_host.sh path/to/lua_host
set -euo pipefail
host=${1:?usage: lua_host.sh path/to/lua_host}
tmp=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
"$host" 127.0.0.1:0 2 >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 100); do grep -q 'listening on' "$tmp/out" 2>/dev/null && break; sleep 0.05; done
addr=$(sed -n 's/^listening on //p' "$tmp/out")
[ -n "$addr" ] || { echo "lua_host did not start"; cat "$tmp/err"; exit 1; }
printf 'hello\nekiden lua\n' | socat -t 10 - "TCP:$addr" >"$tmp/got"
printf '[HELLO]\n[EKIDEN LUA]\n' >"$tmp/want"
cmp "$tmp/got" "$tmp/want" || { echo "socat: got:"; cat "$tmp/got"; exit 1; }
echo "ok   socat through the Lua service and the C service"
python3 - "$addr" <<'PY'
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=10)
lines = [f"line {i}" for i in range(200)]
s.sendall("".join(l + "\n" for l in lines).encode())
s.shutdown(socket.SHUT_WR)
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
want = "".join(f"[{l.upper()}]\n" for l in lines).encode()
if data != want:
    sys.exit(f"python: got {len(data)} bytes, want {len(want)}")
PY
echo "ok   python: 200 pipelined lines"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$pid" 2>/dev/null; then echo "lua_host did not exit after two connections"; exit 1; fi
wait "$pid" && rc=0 || rc=$?
pid=
[ "$rc" -eq 0 ] || { echo "lua_host exited with $rc"; cat "$tmp/err"; exit 1; }
echo "ok   lua_host exited cleanly"
