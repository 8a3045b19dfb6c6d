"""ekiden.serve / ekiden.connect: the C framed server and client with Python
services, driven by plain sockets, ekiden clients and redis-cli."""
from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from typing import Any, Dict, List, Optional

import pytest

import ekiden
from ekiden import resp


async def in_thread(fn: Any) -> Any:
    """Run a blocking function on a helper thread while this task waits (the run
    thread must stay free: it runs the Python services)."""
    box: List[Any] = []

    def target() -> None:
        try:
            box.append((True, fn()))
        except BaseException as e:  # noqa: B902
            box.append((False, e))

    th = threading.Thread(target=target)
    th.start()
    while not box:
        await ekiden.sleep(0.005)
    th.join()
    ok, value = box[0]
    if not ok:
        raise value
    return value


def test_lines_server_with_a_python_service() -> None:
    threads: List[int] = []

    async def upper(req: bytes) -> bytes:
        threads.append(threading.get_ident())
        return req.upper()

    def plain_client(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(b"hello\nworld\r\nthird\n")
            s.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            return data

    async def main() -> None:
        server = await ekiden.serve("127.0.0.1:0", service=ekiden.Service(upper), codec="lines")
        port = server.local_addr[1]
        assert await in_thread(lambda: plain_client(port)) == b"HELLO\nWORLD\nTHIRD\n"
        client = await ekiden.connect(server.local_addr, codec="lines")
        assert await client(b"abc") == b"ABC"
        tasks = [ekiden.spawn(client(b"x%d" % i)) for i in range(50)]  # pipelined
        assert [await t for t in tasks] == [b"X%d" % i for i in range(50)]
        client.close()
        m = server.metrics()
        assert m["REQUESTS"] >= 54 and m["CONNECTIONS_TOTAL"] >= 2
        assert await server.shutdown(grace=5.0)

    ekiden.run(main(), workers=2)
    assert threads and set(threads) == {threading.get_ident()}


def test_length_codec_and_errors() -> None:
    async def handler(req: bytes) -> bytes:
        if req == b"fail":
            raise ValueError("handler failed")
        return b"<" + req + b">"

    async def main() -> None:
        server = await ekiden.serve(("127.0.0.1", 0), service=ekiden.Service(handler), codec="length")
        client = await ekiden.connect(server.local_addr, codec="length")
        assert await client(b"\x00binary\xff") == b"<\x00binary\xff>"
        big = bytes(range(256)) * 4096
        assert await client(big) == b"<" + big + b">"
        await server.shutdown(grace=1.0)
        with pytest.raises(ValueError):
            await ekiden.serve("127.0.0.1:0", service=ekiden.Service(handler), codec="http2")

    ekiden.set_exception_handler(lambda m, e: None)
    try:
        ekiden.run(main())
    finally:
        ekiden.set_exception_handler(None)


def kv_service() -> Any:
    store: Dict[bytes, bytes] = {}

    async def handler(req: List[bytes]) -> Any:
        cmd = req[0].upper()
        if cmd == b"PING":
            return resp.Simple("PONG") if len(req) == 1 else req[1]
        if cmd == b"SET" and len(req) == 3:
            store[req[1]] = req[2]
            return resp.Simple("OK")
        if cmd == b"GET" and len(req) == 2:
            return store.get(req[1])
        if cmd == b"INCR" and len(req) == 2:
            n = int(store.get(req[1], b"0")) + 1
            store[req[1]] = b"%d" % n
            return n
        if cmd == b"KEYS":
            return sorted(store)
        return resp.Error(f"ERR unknown command '{req[0].decode()}'")

    return handler


def test_resp_service_with_ekiden_client() -> None:
    async def main() -> None:
        server = await ekiden.serve("127.0.0.1:0", service=ekiden.Service(kv_service()), codec="resp")
        c = await ekiden.connect(server.local_addr, codec="resp")
        assert await c([b"PING"]) == "PONG"
        assert await c([b"SET", b"k", b"v"]) == resp.Simple("OK")
        assert await c([b"GET", b"k"]) == b"v"
        assert await c([b"GET", b"missing"]) is None
        assert await c([b"INCR", b"n"]) == 1
        assert await c(["INCR", "n"]) == 2
        assert await c([b"KEYS"]) == [b"k", b"n"]
        err = await c([b"NOPE"])
        assert isinstance(err, resp.Error) and err.startswith("ERR unknown command")
        await server.shutdown()

    ekiden.run(main(), workers=2)


def test_resp_service_with_redis_cli() -> None:
    cli: Optional[str] = shutil.which("redis-cli")
    if cli is None:
        pytest.skip("redis-cli is not installed")

    def rc(port: int, *args: str) -> str:
        res = subprocess.run([cli, "-p", str(port), *args], stdout=subprocess.PIPE, text=True,
                             timeout=30, check=True)
        return res.stdout.strip()

    async def main() -> None:
        server = await ekiden.serve("127.0.0.1:0", service=ekiden.Service(kv_service()), codec="resp")
        port = server.local_addr[1]
        assert await in_thread(lambda: rc(port, "PING")) == "PONG"
        assert await in_thread(lambda: rc(port, "SET", "greeting", "hello world")) == "OK"
        assert await in_thread(lambda: rc(port, "GET", "greeting")) == "hello world"
        assert await in_thread(lambda: rc(port, "INCR", "counter")) == "1"
        assert "unknown command" in await in_thread(lambda: rc(port, "FLY"))
        await server.shutdown()

    ekiden.run(main(), workers=2)
