"""TCP, UDP, Unix sockets and resolve, with their error paths."""
from __future__ import annotations

import array
import os
import socket
from typing import Any, List, Tuple

import pytest

import ekiden
from conftest import open_fds


async def echo_once(stream: ekiden.TcpStream) -> None:
    async with stream:
        while data := await stream.read(65536):
            await stream.write_all(data)


async def start_echo() -> Tuple[ekiden.TcpListener, ekiden.Task[None]]:
    listener = await ekiden.TcpListener.bind("127.0.0.1:0")

    async def serve() -> None:
        async with ekiden.TaskGroup() as tg:
            async for s in listener:
                tg.spawn(echo_once(s))

    return listener, ekiden.spawn(serve())


def test_tcp_echo_roundtrip(no_fd_leak: None) -> None:
    async def main() -> None:
        listener, server = await start_echo()
        host, port = listener.local_addr
        assert host == "127.0.0.1" and port > 0
        async with await ekiden.TcpStream.connect(listener.local_addr) as c:
            assert c.peer_addr == listener.local_addr
            local = c.local_addr
            assert isinstance(local, tuple) and local[0] == "127.0.0.1"
            c.set_nodelay()
            assert c.nodelay
            c.set_nodelay(False)
            assert not c.nodelay
            assert c.fileno() >= 0
            assert await c.write(b"abc") == 3
            assert await c.read_exact(3) == b"abc"
            payload = os.urandom(1 << 20)
            w = ekiden.spawn(c.write_all(payload))
            got = await c.read_exact(len(payload))
            await w
            assert got == payload
            # any bytes-like object
            await c.write_all(bytearray(b"12"))
            await c.write_all(memoryview(b"xx34yy")[2:4])
            await c.write_all(array.array("B", [53, 54]))
            assert await c.read_exact(6) == b"123456"
            c.shutdown()
            assert await c.read() == b""
        assert c.closed
        with pytest.raises(ekiden.Closed):
            await c.read()
        server.cancel()
        listener.close()

    ekiden.run(main(), workers=2)


def test_connect_forms_and_host_names() -> None:
    async def main() -> None:
        listener, server = await start_echo()
        port = listener.local_addr[1]
        for target in [("127.0.0.1", port), f"127.0.0.1:{port}", ("localhost", port),
                       f"localhost:{port}"]:
            s = await ekiden.TcpStream.connect(target)  # type: ignore[arg-type]
            await s.write_all(b"x")
            assert await s.read(1) == b"x"
            s.close()
        s = await ekiden.TcpStream.connect("localhost", port)
        s.close()
        server.cancel()

    ekiden.run(main())


def test_readline_and_read_into() -> None:
    async def main() -> None:
        a, b = ekiden.UnixStream.pair()
        await a.write_all(b"one\ntwo\nthree")
        a.shutdown()
        assert await b.readline() == b"one\n"
        buf = bytearray(2)
        assert await b.read_into(buf) == 2 and buf == b"tw"
        assert await b.readline() == b"o\n"
        assert await b.readline() == b"three"
        assert await b.readline() == b""
        a.close()
        b.close()

    ekiden.run(main())


def test_read_exact_at_end_of_stream() -> None:
    async def main() -> None:
        a, b = ekiden.UnixStream.pair()
        await a.write_all(b"abc")
        a.close()
        with pytest.raises(ekiden.IncompleteReadError) as info:
            await b.read_exact(10)
        assert info.value.partial == b"abc" and info.value.expected == 10
        assert isinstance(info.value, EOFError)
        b.close()

    ekiden.run(main())


def test_readline_limit() -> None:
    async def main() -> None:
        a, b = ekiden.UnixStream.pair()
        await a.write_all(b"x" * 200)
        with pytest.raises(ValueError):
            await b.readline(limit=100)
        a.close()
        b.close()

    ekiden.run(main())


