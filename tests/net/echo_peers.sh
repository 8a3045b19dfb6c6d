#!/bin/sh
# echo_peers.sh - real peers that no one here wrote talk to examples/echo:
# socat and OpenBSD nc (Debian packages) and a Python socket client. Every byte
# sent must come back unchanged; exits non-zero on the first failure.
#
#   tests/net/echo_peers.sh path/to/echo
set -eu

ECHO=${1:?usage: echo_peers.sh path/to/echo}
[ -x "$ECHO" ] || { echo "echo_peers: $ECHO is not executable" >&2; exit 2; }
TMP=$(mktemp -d)
PID=
cleanup() {
    if [ -n "$PID" ]; then
        kill "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# Port 0: the server prints the port it got.
"$ECHO" 127.0.0.1:0 >"$TMP/out" 2>"$TMP/err" &
PID=$!
i=0
until grep -q 'listening on' "$TMP/out" 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 100 ] || { echo "echo_peers: server did not start" >&2; cat "$TMP/err" >&2; exit 1; }
    sleep 0.05
done
ADDR=$(sed -n 's/.*listening on //p' "$TMP/out")
HOST=${ADDR%:*}
PORT=${ADDR##*:}
echo "echo_peers: echo at $HOST:$PORT"
FAILED=0

check() { # name, sent file, received file
    if cmp -s "$2" "$3"; then
        echo "ok   $1 ($(wc -c <"$2") bytes)"
    else
        echo "FAIL $1: sent $(wc -c <"$2") bytes, got $(wc -c <"$3")" >&2
        FAILED=1
    fi
}

head -c 1048576 /dev/urandom >"$TMP/payload"
printf 'hello, ekiden\n' >"$TMP/line"

if command -v socat >/dev/null; then
    # socat half-closes after stdin's EOF and waits for the echo to finish.
    socat -t 10 - "TCP:$HOST:$PORT" <"$TMP/line" >"$TMP/socat_line"
    check "socat line" "$TMP/line" "$TMP/socat_line"
    socat -t 10 -b 65536 - "TCP:$HOST:$PORT" <"$TMP/payload" >"$TMP/socat_big"
    check "socat 1 MiB" "$TMP/payload" "$TMP/socat_big"
else
    echo "skip socat (not installed)"
fi

if command -v nc >/dev/null; then
    # OpenBSD nc: -N shuts the socket down after EOF on stdin.
    nc -N -w 10 "$HOST" "$PORT" <"$TMP/payload" >"$TMP/nc_big"
    check "nc 1 MiB" "$TMP/payload" "$TMP/nc_big"
else
    echo "skip nc (not installed)"
fi

if command -v python3 >/dev/null; then
    if python3 - "$HOST" "$PORT" <<'PY'; then echo "ok   python (16 connections, interleaved)"; else FAILED=1; fi
import os, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
conns = [socket.create_connection((host, port), timeout=10) for _ in range(16)]
sent = [bytearray() for _ in conns]
got = [bytearray() for _ in conns]
# Interleave writes and reads on all connections, with odd sizes.
for rnd in range(50):
    for i, s in enumerate(conns):
        msg = os.urandom(1 + (rnd * 131 + i * 17) % 3000)
        s.sendall(msg)
        sent[i] += msg
        while len(got[i]) < len(sent[i]):
            chunk = s.recv(65536)
            if not chunk:
                sys.exit("python: early end of stream")
            got[i] += chunk
for i, s in enumerate(conns):
    s.shutdown(socket.SHUT_WR)
    rest = s.recv(1)
    if rest:
        sys.exit("python: data after half-close")
    s.close()
    if got[i] != sent[i]:
        sys.exit(f"python: connection {i} mismatch")
PY
else
    echo "skip python (not installed)"
fi

kill -0 "$PID" 2>/dev/null || { echo "FAIL echo server died" >&2; cat "$TMP/err" >&2; exit 1; }
if [ -s "$TMP/err" ]; then
    echo "echo stderr:" >&2
    cat "$TMP/err" >&2
fi
[ $FAILED -eq 0 ] && echo "echo_peers: all peers ok"
exit $FAILED
