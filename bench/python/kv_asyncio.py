"""The key-value service of kv_ekiden.py on asyncio (a Protocol, as a fast
asyncio server is written) with the hiredis package's reader for parsing:
python kv_asyncio.py PORT [asyncio|uvloop]."""
import asyncio
import signal
import socket
import sys
from typing import Dict, List, Optional

import hiredis


def encode(v: object) -> bytes:
    if v is None:
        return b"$-1\r\n"
    if isinstance(v, bytes):
        return b"$%d\r\n%s\r\n" % (len(v), v)
    if isinstance(v, list):
        return b"*%d\r\n" % len(v) + b"".join(encode(x) for x in v)
    raise TypeError(type(v))


class KV(asyncio.Protocol):
    store: Dict[bytes, bytes] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = hiredis.Reader()

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        out: List[bytes] = []
        while True:
            req: Optional[List[bytes]] = self.reader.gets()
            if req is False or req is None:
                break
            out.append(self.handle(req))
        if out:
            self.transport.write(b"".join(out))

    def handle(self, req: List[bytes]) -> bytes:
        cmd = req[0].upper()
        if cmd == b"GET" and len(req) == 2:
            return encode(self.store.get(req[1]))
        if cmd == b"SET" and len(req) == 3:
            self.store[req[1]] = req[2]
            return b"+OK\r\n"
        if cmd == b"PING":
            return b"+PONG\r\n" if len(req) == 1 else encode(req[1])
        if cmd == b"CONFIG":
            return b"*0\r\n"
        return b"-ERR unknown command\r\n"


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(KV, "127.0.0.1", port, backlog=1024)
    print("listening on", port, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    port = int(sys.argv[1])
    if (sys.argv[2] if len(sys.argv) > 2 else "uvloop") == "uvloop":
        import uvloop

        uvloop.run(main(port))
    else:
        asyncio.run(main(port))
