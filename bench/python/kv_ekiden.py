"""A key-value service (GET/SET/PING) on ekiden.serve(codec="resp"): C reads,
frames and writes RESP, the Python handler sees each request as a list of bytes
and returns a Python value. python kv_ekiden.py PORT [WORKERS|ct]."""
import signal
import sys
from typing import Any, Dict, List

import ekiden
from ekiden import resp

OK = resp.Simple("OK")
PONG = resp.Simple("PONG")


def kv() -> Any:
    store: Dict[bytes, bytes] = {}

    async def handle(req: List[bytes]) -> Any:
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

    return handle


async def main(port: int) -> None:
    server = await ekiden.serve(("127.0.0.1", port), service=ekiden.Service(kv()), codec="resp")
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
    if mode == "ct":
        ekiden.run(main(int(sys.argv[1])), current_thread=True)
    else:
        ekiden.run(main(int(sys.argv[1])), workers=int(mode))
