"""read() and write_all() are C methods of the glue's resource base: the common
call (a read of the stream's read size with nothing read ahead, a write_all of
bytes) makes the C awaitable directly, every other call goes to the Python
method. These tests walk both sides of that split, the operations that complete
without suspending, and cancellation around them."""
from __future__ import annotations

import array
import gc
from typing import Any, List

import pytest

import ekiden
from conftest import open_fds


def test_read_and_write_all_take_every_argument_form(no_fd_leak: None) -> None:
    async def main() -> None:
        a, b = ekiden.UnixStream.pair()
        # The C side: bytes, a read of the default size, given or not.
        await a.write_all(b"one")
        assert await b.read() == b"one"
        await a.write_all(b"two")
        assert await b.read(65536) == b"two"
        # The Python side: other buffer types, a bytes subclass, keywords.
        await a.write_all(bytearray(b"ba"))
        assert await b.read(n=2) == b"ba"
        await a.write_all(memoryview(b"xmvx")[1:3])
        assert await b.read(2) == b"mv"  # another size: the Python path

        class B(bytes):
            pass

        await a.write_all(B(b"sub"))
        assert await b.read() == b"sub"  # back to the default size, then C again
        await a.write_all(data=array.array("B", [65, 66]))
        assert await b.read() == b"AB"
        await a.write_all(b"")
        # Bytes read ahead (readline keeps the rest): read() must give them first.
        await a.write_all(b"line\nrest")
        assert await b.readline() == b"line\n"
        assert await b.read() == b"rest"
        # A size argument that is an int but not exactly one.
        await a.write_all(b"t")
        assert await b.read(True) == b"t"
        a.close()
        b.close()

    ekiden.run(main())


def test_read_and_write_all_bad_arguments() -> None:
    async def main() -> None:
        a, b = ekiden.UnixStream.pair()
        with pytest.raises(TypeError):
            await a.write_all(123)
        with pytest.raises(TypeError):
            await a.write_all("text")
        with pytest.raises(TypeError):
            await a.write_all()  # type: ignore[call-arg]
        with pytest.raises(TypeError):
            await a.write_all(b"x", b"y")  # type: ignore[call-arg]
        with pytest.raises(TypeError):
            await a.write_all(b"x", more=1)  # type: ignore[call-arg]
        with pytest.raises(TypeError):
            await a.read("10")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await a.read(1, 2)  # type: ignore[call-arg]
        with pytest.raises(ValueError):
            await a.read(-1)
        with pytest.raises((OverflowError, ValueError, MemoryError)):
            await a.read(1 << 200)
        # A closed stream: the C path raises as the Python one did.
        a.close()
        with pytest.raises(ekiden.EkidenError):
            await a.read()
        with pytest.raises(ekiden.EkidenError):
            await a.write_all(b"x")
        b.close()
        # Resources that are no streams have neither method.
        listener = await ekiden.TcpListener.bind("127.0.0.1:0")
        assert not hasattr(listener, "read") and not hasattr(listener, "write_all")
        with pytest.raises(AttributeError):
            await listener._c_read_m()
        with pytest.raises(RuntimeError):
            b._c_attach(b._ioa)  # io is set once
        listener.close()

    ekiden.run(main())


def test_operations_that_can_complete_do_not_suspend() -> None:
    async def main() -> None:
        a, b = ekiden.UnixStream.pair()
        await a.write_all(b"ping")
        await ekiden.sleep(0.01)  # the reactor has seen b readable
        ran: List[int] = []

        async def other() -> None:
            ran.append(1)

        t = ekiden.spawn(other())  # ready to run from here on
        await a.write_all(b"!")  # the socket takes it at once
        data = await b.read()  # the bytes are there
        assert ran == []  # neither await let another task run
        assert data == b"ping!"
        await t
        assert ran == [1]
        a.close()
        b.close()

    ekiden.run(main())


def test_cancel_asked_before_a_read_that_completes_loses_no_bytes() -> None:
    async def main() -> None:
        a, b = ekiden.UnixStream.pair()
        await a.write_all(b"more")
        await ekiden.sleep(0.01)
        got: List[Any] = []

        async def victim() -> None:
            me = ekiden.current_task()
            assert me is not None
            me.cancel()
            # The read completes without suspending: its bytes are delivered...
            got.append(await b.read())
            # ...and the cancellation is raised at the next suspension.
            try:
                await ekiden.sleep(5)
            except ekiden.CancelledError:
                got.append("cancelled")
                raise

        v = ekiden.spawn(victim())
        with pytest.raises(ekiden.CancelledError):
            await v
        assert got == [b"more", "cancelled"]
        a.close()
        b.close()

    ekiden.run(main())


@pytest.mark.parametrize("path", ["c", "python"])
def test_cancel_during_a_suspended_read_or_write_loses_no_bytes(path: str) -> None:
    async def main() -> None:
        rt = ekiden.current_runtime()
        await ekiden.sleep(0.001)
        base = rt.metrics()
        fds = open_fds()
        a, b = ekiden.UnixStream.pair()

        async def reader() -> bytes:
            return await (b.read() if path == "c" else b.read(7))

        r = ekiden.spawn(reader())
        await ekiden.sleep(0.01)  # suspended in the read
        r.cancel()
        with pytest.raises(ekiden.CancelledError):
            await r
        await a.write_all(b"after")  # nothing was taken by the cancelled read
        assert await b.read() == b"after"

        big = b"x" * 4_000_000

        async def writer() -> None:
            await a.write_all(big if path == "c" else bytearray(big))

        w = ekiden.spawn(writer())
        await ekiden.sleep(0.01)  # suspended: b reads nothing
        assert not w.done()
        w.cancel()
        with pytest.raises(ekiden.CancelledError):
            await w
        a.close()  # the cancelled write's operation gave the stream back
        b.close()
        del r, w
        gc.collect()
        await ekiden.sleep(0.01)
        assert open_fds() == fds
        assert rt.metrics()["TASKS_ALIVE"] == base["TASKS_ALIVE"]

    ekiden.run(main(), handle_sigint=False)


def test_streams_go_at_once_and_hold_no_type_reference() -> None:
    # The C base's dealloc gives back the reference a heap type's instance holds,
    # and the base makes no cycle: a stream goes with its last reference.
    import sys
    import weakref

    from ekiden import _net

    async def main() -> None:
        gc.collect()
        before = sys.getrefcount(ekiden.UnixStream), sys.getrefcount(_net._ResourceBase)
        for _ in range(200):
            a, b = ekiden.UnixStream.pair()
            await a.write_all(b"x")
            assert await b.read() == b"x"
            a.close()
            b.close()
            ref = weakref.ref(a)
            del a, b
            assert ref() is None  # no garbage collection needed
        gc.collect()
        assert (sys.getrefcount(ekiden.UnixStream), sys.getrefcount(_net._ResourceBase)) == before

    ekiden.run(main())
