#!/usr/bin/env bash
# http_hello.sh - examples/http_hello driven by real clients: curl (keep-alive
# reuse on HTTP/1.1 and on HTTP/1.0 with "Connection: keep-alive", HTTP/1.0
# closing, a POST with a chunked body, "Expect: 100-continue" with a 2 MB body, a
# streaming response, 404), a Python client (pipelined requests in one write, a
# malformed request answered 400 and closed, an oversized head answered 431) and
# a short wrk run (bounded: non-zero requests, zero errors; no speed is checked).
# The server must then exit 0 on SIGTERM (under ASan a leak fails it).
#
#   tests/net/http_hello.sh path/to/http_hello
# Exit 77 (skipped) when curl is not installed; the wrk part is skipped without wrk.
set -euo pipefail
bin=${1:?usage: http_hello.sh path/to/http_hello}
command -v curl >/dev/null || { echo "curl not installed: skipped"; exit 77; }
tmp=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
"$bin" 127.0.0.1:0 >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 200); do grep -q 'listening on' "$tmp/out" 2>/dev/null && break; sleep 0.05; done
addr=$(sed -n 's/^http_hello: listening on //p' "$tmp/out")
[ -n "$addr" ] || { echo "http_hello did not start"; cat "$tmp/err"; exit 1; }
url=http://$addr
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
c() { curl -sS --max-time 30 "$@"; }

# keep-alive: two requests, one connection
body=$(c -v "$url/" "$url/" 2>"$tmp/v")
if [ "$body" = "Hello, World!Hello, World!" ] && grep -q 'Re-using existing connection' "$tmp/v"; then
  ok "HTTP/1.1 keep-alive: two requests over one connection"
else bad "HTTP/1.1 keep-alive: got '$body'"; cat "$tmp/v"; fi

# HTTP/1.0: closed after the response; with Connection: keep-alive, reused
c --http1.0 -i "$url/" >"$tmp/h10"
if grep -q '^HTTP/1.0 200 OK' "$tmp/h10" && grep -qi '^Connection: close' "$tmp/h10" &&
  grep -q 'Hello, World!' "$tmp/h10"; then ok "HTTP/1.0: answered in 1.0, Connection: close"
else bad "HTTP/1.0:"; cat "$tmp/h10"; fi
body=$(c -v --http1.0 -H 'Connection: keep-alive' "$url/" "$url/" 2>"$tmp/v")
if [ "$body" = "Hello, World!Hello, World!" ] && grep -q 'Re-using existing connection' "$tmp/v"; then
  ok "HTTP/1.0 with Connection: keep-alive: reused"
else bad "HTTP/1.0 keep-alive: got '$body'"; cat "$tmp/v"; fi

# POST with a chunked body (curl sends it chunked when told so), echoed back
seq 1 2000 >"$tmp/post"
c -H 'Transfer-Encoding: chunked' --data-binary @"$tmp/post" "$url/echo" >"$tmp/got"
if cmp -s "$tmp/post" "$tmp/got"; then ok "POST, chunked body ($(wc -c <"$tmp/post") bytes) echoed"
else bad "POST chunked: echo differs ($(wc -c <"$tmp/got") bytes)"; fi

# Expect: 100-continue: the server answers 100 before curl sends the body
head -c 2000000 /dev/urandom >"$tmp/big"
c -v -H 'Expect: 100-continue' --expect100-timeout 20 --data-binary @"$tmp/big" "$url/" \
  -o "$tmp/got" 2>"$tmp/v"
if grep -q '< HTTP/1.1 100 Continue' "$tmp/v" && cmp -s "$tmp/big" "$tmp/got"; then
  ok "Expect: 100-continue answered, 2 MB body echoed"
else bad "Expect: 100-continue"; grep '^[<>]' "$tmp/v" | head; fi

# a streaming response (chunked on the wire), and a 404
c --raw "$url/stream" >"$tmp/got"
printf '8\r\nchunk 0\n\r\n8\r\nchunk 1\n\r\n8\r\nchunk 2\n\r\n0\r\n\r\n' >"$tmp/want"
if cmp -s "$tmp/want" "$tmp/got"; then ok "streaming response: three chunks, then the last"
else bad "streaming response:"; od -c "$tmp/got" | head; fi
code=$(c -o /dev/null -w '%{http_code}' "$url/missing")
[ "$code" = 404 ] && ok "404 for an unknown path" || bad "unknown path: $code"

# raw clients: pipelining, malformed input, an oversized head
if python3 - "$addr" <<'PY'; then ok "pipelined requests in order; malformed -> 400 + close; 100 KB head -> 431 + close"; else bad "python raw client"; fi
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
def talk(data, until_close=True):
    s = socket.create_connection((host, int(port)), timeout=30)
    s.sendall(data)
    got = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        got += chunk
    s.close()
    return got
pipelined = b"GET / HTTP/1.1\r\n\r\n" * 3 + b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi" \
    + b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"
got = talk(pipelined)
bodies = [part.split(b"\r\n\r\n", 1)[1] for part in got.split(b"HTTP/1.1 200 OK\r\n")[1:]]
assert [b.split(b"HTTP")[0] for b in bodies] == [b"Hello, World!"] * 3 + [b"hi", b"Hello, World!"], got
got = talk(b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nBad Header: x\r\n\r\n")
assert got.startswith(b"HTTP/1.1 200 OK\r\n") and b"HTTP/1.1 400 Bad Request\r\n" in got, got
got = talk(b"GET / HTTP/1.1\r\nX: " + b"a" * 100000 + b"\r\n\r\n")
assert got.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), got[:200]
PY

# wrk: a short run, bounded; it must make requests and see no error
if command -v wrk >/dev/null; then
  timeout 60 wrk -t1 -c10 -d1s --timeout 20s "$url/" >"$tmp/wrk" 2>&1 || true
  reqs=$(sed -nE 's/^ *([0-9]+) requests in .*/\1/p' "$tmp/wrk")
  if [ "${reqs:-0}" -gt 0 ] && ! grep -qE 'Socket errors|Non-2xx' "$tmp/wrk"; then
    ok "wrk: $reqs requests in 1 s, no errors"
  else bad "wrk:"; cat "$tmp/wrk"; fi
else
  echo "skip wrk (not installed)"
fi

kill -TERM "$pid"
wait "$pid" && rc=0 || rc=$?
pid=
if [ "$rc" -eq 0 ]; then ok "http_hello exited cleanly on SIGTERM"
else bad "http_hello exited with $rc"; cat "$tmp/err"; fi
[ "$fails" -eq 0 ]