def test_connect_refused() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there now

    async def main() -> None:
        with pytest.raises(ConnectionRefusedError) as info:
            await ekiden.TcpStream.connect(("127.0.0.1", port))
        assert isinstance(info.value, ekiden.ConnectionRefused)
        assert info.value.name == "ECONNREFUSED"

    ekiden.run(main())


def test_bad_arguments() -> None:
    async def main() -> None:
        with pytest.raises(ekiden.InvalidArgument):
            await ekiden.TcpListener.bind("not an address")
        with pytest.raises(ValueError):
            await ekiden.TcpListener.bind(("127.0.0.1", 70000))
        with pytest.raises(TypeError):
            await ekiden.TcpListener.bind(1234)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await ekiden.TcpListener.bind(("127.0.0.1", "80"))  # type: ignore[arg-type]
        with pytest.raises(ekiden.InvalidArgument):
            await ekiden.TcpListener.bind(("no-such-ip", 80))
        with pytest.raises(ekiden.EkidenError):
            await ekiden.TcpStream.connect("no port here")
        with pytest.raises(TypeError):
            await ekiden.TcpStream.connect(b"127.0.0.1:1")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            await ekiden.TcpStream.connect("127.0.0.1", 99999)
        with pytest.raises(TypeError):
            await ekiden.UnixListener.bind(None)  # type: ignore[arg-type]
        a, b = ekiden.UnixStream.pair()
        with pytest.raises(TypeError):
            await a.write("text is not bytes")
        with pytest.raises(ValueError):
            await a.read(-1)
        with pytest.raises((TypeError, BufferError)):
            await a.read_into(b"read-only")
        assert await a.read(0) == b""
        assert await a.write(b"") == 0
        a.close()
        b.close()

    ekiden.run(main())


def test_address_in_use() -> None:
    async def main() -> None:
        l1 = await ekiden.TcpListener.bind("127.0.0.1:0")
        with pytest.raises(ekiden.AddressInUse) as info:
            await ekiden.TcpListener.bind(l1.local_addr)
        assert info.value.errno == 98
        l2 = await ekiden.TcpListener.bind("127.0.0.1:0", reuse_port=True)
        l3 = await ekiden.TcpListener.bind(l2.local_addr, reuse_port=True)
        assert l3.local_addr == l2.local_addr
        for x in (l1, l2, l3):
            x.close()

    ekiden.run(main())


def test_write_after_peer_closed_is_broken_pipe() -> None:
    async def main() -> None:
        a, b = ekiden.UnixStream.pair()
        b.close()
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for _ in range(100):
                await a.write_all(b"x" * 65536)
        a.close()

    ekiden.run(main())


def test_close_wakes_a_waiting_reader() -> None:
    async def main() -> None:
        a, b = ekiden.UnixStream.pair()

        async def reader() -> bytes:
            return await b.read()

        t = ekiden.spawn(reader())
        await ekiden.sleep(0.01)
        b.close()
        with pytest.raises(ekiden.Closed):
            await t
        a.close()

    ekiden.run(main())


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")

    async def main() -> None:
        try:
            listener = await ekiden.TcpListener.bind("[::1]:0")
        except ekiden.EkidenError as e:
            pytest.skip(f"no IPv6 loopback here: {e}")
        host, port = listener.local_addr
        assert host == "::1"
        acc = ekiden.spawn(listener.accept())
        c = await ekiden.TcpStream.connect(("::1", port))
        s, peer = await acc
        assert isinstance(peer, tuple) and peer[0] == "::1"
        s.close()
        c.close()
        listener.close()

    ekiden.run(main())


