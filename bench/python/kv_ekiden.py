"""A key-value service (GET/SET/PING) on ekiden.serve(codec="resp"): C reads,
frames and writes RESP, the Python handler sees each request as a list of bytes
and returns a Python value. python kv_ekiden.py PORT [WORKERS|ct] [def|async|batch]:
the handler is a plain function (def, the default: it never waits, like the
uvloop version's method), an `async def` (a coroutine that completes in its
first step), or a batch handler (Service(batch=True): one call per batch with
the list of its requests, giving the list of responses: what a user picks for
speed, as the uvloop version's data_received is). Either way the requests of
one read reach Python in one batch.
A fourth argument "local" serves with serve(local=True): the connection tasks
on the Python thread, calling the handler with no buffer."""
import signal
import sys
from typing import Any, Dict, List

import ekiden
from ekiden import resp

OK = resp.Simple("OK")
PONG = resp.Simple("PONG")


def kv(plain: bool) -> Any:
    store: Dict[bytes, bytes] = {}

    def handle(req: List[bytes]) -> Any:
        cmd = req[0].upper()
        if cmd == b"GET" and len(req) == 2:
            return store.get(req[1])
        if cmd == b"SET" and len(req) == 3:
            store[req[1]] = req[2]
            return OK
        if cmd == b"PING":
            return PONG if len(req) == 1 else req[1]
        if cmd == b"CONFIG":  # redis-benchmark asks CONFIG GET save/appendonly
            return []
        return resp.Error(f"ERR unknown command '{req[0].decode(errors='replace')}'")

    async def handle_async(req: List[bytes]) -> Any:
        return handle(req)

    return handle if plain else handle_async


def kv_batch() -> Any:
    store: Dict[bytes, bytes] = {}
    get = store.get

    def handle_batch(reqs: List[List[bytes]]) -> List[Any]:
        out: List[Any] = []
        append = out.append
        for req in reqs:
            cmd = req[0]
            n = len(req)
            if n == 3 and (cmd == b"SET" or cmd.upper() == b"SET"):
                store[req[1]] = req[2]
                append(OK)
            elif n == 2 and (cmd == b"GET" or cmd.upper() == b"GET"):
                append(get(req[1]))
            else:
                append(handle_other(req))
        return out

    def handle_other(req: List[bytes]) -> Any:
        cmd = req[0].upper()
        if cmd == b"PING":
            return PONG if len(req) == 1 else req[1]
        if cmd == b"CONFIG":  # redis-benchmark asks CONFIG GET save/appendonly
            return []
        return resp.Error(f"ERR unknown command '{req[0].decode(errors='replace')}'")

    return handle_batch


async def main(port: int, mode: str, local: bool) -> None:
    svc = ekiden.Service(kv_batch(), batch=True) if mode == "batch" else ekiden.Service(kv(mode == "def"))
    server = await ekiden.serve(("127.0.0.1", port), service=svc, codec="resp", local=local)
    print("listening on", server.local_addr, flush=True)
    try:
        await ekiden.sleep(float("inf"))
    finally:
        await server.shutdown(grace=1.0)


if __name__ == "__main__":
    # A background job of a non-interactive shell starts with SIGINT ignored;
    # ekiden.run handles Ctrl-C only where Python's default handler is in place.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    mode = sys.argv[2] if len(sys.argv) > 2 else "1"
    kind = sys.argv[3] if len(sys.argv) > 3 else "def"
    local = "local" in sys.argv[4:]
    if mode == "ct":
        ekiden.run(main(int(sys.argv[1]), kind, local), current_thread=True)
    else:
        ekiden.run(main(int(sys.argv[1]), kind, local), workers=int(mode))
