#!/usr/bin/env bash
# http_curl.sh - examples/http.lua (ek.serve{codec = "http"}) driven by curl: GET,
# POST echo, a chunked upload, keep-alive reuse of one connection, HTTP/1.0, 404,
# parallel requests to a handler that waits, and a malformed request (400).
#
#   LUA_CPATH=... tests/lua/http_curl.sh INTERPRETER path/to/http.lua
set -euo pipefail
interp=${1:?usage: http_curl.sh INTERPRETER http.lua}
script=${2:?}
command -v curl >/dev/null || { echo "curl is not installed (scripts/deps.sh installs it)"; exit 1; }
tmp=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
"$interp" "$script" 127.0.0.1:0 >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 200); do grep -q 'listening on' "$tmp/out" 2>/dev/null && break; sleep 0.05; done
addr=$(sed -n 's/^listening on //p' "$tmp/out")
[ -n "$addr" ] || { echo "http.lua did not start"; cat "$tmp/err"; exit 1; }
url=http://$addr
fail() { echo "FAIL $*"; cat "$tmp/err"; exit 1; }
c() { curl -sS --max-time 20 "$@"; }

[ "$(c "$url/hello")" = "Hello, World!" ] || fail "GET /hello"
c -o /dev/null -D "$tmp/h" "$url/hello"
grep -qi '^content-type: text/plain' "$tmp/h" || fail "content-type header: $(cat "$tmp/h")"
grep -qi '^content-length: 14' "$tmp/h" || fail "content-length: $(cat "$tmp/h")"
echo "ok   GET, headers"
[ "$(c -d 'some data' -H 'Content-Type: text/x-test' "$url/echo")" = "some data" ] || fail "POST /echo"
c -o /dev/null -D "$tmp/h" -d x -H 'Content-Type: text/x-test' "$url/echo"
grep -qi '^content-type: text/x-test' "$tmp/h" || fail "the request's header reached the handler"
head -c 300000 /dev/urandom >"$tmp/body"
c --data-binary @"$tmp/body" -H 'Transfer-Encoding: chunked' -o "$tmp/back" "$url/echo"
cmp -s "$tmp/body" "$tmp/back" || fail "chunked 300 kB upload echoed"
echo "ok   POST echo, a chunked 300 kB upload"
c -v "$url/hello" "$url/hello" >/dev/null 2>"$tmp/v"
grep -qi 're-using existing connection' "$tmp/v" || fail "keep-alive: $(cat "$tmp/v")"
[ "$(c --http1.0 "$url/hello")" = "Hello, World!" ] || fail "HTTP/1.0"
code=$(c -o /dev/null -w '%{http_code}' "$url/nothing")
[ "$code" = 404 ] || fail "404: got $code"
echo "ok   keep-alive reuse, HTTP/1.0, 404"
pids=()
for i in $(seq 8); do
  c -o "$tmp/slow$i" "$url/slow" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "parallel request (curl $p)"; done
for i in $(seq 8); do [ "$(cat "$tmp/slow$i")" = slept ] || fail "slow $i"; done
echo "ok   8 parallel requests to a handler that waits"
exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}"
# (in a subshell: the server may close before all is written, and the SIGPIPE
# must not end this script)
(printf 'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab' >&3) 2>/dev/null || true
status=$(head -n 1 <&3 | tr -d '\r')
exec 3<&-
[[ $status == "HTTP/1.1 400"* ]] || fail "malformed request: $status"
echo "ok   a malformed request gets 400"
kill "$pid"
wait "$pid" 2>/dev/null || true
pid=