def test_udp_send_to_recv_from(no_fd_leak: None) -> None:
    async def main() -> None:
        a = await ekiden.UdpSocket.bind("127.0.0.1:0")
        b = await ekiden.UdpSocket.bind(("127.0.0.1", 0))
        assert await a.send_to(b"ping", b.local_addr) == 4
        data, sender = await b.recv_from()
        assert data == b"ping" and sender == a.local_addr
        b.connect(a.local_addr)
        assert b.peer_addr == a.local_addr
        await b.send(memoryview(b"pong"))
        assert await a.recv() == b"pong"
        await a.send_to(b"x" * 100, b.local_addr)
        data, _ = await b.recv_from(10)
        assert data == b"x" * 10  # truncated
        b.set_broadcast(True)
        a.close()
        b.close()
        with pytest.raises(ekiden.Closed):
            await a.recv()

    ekiden.run(main())


def test_unix_listener_and_stream(tmp_path: Any, no_fd_leak: None) -> None:
    path = str(tmp_path / "s.sock")

    async def main() -> None:
        listener = await ekiden.UnixListener.bind(path)
        assert listener.local_addr == path
        with pytest.raises(ekiden.AddressInUse):
            await ekiden.UnixListener.bind(path)
        acc = ekiden.spawn(listener.accept())
        c = await ekiden.UnixStream.connect(path)
        s, _peer = await acc
        async with s, c:
            await c.write_all(b"hello")
            assert await s.read_exact(5) == b"hello"
        listener.close()
        with pytest.raises(FileNotFoundError):
            await ekiden.UnixStream.connect(str(tmp_path / "missing.sock"))
        abstract = f"@ekiden-test-{os.getpid()}"
        l2 = await ekiden.UnixListener.bind(abstract)
        acc2 = ekiden.spawn(l2.accept())
        c2 = await ekiden.UnixStream.connect(abstract)
        s2, _ = await acc2
        for x in (c2, s2, l2):
            x.close()

    ekiden.run(main())


def test_resolve() -> None:
    async def main() -> None:
        addrs = await ekiden.resolve("localhost", 8080)
        assert addrs and all(p == 8080 for _, p in addrs)
        assert ("127.0.0.1", 8080) in addrs or ("::1", 8080) in addrs
        v4 = await ekiden.resolve("127.0.0.1", 1, family="inet")
        assert v4 == [("127.0.0.1", 1)]
        with pytest.raises(ekiden.ResolveError) as info:
            await ekiden.resolve("no-such-host.invalid", 80)
        assert isinstance(info.value, socket.gaierror)
        with pytest.raises(ValueError):
            await ekiden.resolve("localhost", family="ipx")

    ekiden.run(main())


def test_sockets_left_open_are_released_when_run_returns() -> None:
    kept: List[Any] = []
    before = open_fds()

    async def main() -> None:
        listener, server = await start_echo()
        c = await ekiden.TcpStream.connect(listener.local_addr)
        u = await ekiden.UdpSocket.bind("127.0.0.1:0")
        kept.extend([listener, c, u])  # still referenced after run returns

    ekiden.run(main())
    assert open_fds() == before
    with pytest.raises(ekiden.Closed):
        kept[1].shutdown()


def test_many_connections_plain_socket_clients() -> None:
    import threading

    n = 50
    errors: List[BaseException] = []
    port_box: List[int] = []
    ready = threading.Event()
    done = threading.Event()

    def client(i: int) -> None:
        try:
            with socket.create_connection(("127.0.0.1", port_box[0]), timeout=30) as s:
                msg = f"client {i} ".encode() * 100
                s.sendall(msg)
                got = b""
                while len(got) < len(msg):
                    chunk = s.recv(65536)
                    assert chunk
                    got += chunk
                assert got == msg
        except BaseException as e:  # noqa: B902 - reported below
            errors.append(e)

    async def main() -> None:
        listener, server = await start_echo()
        port_box.append(listener.local_addr[1])
        ready.set()
        while not done.is_set():
            await ekiden.sleep(0.01)
        server.cancel()

    def clients() -> None:
        ready.wait(30)
        ts = [threading.Thread(target=client, args=(i,)) for i in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        done.set()

    th = threading.Thread(target=clients)
    th.start()
    ekiden.run(main(), workers=2)
    th.join()
    assert errors == []
