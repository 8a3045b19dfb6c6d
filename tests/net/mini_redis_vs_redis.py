#!/usr/bin/env python3
"""mini_redis_vs_redis.py MINI_REDIS - examples/mini_redis against a real redis-server.

Every case is a byte string sent on a fresh connection to both servers (each case
starts from an empty key space); the replies must be identical byte for byte
(only the client id in HELLO's reply is masked: it counts connections). Then
pub/sub across two connections, a client that pipelines megabytes without
reading, redis-cli and a short redis-benchmark run whose every reply is checked
(-e: errors abort it). Exit 77 (skipped) when redis-server is not installed.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import time

MINI = sys.argv[1]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_redis():
    port = free_port()
    p = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
                          "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return p, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


def start_mini():
    p = subprocess.Popen([MINI, "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    m = re.search(r":(\d+)$", line.strip())
    if not m:
        raise SystemExit("mini_redis printed %r" % line)
    return p, int(m.group(1))


def exchange(port, data, settle=0.3, read_until_close=False, first=5.0, min_len=0):
    """Send data, read replies until the peer is quiet for `settle` s or closes.

    Quiet counts only after the first byte: the first reply may take up to
    `first` s on a loaded machine (or under TSan), and ending on a silence
    before it made one server's reply look empty (a false difference). With
    min_len, silences before that many bytes do not end it either (replies to
    pipelined requests may come in separate writes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(data)
    out = b""
    closed = False
    deadline = time.time() + 10
    while time.time() < deadline:
        s.settimeout(settle if out and len(out) >= min_len else first)
        try:
            chunk = s.recv(1 << 16)
        except socket.timeout:
            if read_until_close:
                continue
            break
        if not chunk:
            closed = True
            break
        out += chunk
    s.close()
    return out, closed


def mask(b):
    return re.sub(rb"\$2\r\nid\r\n:\d+\r\n", b"$2\r\nid\r\n:ID\r\n", b)


def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


COMMAND_NAMES = ["ping", "echo", "hello", "get", "set", "del", "exists", "incr", "decr", "incrby", "decrby",
                 "mget", "mset", "expire", "pexpire", "ttl", "pttl", "persist", "publish", "subscribe",
                 "unsubscribe", "flushall", "flushdb", "dbsize", "select", "client|id", "client|getname",
                 "client|setname", "command|count", "command|docs", "command|info", "config|get", "quit"]
COMMAND_INFO = b"".join(cmd("COMMAND", "INFO", n) for n in COMMAND_NAMES) + cmd("COMMAND", "INFO", "GET", "nosuch", "Set")
COMMAND_ERRORS = cmd("COMMAND", "COUNT", "x") + cmd("COMMAND", "FOO") + cmd("COMMAND", "INFO", "nosuch")

CASES = [
    ("ping", b"PING\r\n" + cmd("PING") + cmd("PING", "hi") + cmd("ping", "a", "b")),
    ("echo", cmd("ECHO", "hello") + cmd("ECHO") + b"echo \"a\\x41\\n\" 'b c'\r\n"),
    ("get set", cmd("GET", "k") + cmd("SET", "k", "v") + cmd("GET", "k") + cmd("get")),
    ("set options", cmd("SET", "k", "1", "NX") + cmd("SET", "k", "2", "NX") + cmd("SET", "k", "3", "XX") +
     cmd("SET", "n", "3", "XX") + cmd("SET", "k", "4", "GET") + cmd("SET", "m", "4", "GET") +
     cmd("SET", "k", "v", "EX", "0") + cmd("SET", "k", "v", "EX", "abc") + cmd("SET", "k", "v", "PX", "-5") +
     cmd("SET", "k", "v", "NX", "XX") + cmd("SET", "k", "v", "foo") + cmd("SET", "k", "v", "EX") +
     cmd("SET", "k", "v", "EX", "100", "PX", "100") + cmd("SET", "k", "v", "KEEPTTL", "EX", "5") +
     cmd("SET", "k", "v", "EX", "100") + cmd("TTL", "k") + cmd("SET", "k", "w", "KEEPTTL") + cmd("TTL", "k") +
     cmd("SET", "k", "x") + cmd("TTL", "k") + cmd("SET", "k", "v", "EX", "9223372036854775807")),
    ("del exists", cmd("MSET", "a", "1", "b", "2") + cmd("EXISTS", "a", "a", "b", "c") + cmd("DEL", "a", "c") +
     cmd("EXISTS", "a") + cmd("DEL") + cmd("DBSIZE")),
    ("counters", cmd("INCR", "c") + cmd("INCRBY", "c", "10") + cmd("DECR", "c") + cmd("DECRBY", "c", "5") +
     cmd("INCRBY", "c", "abc") + cmd("SET", "s", "abc") + cmd("INCR", "s") + cmd("SET", "f", "1.5") +
     cmd("INCR", "f") + cmd("SET", "big", "9223372036854775807") + cmd("INCR", "big") +
     cmd("SET", "small", "-9223372036854775808") + cmd("DECR", "small") + cmd("INCR", "c", "x") +
     cmd("SET", "z", " 1") + cmd("INCR", "z") + cmd("SET", "lz", "01") + cmd("INCR", "lz")),
    ("mget mset", cmd("MSET", "a", "1", "b", "2") + cmd("MGET", "a", "x", "b") + cmd("MSET", "a") +
     cmd("MSET", "a", "1", "b") + cmd("MGET")),
    ("expire ttl", cmd("SET", "k", "v") + cmd("TTL", "k") + cmd("TTL", "none") + cmd("EXPIRE", "k", "100") +
     cmd("TTL", "k") + cmd("EXPIRE", "none", "100") + cmd("EXPIRE", "k", "abc") + cmd("EXPIRE", "k", "100", "NX") +
     cmd("EXPIRE", "k", "200", "XX") + cmd("TTL", "k") + cmd("EXPIRE", "k", "50", "GT") +
     cmd("EXPIRE", "k", "50", "LT") + cmd("TTL", "k") + cmd("EXPIRE", "k", "1", "NX", "XX") +
     cmd("EXPIRE", "k", "1", "foo") + cmd("PERSIST", "k") + cmd("TTL", "k") + cmd("EXPIRE", "k", "0") +
     cmd("EXISTS", "k") + cmd("SET", "p", "v", "PX", "100000") + cmd("PEXPIRE", "p", "-1") + cmd("GET", "p")),
    ("unknown and arity", cmd("FOO") + cmd("foo", "a", "b") + cmd("foo", "x" * 200, "y") +
     cmd("get", "a", "b") + cmd("incr") + b"NOPE 'a' \"b\"\r\n" + cmd("foo", "a\r\nb")),
    ("hello", cmd("HELLO") + cmd("HELLO", "3") + cmd("GET", "nokey") + cmd("SET", "k", "v", "NX", "GET") +
     cmd("MGET", "k", "x") + cmd("HELLO", "2") + cmd("GET", "nokey") + cmd("HELLO", "4") + cmd("HELLO", "abc") +
     cmd("HELLO", "3", "SETNAME", "me") + cmd("CLIENT", "GETNAME") + cmd("HELLO", "2", "FOO")),
    ("client", cmd("CLIENT", "SETNAME", "bob") + cmd("CLIENT", "GETNAME") + cmd("CLIENT", "SETNAME", "a b") +
     cmd("CLIENT", "SETINFO", "LIB-NAME", "redis-py") + cmd("CLIENT", "FOO") + cmd("CLIENT") +
     cmd("CLIENT", "SETNAME")),
    ("flush select", cmd("SET", "a", "1") + cmd("FLUSHALL") + cmd("DBSIZE") + cmd("SET", "a", "1") +
     cmd("FLUSHDB", "ASYNC") + cmd("GET", "a") + cmd("FLUSHALL", "FOO") + cmd("SELECT", "0") +
     cmd("SELECT", "x")),
    ("subscribe mode resp2", cmd("SUBSCRIBE", "ch") + cmd("PING") + cmd("PING", "x") + cmd("GET", "k") +
     cmd("SUBSCRIBE", "ch2") + cmd("UNSUBSCRIBE", "ch") + cmd("UNSUBSCRIBE", "ch2") + cmd("UNSUBSCRIBE") +
     cmd("GET", "k")),
    ("subscribe mode resp3", cmd("HELLO", "3") + cmd("SUBSCRIBE", "a", "b") + cmd("PING") + cmd("GET", "k") +
     cmd("UNSUBSCRIBE", "b") + cmd("UNSUBSCRIBE", "a") + cmd("UNSUBSCRIBE")),
    # COMMAND INFO of every command mini_redis has (the container commands' own
    # entries list only the subcommands it has, so they are compared one by one).
    ("command info", COMMAND_INFO),
    ("command info resp3", cmd("HELLO", "3") + COMMAND_INFO),
    ("command errors", COMMAND_ERRORS),
    ("empty requests", b"\r\n  \r\n*0\r\n*-1\r\nPING\r\n"),
    # Protocol errors: the commands before the error are answered, then the
    # error, then the connection is closed.
    ("invalid multibulk length", cmd("SET", "a", "1") + b"*x\r\n" + cmd("PING")),
    ("expected $", b"*1\r\n:1\r\n"),
    ("invalid bulk length", b"*1\r\n$-1\r\n"),
    ("bulk length over 512 MiB", b"*1\r\n$536870913\r\n"),
    ("multibulk count over INT_MAX", b"*2147483648\r\n"),
    ("unbalanced quotes", b"GET \"a\r\n"),
    ("quote not followed by space", b"GET \"a\"b\r\n"),
    ("too big inline", b"a" * 70000),
    ("too big mbulk count", b"*" + b"1" * 70000),
    ("too big bulk count", b"*1\r\n$" + b"1" * 70000),
]

CLOSES = {"invalid multibulk length", "expected $", "invalid bulk length", "bulk length over 512 MiB",
          "multibulk count over INT_MAX", "unbalanced quotes", "quote not followed by space",
          "too big inline", "too big mbulk count", "too big bulk count"}


def main():
    if shutil.which("redis-server") is None:
        print("SKIP: redis-server is not installed")
        return 77
    red, rport = start_redis()
    mini, mport = start_mini()
    failures = 0
    try:
        for name, data in CASES:
            results = []
            for port in (rport, mport):  # redis first: its reply's length bounds mini_redis's wait
                exchange(port, cmd("FLUSHALL"), min_len=len(b"+OK\r\n"))
                results.append(exchange(port, data, read_until_close=name in CLOSES,
                                        min_len=len(results[0][0]) if results else 0))
            (rb, rc), (mb, mc) = results
            if mask(rb) != mask(mb) or rc != mc:
                failures += 1
                print("FAIL %s:\n  redis      %r (closed %s)\n  mini_redis %r (closed %s)" %
                      (name, rb[:600], rc, mb[:600], mc))
            else:
                print("ok   %s (%d bytes%s)" % (name, len(rb), ", closed" if rc else ""))

        # COMMAND COUNT counts mini_redis's own commands (redis 7.0 has 240), and
        # COMMAND DOCS gives redis's summary, since, group and complexity (not the
        # arguments): deliberate differences, checked here.
        count, _ = exchange(mport, cmd("COMMAND", "COUNT"))
        docs = b"$7\r\nsummary\r\n$22\r\nGet the value of a key\r\n$5\r\nsince\r\n$5\r\n1.0.0\r\n" \
            b"$5\r\ngroup\r\n$6\r\nstring\r\n$10\r\ncomplexity\r\n$4\r\nO(1)\r\n"
        rdocs, _ = exchange(rport, cmd("COMMAND", "DOCS", "get"))
        mdocs, _ = exchange(mport, cmd("COMMAND", "DOCS", "get", "nosuch"))
        want_count = b":%d\r\n" % (len([n for n in COMMAND_NAMES if "|" not in n]) + 3)
        if count != want_count or docs not in rdocs or mdocs != b"*2\r\n$3\r\nget\r\n*8\r\n" + docs:
            failures += 1
            print("FAIL command count/docs: %r %r %r" % (count, rdocs[:300], mdocs[:300]))
        else:
            print("ok   command count (%s) and docs" % count.strip().decode())

        # pub/sub across connections: a subscriber sees a publisher's message.
        for port, label in ((rport, "redis"), (mport, "mini_redis")):
            sub = socket.create_connection(("127.0.0.1", port), timeout=5)
            sub.sendall(cmd("SUBSCRIBE", "news"))
            want = b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"
            got = b""
            while len(got) < len(want):
                got += sub.recv(4096)
            pub, _ = exchange(port, cmd("PUBLISH", "news", "hello") + cmd("PUBLISH", "none", "x"),
                              min_len=len(b":1\r\n:0\r\n"))
            msg = b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n"
            got = b""
            while len(got) < len(msg):
                got += sub.recv(4096)
            sub.close()
            if pub != b":1\r\n:0\r\n" or got != msg:
                failures += 1
                print("FAIL pub/sub on %s: %r %r" % (label, pub, got))
            else:
                print("ok   pub/sub on %s" % label)

        # A client pipelining 8 MiB of requests without reading: served, memory bounded.
        s = socket.create_connection(("127.0.0.1", mport), timeout=30)
        req = cmd("SET", "k", "v" * 100) * 40000  # ~ 5 MiB in, 200 KiB out
        req += cmd("GET", "k") * 20000  # ~ 2 MiB out
        s.setblocking(False)
        sent = 0
        t0 = time.time()
        while sent < len(req) and time.time() - t0 < 10:
            try:
                sent += s.send(req[sent:sent + 65536])
            except BlockingIOError:
                time.sleep(0.01)  # the server stopped reading: back-pressure
        s.setblocking(True)
        want = b"+OK\r\n" * 40000 + (b"$100\r\n" + b"v" * 100 + b"\r\n") * 20000
        got = b""
        while len(got) < len(want):
            while sent < len(req):
                sent += s.send(req[sent:])
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            got += chunk
        s.close()
        if got != want:
            failures += 1
            print("FAIL pipelining without reading: %d of %d bytes" % (len(got), len(want)))
        else:
            print("ok   pipelined %d bytes without reading replies, all %d bytes of replies right"
                  % (len(req), len(want)))

        # redis-cli and redis-benchmark
        outs = []
        for port in (rport, mport):
            out = ""
            for args in (["SET", "x", "42"], ["INCR", "x"], ["-3", "GET", "nokey"], ["-3", "HELLO", "3"],
                         ["--no-raw", "MGET", "x", "y"], ["SUBSCRIBE"], ["DEL", "x"]):
                r = subprocess.run(["redis-cli", "-p", str(port)] + args, capture_output=True, text=True,
                                   timeout=10)
                out += r.stdout + r.stderr
            outs.append(re.sub(r"\nid \d+\n", "\nid ID\n", out))
        if outs[0] != outs[1] or "43" not in outs[1]:
            failures += 1
            print("FAIL redis-cli:\n  redis      %r\n  mini_redis %r" % tuple(outs))
        else:
            print("ok   redis-cli (%d lines, as redis-server)" % outs[1].count("\n"))
        n = os.environ.get("EKT_BENCH_N", "20000")
        for extra in ([], ["-P", "16"]):
            b = subprocess.run(["redis-benchmark", "-p", str(mport), "-t", "ping,set,get,incr,mset",
                                "-n", n, "-c", "20", "-q"] + extra,
                               capture_output=True, text=True, timeout=300)
            lines = [l.split("\r")[-1] for l in b.stdout.splitlines() if "requests per second" in l]
            # redis-benchmark exits at the first error reply.
            if b.returncode != 0 or len(lines) != 6:
                failures += 1
                print("FAIL redis-benchmark %s: rc %d %r %r" % (extra, b.returncode, b.stdout[-500:],
                                                                b.stderr[-500:]))
            else:
                print("ok   redis-benchmark %s: %s" % (" ".join(extra) or "no pipelining", "; ".join(lines)))
    finally:
        mini.terminate()
        red.terminate()
        rc = mini.wait(timeout=10)
        red.wait(timeout=10)
    if rc != 0:
        failures += 1
        print("FAIL mini_redis exited with %d after SIGTERM" % rc)
    print("%d failures" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
