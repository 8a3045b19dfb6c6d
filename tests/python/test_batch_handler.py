"""Batch handlers (ekiden.Service(handler, batch=True)): one call per batch with
the list of its requests, a list (or tuple) of one response per request back.
These tests check the order of replies, one failing request among others (a
returned exception), a handler that raises or returns something that is not a
list of the right length (every request of that batch fails, the exception is
reported), handlers that await (their batch goes on as a task; a later batch
can wake it), cancellation of every caller of a waiting batch (the task is
cancelled, its finally runs) or of only some (the others still get theirs)."""
from __future__ import annotations

import socket
from typing import Any, List, Sequence

import pytest

import ekiden
from ekiden import resp
from ekiden._ekiden import lib
from ekiden._errors import error_from_code

from test_batch import others, read_until, resp_command, seven_and_eight_fail
from test_serve import in_thread


def reporting() -> List[BaseException]:
    reported: List[BaseException] = []
    ekiden.set_exception_handler(lambda m, e: reported.append(e))
    return reported


@pytest.fixture(autouse=True)
def no_handler() -> Any:
    yield
    ekiden.set_exception_handler(None)


@pytest.mark.parametrize("local", [False, True])
def test_pipelined_replies_in_order(local: bool) -> None:
    """60 pipelined commands: the replies are in request order, and the handler
    was called fewer times than there were requests (one call per batch)."""
    calls: List[int] = []

    def handler(reqs: List[List[bytes]]) -> List[Any]:
        calls.append(len(reqs))
        return [b"r" + r[1] for r in reqs]

    burst = b"".join(resp_command(b"ECHO", b"%d" % i) for i in range(60))
    expected = b"".join(b"$%d\r\nr%d\r\n" % (len(b"r%d" % i), i) for i in range(60))

    def client(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(burst)
            return read_until(s, len(expected))

    async def main() -> None:
        svc = ekiden.Service(handler, batch=True)
        server = await ekiden.serve("127.0.0.1:0", service=svc, codec="resp", local=local)
        port = server.local_addr[1]
        for _ in range(3):
            assert await in_thread(lambda: client(port)) == expected
        await server.shutdown(grace=5.0)

    for flavour in ({"current_thread": True}, {"workers": 2}):
        calls.clear()
        ekiden.run(main(), **flavour)
        assert sum(calls) == 180
        assert len(calls) < 180


def test_resp_values_and_shared_replies() -> None:
    """Every kind of answer a RESP batch handler gives, in one batch: the shared
    replies (OK, PONG, null, 0, 1) and the rest."""

    def handler(reqs: List[List[bytes]]) -> Sequence[Any]:
        values: List[Any] = [resp.Simple("OK"), resp.Simple("PONG"), None, 0, 1, -5, b"", b"bulk",
                             resp.Error("ERR no"), [b"a", 2], resp.Simple("other")]
        return tuple(values[int(r[1])] for r in reqs)

    expected = (b"+OK\r\n+PONG\r\n$-1\r\n:0\r\n:1\r\n:-5\r\n$0\r\n\r\n$4\r\nbulk\r\n-ERR no\r\n"
                b"*2\r\n$1\r\na\r\n:2\r\n+other\r\n")

    def client(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(b"".join(resp_command(b"V", b"%d" % i) for i in range(11)))
            return read_until(s, len(expected))

    async def main() -> None:
        server = await ekiden.serve("127.0.0.1:0", service=ekiden.Service(handler, batch=True),
                                    codec="resp", local=True)
        port = server.local_addr[1]
        assert await in_thread(lambda: client(port)) == expected
        await server.shutdown(grace=5.0)

    ekiden.run(main(), current_thread=True)


def test_a_returned_exception_fails_only_its_request() -> None:
    reported = reporting()
    calls: List[List[int]] = []

    def handler(reqs: List[int]) -> List[Any]:
        calls.append(list(reqs))
        out: List[Any] = []
        for x in reqs:
            if x == 7:
                out.append(ValueError("seven"))
            elif x == 8:
                out.append(error_from_code(lib.EK_ECONNRESET))
            else:
                out.append(x + 100)
        return out

    async def main() -> None:
        await seven_and_eight_fail(ekiden.Service(handler, batch=True))

    ekiden.run(main(), current_thread=True)
    assert sorted(x for c in calls for x in c) == list(range(20))
    assert len(calls) < 20
    assert reported == []  # a returned exception is an answer, not an accident


@pytest.mark.parametrize("bad", ["raise", "none", "short", "long", "unconvertible"])
def test_a_failing_batch(bad: str) -> None:
    """A handler that raises, returns no list or a list of the wrong length:
    every request of its batch fails with EK_EIO and the exception is reported
    once; a response that does not convert fails only its own request."""
    reported = reporting()

    def handler(reqs: List[int]) -> Any:
        if bad == "raise":
            raise KeyError("boom")
        if bad == "none":
            return None
        if bad == "short":
            return reqs[:-1]
        if bad == "long":
            return list(reqs) + [0]
        return [object() if x == 3 else x for x in reqs]

    async def main() -> None:
        svc = ekiden.Service(handler, batch=True, resp=(bad == "unconvertible"))
        tasks = [ekiden.spawn(svc(i)) for i in range(6)]
        for i, t in enumerate(tasks):
            if bad == "unconvertible" and i != 3:
                assert await t == i
                continue
            with pytest.raises(ekiden.EkidenError) as e:
                await t
            assert e.value.code == lib.EK_EIO
        svc.close()

    ekiden.run(main(), current_thread=True)
    want = {"raise": KeyError, "none": TypeError, "short": ValueError, "long": ValueError,
            "unconvertible": TypeError}[bad]
    assert [type(e) for e in reported] == [want]


def test_bad_batch_over_a_connection_answers_what_came_before() -> None:
    """Over RESP a failed request ends the connection after the replies before
    it (-ERR, then close), as a failing plain handler does."""
    reporting()

    def handler(reqs: List[List[bytes]]) -> List[Any]:
        return [ValueError("five") if r[1] == b"5" else resp.Simple("OK") for r in reqs]

    def client(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(b"".join(resp_command(b"X", b"%d" % i) for i in range(10)))
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            return data

    async def main() -> None:
        server = await ekiden.serve("127.0.0.1:0", service=ekiden.Service(handler, batch=True),
                                    codec="resp")
        port = server.local_addr[1]
        data = await in_thread(lambda: client(port))
        assert data.startswith(b"+OK\r\n" * 5 + b"-ERR ")
        await server.shutdown(grace=5.0)

    ekiden.run(main(), workers=1)


def test_a_batch_that_waits_is_woken_by_a_later_batch() -> None:
    """The first batch awaits an event (after asking for its task); a second
    batch, called while the first waits, sets it: both answer, the first with
    the task it saw still running."""
    seen: List[Any] = []

    async def main() -> None:
        ev = ekiden.Event()

        async def handler(reqs: List[str]) -> List[str]:
            if "wait" in reqs:
                t = ekiden.current_task()
                assert t is not None and not t.done()
                seen.append(t)
                await ev.wait()
                assert ekiden.current_task() is t
                return [r + ":woken" for r in reqs]
            ev.set()
            return [r + ":now" for r in reqs]

        svc = ekiden.Service(handler, batch=True)
        first = [ekiden.spawn(svc(x)) for x in ("wait", "a", "b")]
        await ekiden.sleep(0.01)
        assert not any(t.done() for t in first)
        second = await svc("c")
        assert second == "c:now"
        assert [await t for t in first] == ["wait:woken", "a:woken", "b:woken"]
        assert seen[0].done()
        svc.close()

    ekiden.run(main(), current_thread=True)


def test_a_waiting_batch_whose_callers_all_leave_is_cancelled() -> None:
    finished: List[str] = []

    async def main() -> None:
        rt = ekiden.current_runtime()

        async def handler(reqs: List[int]) -> List[int]:
            try:
                await ekiden.sleep(60)
            finally:
                finished.append("finally")
            return reqs

        svc = ekiden.Service(handler, batch=True)
        callers = [ekiden.spawn(svc(i)) for i in range(3)]
        await ekiden.sleep(0.01)
        for t in callers:
            t.cancel()
        for t in callers:
            with pytest.raises(ekiden.CancelledError):
                await t
        for _ in range(100):
            if finished:
                break
            await ekiden.sleep(0.01)
        assert finished == ["finally"]
        assert others(rt) == []
        svc.close()

    ekiden.run(main(), current_thread=True)


def test_one_caller_leaving_a_waiting_batch_leaves_the_others_their_answers() -> None:
    async def main() -> None:
        async def handler(reqs: List[int]) -> List[int]:
            await ekiden.sleep(0.05)
            return [x * 10 for x in reqs]

        svc = ekiden.Service(handler, batch=True)
        callers = [ekiden.spawn(svc(i)) for i in range(3)]
        await ekiden.sleep(0.01)
        callers[1].cancel()
        assert await callers[0] == 0
        with pytest.raises(ekiden.CancelledError):
            await callers[1]
        assert await callers[2] == 20
        with pytest.raises(TimeoutError):  # and a timeout on a batch call
            await ekiden.wait_for(svc(9), 0.001)
        assert await svc(4) == 40
        svc.close()

    ekiden.run(main(), current_thread=True)


def test_a_waiting_batch_that_fails() -> None:
    reported = reporting()

    async def main() -> None:
        async def handler(reqs: List[int]) -> Any:
            await ekiden.sleep(0.001)
            if 0 in reqs:
                raise RuntimeError("late")
            return "not a list"

        svc = ekiden.Service(handler, batch=True)
        for first in (0, 1):
            tasks = [ekiden.spawn(svc(i)) for i in range(first, first + 2)]
            for t in tasks:
                with pytest.raises(ekiden.EkidenError) as e:
                    await t
                assert e.value.code == lib.EK_EIO
        svc.close()

    ekiden.run(main(), current_thread=True)
    assert [type(e) for e in reported] == [RuntimeError, TypeError]


@pytest.mark.parametrize("local", [False, True])
def test_waiting_batches_over_a_connection_keep_the_order(local: bool) -> None:
    """Batches where some wait and some do not, over one pipelined connection:
    replies in request order."""

    async def handler(reqs: List[List[bytes]]) -> List[bytes]:
        if any(int(r[1]) % 2 for r in reqs):
            await ekiden.sleep(0.002)
        return [b"r" + r[1] for r in reqs]

    def client(port: int) -> bytes:
        out = b""
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            for i in range(20):  # one request per write: many small batches
                s.sendall(resp_command(b"E", b"%d" % i))
            expected = b"".join(b"$%d\r\nr%d\r\n" % (len(b"r%d" % i), i) for i in range(20))
            out = read_until(s, len(expected))
            assert out == expected
        return out

    async def main() -> None:
        server = await ekiden.serve("127.0.0.1:0", service=ekiden.Service(handler, batch=True),
                                    codec="resp", local=local)
        port = server.local_addr[1]
        await in_thread(lambda: client(port))
        await server.shutdown(grace=5.0)

    ekiden.run(main(), workers=1)


def test_batch_handler_for_lines() -> None:
    def handler(reqs: List[bytes]) -> List[bytes]:
        return [r.upper() for r in reqs]

    def client(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(b"a\nbb\nccc\n")
            return read_until(s, 9)

    async def main() -> None:
        server = await ekiden.serve("127.0.0.1:0", service=ekiden.Service(handler, batch=True),
                                    codec="lines", local=True)
        port = server.local_addr[1]
        assert await in_thread(lambda: client(port)) == b"A\nBB\nCCC\n"
        await server.shutdown(grace=5.0)

    ekiden.run(main(), current_thread=True)


def test_resp_arrays_that_are_not_all_bulk_strings() -> None:
    """A RESP array with an integer or a null among its elements (a Python
    caller's request; the server codec sends only bulk strings) reaches the
    handler converted the general way, beside the usual ones."""
    seen: List[Any] = []

    def handler(reqs: List[Any]) -> List[Any]:
        seen.extend(reqs)
        return [len(r) for r in reqs]

    async def main() -> None:
        svc = ekiden.Service(handler, batch=True, resp=True)
        reqs: List[Any] = [[b"ECHO", 5], [b"X", None], [b"A", b"b"], [], [b"S", resp.Simple("s")]]
        tasks = [ekiden.spawn(svc(r)) for r in reqs]
        assert [await t for t in tasks] == [2, 2, 2, 0, 2]
        svc.close()

    ekiden.run(main(), current_thread=True)
    assert seen == [[b"ECHO", 5], [b"X", None], [b"A", b"b"], [], [b"S", resp.Simple("s")]]
