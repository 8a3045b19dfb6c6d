"""The batch path of a Python service (ekiden_glue.c, _service._Impl._run_batch):
every request queued at once reaches Python in one call, handlers that complete
without awaiting are answered in that call, and the others go on as tasks that
their response drives. These tests check what a batch must keep: the order of
pipelined replies, one failing handler among others, handlers that await in
the middle of a batch (and wake each other), current_task() and timeouts in a
first step, and cancellation of a connection whose batch is still running."""
from __future__ import annotations

import socket
import struct
from typing import Any, Iterator, List

import pytest

import ekiden
from ekiden import _service, resp
from ekiden._ekiden import lib
from ekiden._errors import error_from_code

from test_serve import in_thread


@pytest.fixture
def batch_sizes(monkeypatch: pytest.MonkeyPatch) -> Iterator[List[int]]:
    """The size of every batch Python is handed while the test runs."""
    sizes: List[int] = []
    run = _service._Impl._run_batch

    def counting(self: Any, b: Any) -> None:
        sizes.append(int(b.n))
        run(self, b)

    monkeypatch.setattr(_service._Impl, "_run_batch", counting)
    yield sizes


def resp_command(*args: bytes) -> bytes:
    out = b"*%d\r\n" % len(args)
    for a in args:
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def read_until(s: socket.socket, expected: int) -> bytes:
    data = b""
    while len(data) < expected:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def others(rt: Any) -> List[Any]:
    """The Python tasks of rt besides this one and the runtime's own."""
    me = ekiden.current_task()
    return [t for t in rt.tasks() if t is not me and t.get_name() != "ekiden-signals"]


def test_concurrent_calls_are_one_batch(batch_sizes: List[int]) -> None:
    """50 callers on the run thread queue their requests before the buffer's
    worker runs: one flush answers them all, in one call into Python."""

    def double(x: Any) -> Any:  # a plain function is a handler too
        return x * 2

    async def main() -> None:
        svc = ekiden.Service(double)
        tasks = [ekiden.spawn(svc(i)) for i in range(50)]
        assert [await t for t in tasks] == [2 * i for i in range(50)]
        svc.close()

    ekiden.run(main(), current_thread=True)
    assert sum(batch_sizes) == 50
    assert max(batch_sizes) >= 2  # one call per request would be 50 batches of 1


