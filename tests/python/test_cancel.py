"""Cancelling a task at every kind of await drops the C object underneath:
afterwards the runtime has no more tasks alive, timers or descriptors than
before, and the primitive still works for others."""
from __future__ import annotations

import gc
from typing import Any, Awaitable, Callable, Dict, List

import pytest

import ekiden
from conftest import open_fds

Setup = Callable[[Dict[str, Any]], Awaitable[Callable[[], Awaitable[Any]]]]


async def s_sleep(env: Dict[str, Any]) -> Callable[[], Awaitable[Any]]:
    return lambda: ekiden.sleep(100)


async def s_timeout(env: Dict[str, Any]) -> Callable[[], Awaitable[Any]]:
    async def f() -> None:
        async with ekiden.timeout(100):
            await ekiden.sleep(100)
    return f


async def s_interval(env: Dict[str, Any]) -> Callable[[], Awaitable[Any]]:
    async def f() -> None:
        iv = ekiden.interval(100)
        await iv.tick()
        await iv.tick()
    return f


async def s_accept(env: Dict[str, Any]) -> Callable[[], Awaitable[Any]]:
    async def f() -> None:
        async with await ekiden.TcpListener.bind("127.0.0.1:0") as l:
            await l.accept()
    return f


async def s_read(env: Dict[str, Any]) -> Callable[[], Awaitable[Any]]:
    a, b = ekiden.UnixStream.pair()
    env["keep"] = a

    async def f() -> None:
        async with b:
            await b.read()
    return f


async def s_readline(env: Dict[str, Any]) -> Callable[[], Awaitable[Any]]:
    a, b = ekiden.UnixStream.pair()
    env["keep"] = a
    await a.write_all(b"partial line")

    async def f() -> None:
        async with b:
            await b.readline()
    return f


async def s_write(env: Dict[str, Any]) -> Callable[[], Awaitable[Any]]:
    a, b = ekiden.UnixStream.pair()
    env["keep"] = b  # never reads: the writer fills the buffers and waits

    async def f() -> None:
        async with a:
            while True:
                await a.write_all(b"x" * 1_000_000)
    return f


async def s_connect(env: Dict[str, Any]) -> Callable[[], Awaitable[Any]]:
    async def f() -> None:
        s = await ekiden.TcpStream.connect("localhost", 1)
        s.close()
    return f


async def s_resolve(env: Dict[str, Any]) -> Callable[[], Awaitable[Any]]:
    return lambda: ekiden.resolve("localhost", 80)


async def s_udp_recv(env: Dict[str, Any]) -> Callable[[], Awaitable[Any]]:
    async def f() -> None:
        async with await ekiden.UdpSocket.bind("127.0.0.1:0") as u:
            await u.recv_from()
    return f


async def s_channel_recv(env: Dict[str, Any]) -> Callable[[], Awaitable[Any]]:
    ch: ekiden.Channel[int] = ekiden.Channel()
    env["ch"] = ch
    return ch.recv


async def s_channel_send(env: Dict[str, Any]) -> Callable[[], Awaitable[Any]]:
    ch: ekiden.Channel[int] = ekiden.Channel(1)
    ch.try_send(0)
    env["ch"] = ch
    return lambda: ch.send(1)


async def s_oneshot(env: Dict[str, Any]) -> Callable[[], Awaitable[Any]]:
    o: ekiden.Oneshot[int] = ekiden.Oneshot()
    env["o"] = o
    return o.recv


async def s_semaphore(env: Dict[str, Any]) -> Callable[[], Awaitable[Any]]:
    sem = ekiden.Semaphore(0)
    env["sem"] = sem
    return sem.acquire


async def s_lock(env: Dict[str, Any]) -> Callable[[], Awaitable[Any]]:
    lock = ekiden.Lock()
    await lock.acquire()
    env["lock"] = lock
    return lock.acquire


async def s_event(env: Dict[str, Any]) -> Callable[[], Awaitable[Any]]:
    ev = ekiden.Event()
    return ev.wait


async def s_task(env: Dict[str, Any]) -> Callable[[], Awaitable[Any]]:
    other = ekiden.spawn(ekiden.sleep(100))
    env["other"] = other
    return lambda: other


async def s_taskgroup(env: Dict[str, Any]) -> Callable[[], Awaitable[Any]]:
    async def f() -> None:
        async with ekiden.TaskGroup() as tg:
            tg.spawn(ekiden.sleep(100))
            tg.spawn(ekiden.sleep(100))
    return f


SETUPS: List[Setup] = [s_sleep, s_timeout, s_interval, s_accept, s_read, s_readline, s_write,
                       s_connect, s_resolve, s_udp_recv, s_channel_recv, s_channel_send,
                       s_oneshot, s_semaphore, s_lock, s_event, s_task, s_taskgroup]


@pytest.mark.parametrize("setup", SETUPS, ids=[s.__name__[2:] for s in SETUPS])
def test_cancel_at_await_releases_everything(setup: Setup) -> None:
    async def main() -> None:
        rt = ekiden.current_runtime()
        await ekiden.sleep(0.001)
        base = rt.metrics()
        fds = open_fds()
        env: Dict[str, Any] = {}
        op = await setup(env)
        reached = []

        async def victim() -> None:
            try:
                await op()
            finally:
                reached.append("finally")

        t = ekiden.spawn(victim())
        await ekiden.sleep(0.02)
        t.cancel()
        try:
            await t
        except (ekiden.CancelledError, OSError):
            pass  # OSError: connect/resolve finished first (e.g. refused)
        assert reached == ["finally"]
        # The primitive still works for the next user (its place was given back).
        if "ch" in env:
            ch = env["ch"]
            while True:
                try:
                    ch.try_recv()
                except ekiden.Empty:
                    break
            ch.try_send(5)
            assert await ch.recv() == 5
        if "sem" in env:
            env["sem"].release()
            assert env["sem"].try_acquire()
        if "lock" in env:
            env["lock"].release()
            assert await ekiden.wait_for(env["lock"].acquire(), 5)
            env["lock"].release()
        if "o" in env:
            env["o"].send(3)
            assert await env["o"] == 3
        if "other" in env:
            assert not env["other"].done()
            env["other"].cancel()
            with pytest.raises(ekiden.CancelledError):
                await env["other"]
        # Drop what Python still holds (the cancelled task's traceback keeps its
        # frames, and with them the objects, alive) before counting.
        env.clear()
        del t, op
        gc.collect()
        await ekiden.sleep(0.01)
        m = rt.metrics()
        assert m["TASKS_ALIVE"] == base["TASKS_ALIVE"]
        assert m["TIMERS"] <= base["TIMERS"]
        assert open_fds() == fds

    # No SIGINT ticker: its timer comes and goes and would blur the TIMERS count.
    ekiden.run(main(), workers=2, handle_sigint=False)
