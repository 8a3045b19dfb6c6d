"""What the key-value handler's own Python work costs, with no I/O and no
framework: run it under callgrind with N = 0 and N > 0 requests and divide the
difference of the instruction totals by N (bench/python/counts.sh gives the
servers' whole cost per request to compare with):

    valgrind --tool=callgrind python handler_cost.py MODE N

MODE handler: kv_ekiden.py's plain handler called on prebuilt requests (lists
of bytes, as ekiden hands them over), alternately SET and GET; all that any
server must spend per request in Python. MODE uvloop: kv_asyncio.py's
data_received work for 16 pipelined requests at a time (the hiredis reader
fed one read, its requests handled and encoded, the replies joined), without
the loop and the transport."""
import sys
from typing import Any, Dict, List

import hiredis

from ekiden import resp

OK = resp.Simple("OK")
store: Dict[bytes, bytes] = {}


def handle(req: List[bytes]) -> Any:  # kv_ekiden.py's, for SET and GET
    cmd = req[0].upper()
    if cmd == b"GET" and len(req) == 2:
        return store.get(req[1])
    if cmd == b"SET" and len(req) == 3:
        store[req[1]] = req[2]
        return OK
    return None


def encode(v: Any) -> bytes:
    if v is None:
        return b"$-1\r\n"
    return b"$%d\r\n%s\r\n" % (len(v), v)


def uv_handle(req: List[bytes]) -> bytes:  # kv_asyncio.py's, for SET and GET
    cmd = req[0].upper()
    if cmd == b"GET" and len(req) == 2:
        return encode(store.get(req[1]))
    if cmd == b"SET" and len(req) == 3:
        store[req[1]] = req[2]
        return b"+OK\r\n"
    return b"-ERR unknown command\r\n"


def main(mode: str, n: int) -> None:
    if mode == "handler":
        reqs = [[b"SET", b"key:__rand_int__", b"xxx"], [b"GET", b"key:__rand_int__"]] * (n // 2)
        for r in reqs:
            handle(r)
    elif mode == "uvloop":
        p = 16
        chunks = [b"*3\r\n$3\r\nSET\r\n$16\r\nkey:__rand_int__\r\n$3\r\nxxx\r\n" * p,
                  b"*2\r\n$3\r\nGET\r\n$16\r\nkey:__rand_int__\r\n" * p]
        reader = hiredis.Reader()
        for i in range(n // p):
            reader.feed(chunks[i & 1])
            out = []
            while True:
                req = reader.gets()
                if req is False or req is None:
                    break
                out.append(uv_handle(req))
            b"".join(out)
    else:
        raise SystemExit("usage: handler_cost.py handler|uvloop N")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