@pytest.mark.parametrize("local", [False, True])
def test_pipelined_replies_keep_their_order(batch_sizes: List[int], local: bool) -> None:
    """A pipelined burst where every third handler awaits (for a time that falls
    with its position) and the rest answer at once: the replies come in
    request order, whoever finished first. local: the server's tasks run on
    the run thread and call the service with no buffer."""

    async def handler(req: List[bytes]) -> Any:
        i = int(req[1])
        if i % 3 == 0:
            await ekiden.sleep(0.001 * (60 - i) / 3)
        return b"r%d" % i

    burst = b"".join(resp_command(b"ECHO", b"%d" % i) for i in range(60))
    expected = b"".join(b"$%d\r\nr%d\r\n" % (len(b"r%d" % i), i) for i in range(60))

    def client(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(burst)
            return read_until(s, len(expected))

    async def main() -> None:
        server = await ekiden.serve("127.0.0.1:0", service=ekiden.Service(handler), codec="resp",
                                    local=local)
        port = server.local_addr[1]
        for _ in range(3):
            assert await in_thread(lambda: client(port)) == expected
        await server.shutdown(grace=5.0)

    for flavour in ({"current_thread": True}, {"workers": 2}):
        batch_sizes.clear()
        ekiden.run(main(), **flavour)
        assert sum(batch_sizes) == 180


async def seven_and_eight_fail(svc: ekiden.Service) -> None:
    """Calls svc with 0..19 at once, whose handler fails 7 (a ValueError:
    EK_EIO) and 8 (ConnectionReset) and answers i + 100 to the others."""
    tasks = [ekiden.spawn(svc(i)) for i in range(20)]
    for i, t in enumerate(tasks):
        if i == 7:
            with pytest.raises(ekiden.EkidenError) as e:
                await t
            assert e.value.code == lib.EK_EIO
        elif i == 8:
            with pytest.raises(ekiden.ConnectionReset):
                await t
        else:
            assert await t == i + 100
    svc.close()


def test_an_exception_fails_only_its_own_request(batch_sizes: List[int]) -> None:
    reported: List[BaseException] = []

    async def handler(x: Any) -> Any:
        if x == 7:
            raise ValueError("seven")
        if x == 8:
            raise error_from_code(lib.EK_ECONNRESET)
        return x + 100

    async def main() -> None:
        await seven_and_eight_fail(ekiden.Service(handler))

    ekiden.set_exception_handler(lambda m, e: reported.append(e))
    try:
        ekiden.run(main(), current_thread=True)
    finally:
        ekiden.set_exception_handler(None)
    # The ValueError is reported once; an EkidenError is the handler's answer.
    assert [type(e) for e in reported] == [ValueError]
    assert max(batch_sizes) >= 2


def test_exception_in_a_pipelined_burst_answers_what_came_before() -> None:
    """Over a connection a failed response ends it (the server writes -ERR and
    closes): the replies before it are written, in order."""
    ekiden.set_exception_handler(lambda m, e: None)

    async def handler(req: List[bytes]) -> Any:
        if req[1] == b"5":
            raise ValueError("five")
        return resp.Simple("OK")

    def client(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(b"".join(resp_command(b"X", b"%d" % i) for i in range(10)))
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            return data

    async def main() -> None:
        server = await ekiden.serve("127.0.0.1:0", service=ekiden.Service(handler), codec="resp")
        port = server.local_addr[1]
        data = await in_thread(lambda: client(port))
        assert data.startswith(b"+OK\r\n" * 5 + b"-ERR ")
        await server.shutdown(grace=5.0)

    try:
        ekiden.run(main(), workers=1)
    finally:
        ekiden.set_exception_handler(None)


def test_handlers_that_await_in_the_middle_of_a_batch(batch_sizes: List[int]) -> None:
    """Request 3 waits for an event that request 6 of the same batch sets;
    request 4 asks for its task and sleeps under a timeout; request 5 times out;
    the others answer at once. Each waits on its own waker after the batch."""
    seen: List[Any] = []

    async def main() -> None:
        ev = ekiden.Event()

        async def handler(x: int) -> Any:
            if x == 3:
                await ev.wait()
                return "woken"
            if x == 4:
                t = ekiden.current_task()
                assert t is not None and not t.done()
                seen.append(t)
                async with ekiden.timeout(30.0):
                    await ekiden.sleep(0.01)
                return "slept"
            if x == 5:
                async with ekiden.timeout(0.01):
                    await ev.wait()
                    await ekiden.sleep(30.0)
                return "never"
            if x == 6:
                ev.set()
            if x == 7:
                # A first step that completes, having asked for its task.
                t = ekiden.current_task()
                assert t is not None
                seen.append(t)
            return x

        svc = ekiden.Service(handler)
        tasks = [ekiden.spawn(svc(i)) for i in range(10)]
        results: List[Any] = []
        for t in tasks:
            try:
                results.append(await t)
            except ekiden.EkidenError as e:
                results.append(e.name)
        assert results == [0, 1, 2, "woken", "slept", "ETIMEDOUT", 6, 7, 8, 9]
        assert all(t.done() for t in seen) and len(seen) == 2
        svc.close()
        await ekiden.sleep(0)
        rt = ekiden.current_runtime()
        assert others(rt) == []

    ekiden.run(main(), current_thread=True)
    assert max(batch_sizes) >= 2


class Later:
    """An awaitable that is no coroutine: it suspends once, then gives value."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Any:
        yield from ekiden.sleep(0).__await__()
        return self.value


class Box:
    """A value of a type the glue does not know (neither plain nor awaitable)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Box)

    def __hash__(self) -> int:
        return 1


def test_every_kind_of_first_step_in_one_batch(batch_sizes: List[int]) -> None:
    """The glue steps coroutines itself (_c_call_each) and leaves the rest to
    _Impl: in one batch, a plain def's value, a coroutine that returns, one
    that raises after asking for its task, one that raises at once, an
    awaitable that is no coroutine (suspending and completing later), a
    value of a type of its own, and a plain def that raises."""
    seen: List[Any] = []

    async def main() -> None:
        async def coro(x: int) -> Any:
            if x == 1:
                return "one"
            if x == 2:
                t = ekiden.current_task()
                assert t is not None
                seen.append(t)
                raise KeyError("two")
            raise error_from_code(int(lib.EK_ETIMEDOUT))

        def handler(x: int) -> Any:
            if x == 0:
                return "zero"
            if x in (1, 2, 3):
                return coro(x)
            if x == 4:
                return Later("four")
            if x == 5:
                return Box()
            raise ValueError("six")

        svc = ekiden.Service(handler)
        tasks = [ekiden.spawn(svc(i)) for i in range(7)]
        results: List[Any] = []
        for t in tasks:
            try:
                results.append(await t)
            except ekiden.EkidenError as e:
                results.append(e.name)
        assert results == ["zero", "one", "EIO", "ETIMEDOUT", "four", Box(), "EIO"]
        assert len(seen) == 1 and seen[0].done()
        svc.close()
        await ekiden.sleep(0)
        assert others(ekiden.current_runtime()) == []

    reported: List[str] = []
    ekiden.set_exception_handler(lambda msg, exc: reported.append(type(exc).__name__))
    try:
        ekiden.run(main(), current_thread=True)
    finally:
        ekiden.set_exception_handler(None)
    assert max(batch_sizes) == 7
    assert sorted(reported) == ["KeyError", "ValueError"]  # not the EkidenError


@pytest.mark.parametrize("local", [False, True])
def test_cancelling_a_connection_mid_batch_cancels_its_handlers(batch_sizes: List[int],
                                                                 local: bool) -> None:
    """A pipelined burst where some handlers wait forever; the client resets the
    connection: those handlers are cancelled at their await (their finally
    blocks run), and nothing of theirs is left."""
    cancelled: List[int] = []
    started: List[int] = []

    async def main() -> None:
        forever = ekiden.Event()

        async def handler(req: bytes) -> bytes:
            i = int(req)
            started.append(i)
            if i % 3 == 0:
                try:
                    await forever.wait()
                except ekiden.CancelledError:
                    cancelled.append(i)
                    raise
            return req

        rt = ekiden.current_runtime()
        server = await ekiden.serve("127.0.0.1:0", service=ekiden.Service(handler), codec="lines",
                                    local=local)
        base = rt.metrics()["TASKS_ALIVE"]
        port = server.local_addr[1]
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(b"".join(b"%d\n" % i for i in range(12)))
        for _ in range(3000):  # until every handler has had its first step
            if len(started) == 12:
                break
            await ekiden.sleep(0.01)
        assert sorted(started) == list(range(12))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # a reset
        for _ in range(3000):
            if len(cancelled) == 4 and rt.metrics()["TASKS_ALIVE"] <= base:
                break
            await ekiden.sleep(0.01)
        assert sorted(cancelled) == [0, 3, 6, 9]
        assert others(rt) == []
        assert rt.metrics()["TASKS_ALIVE"] <= base
        await server.shutdown(grace=5.0)

    ekiden.run(main(), workers=1)
    assert sum(batch_sizes) == 12
