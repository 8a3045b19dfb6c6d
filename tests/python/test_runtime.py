"""ekiden.run, tasks, cancellation, TaskGroup, time, errors."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any, List, Tuple

import pytest

import ekiden
from conftest import open_fds

if sys.version_info < (3, 11):  # Python 3.9/3.10: the backport the package depends on there
    from exceptiongroup import BaseExceptionGroup


def _sigint_default() -> None:
    """In the child before exec: SIGINT's default action, which Python turns into
    KeyboardInterrupt. A test command started as a background job (nohup, `&`
    in a script) has SIGINT ignored, and an ignored signal stays ignored across
    exec, so the child would never see the Ctrl-C this test sends."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def alive() -> int:
    return ekiden.current_runtime().metrics()["TASKS_ALIVE"]


# -- run ----------------------------------------------------------------------

def test_run_returns_the_result() -> None:
    async def main() -> int:
        return 42

    assert ekiden.run(main()) == 42


def test_run_raises_the_exception() -> None:
    async def main() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        ekiden.run(main())


def test_run_checks_its_arguments() -> None:
    with pytest.raises(TypeError):
        ekiden.run(42)  # type: ignore[arg-type]

    async def main() -> None:
        pass

    for bad in (0, 2000, -1):
        c = main()
        with pytest.raises(ValueError):
            ekiden.run(c, workers=bad)
    c = main()
    with pytest.raises(TypeError):
        ekiden.run(c, workers="2")  # type: ignore[arg-type]


def test_run_inside_run_is_refused() -> None:
    async def inner() -> None:
        pass

    async def main() -> None:
        with pytest.raises(RuntimeError):
            ekiden.run(inner())

    ekiden.run(main())


def test_operations_outside_run_raise() -> None:
    with pytest.raises(RuntimeError):
        ekiden.current_runtime()
    coro = ekiden.sleep(0.01)
    with pytest.raises(RuntimeError):
        coro.send(None)
    coro.close()
    c2 = ekiden.sleep(0)
    with pytest.raises(RuntimeError):
        ekiden.spawn(c2)
    c2.close()


def test_workers_and_current_thread_flavour() -> None:
    async def main() -> Tuple[int, int]:
        await ekiden.sleep(0.001)
        return ekiden.current_runtime().workers, threading.get_ident()

    w, tid = ekiden.run(main(), workers=3)
    assert w == 3 and tid == threading.get_ident()
    w, tid = ekiden.run(main(), current_thread=True)
    assert w == 1 and tid == threading.get_ident()


def test_metrics_snapshot() -> None:
    async def main() -> dict[str, int]:
        return ekiden.current_runtime().metrics()

    m = ekiden.run(main(), workers=2)
    assert m["WORKERS"] == 2
    assert m["TASKS_ALIVE"] >= 1 and m["TASKS_SPAWNED"] >= 1


def test_run_from_another_thread() -> None:
    results: List[int] = []

    async def main() -> int:
        await ekiden.sleep(0.01)
        return 7

    th = threading.Thread(target=lambda: results.append(ekiden.run(main())))
    th.start()
    th.join(30)
    assert results == [7]


# -- sleep / time ---------------------------------------------------------------

def test_sleep_waits_at_least_the_duration() -> None:
    async def main() -> float:
        t0 = time.monotonic()
        await ekiden.sleep(0.05)
        return time.monotonic() - t0

    assert ekiden.run(main()) >= 0.049


def test_sleep_zero_yields_to_other_tasks() -> None:
    order: List[str] = []

    async def other() -> None:
        order.append("other")

    async def main() -> None:
        t = ekiden.spawn(other())
        order.append("main before")
        await ekiden.sleep(0)
        order.append("main after")
        await t

    ekiden.run(main())
    assert order == ["main before", "other", "main after"]


def test_sleep_rejects_bad_arguments() -> None:
    async def main() -> None:
        with pytest.raises(TypeError):
            await ekiden.sleep("1")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            await ekiden.sleep(float("nan"))
        await ekiden.sleep(-1)  # negative: like 0

    ekiden.run(main())


def test_runtime_clock_moves() -> None:
    async def main() -> float:
        rt = ekiden.current_runtime()
        t0 = rt.time()
        await ekiden.sleep(0.02)
        return rt.time() - t0

    assert ekiden.run(main()) >= 0.019


def test_interval_ticks_and_closes() -> None:
    async def main() -> List[float]:
        ticks = []
        iv = ekiden.interval(0.01)
        async for t in iv:
            ticks.append(t)
            if len(ticks) == 4:
                break
        iv.close()
        with pytest.raises(ekiden.Closed):
            await iv.tick()
        with pytest.raises(ValueError):
            ekiden.interval(0)
        with pytest.raises(ValueError):
            ekiden.interval(1, missed="never")
        return ticks

    ticks = ekiden.run(main())
    assert len(ticks) == 4
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert all(abs(g - 0.01) < 1e-6 for g in gaps), gaps


# -- timeout / wait_for -----------------------------------------------------------

def test_timeout_raises_timeout_error() -> None:
    async def main() -> None:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError) as info:
            async with ekiden.timeout(0.03) as cm:
                await ekiden.sleep(5)
        assert cm.expired()
        assert isinstance(info.value, ekiden.TimedOut)
        assert info.value.name == "ETIMEDOUT"
        assert 0.029 <= time.monotonic() - t0 < 4

    ekiden.run(main())


def test_timeout_not_reached_and_none() -> None:
    async def main() -> int:
        async with ekiden.timeout(5) as cm:
            await ekiden.sleep(0.001)
        assert not cm.expired()
        async with ekiden.timeout(None):
            await ekiden.sleep(0.001)
        return alive()

    ekiden.run(main())


def test_nested_timeouts_inner_and_outer() -> None:
    async def main() -> List[str]:
        seen = []
        async with ekiden.timeout(5):
            try:
                async with ekiden.timeout(0.02):
                    await ekiden.sleep(5)
            except TimeoutError:
                seen.append("inner")
        try:
            async with ekiden.timeout(0.02):
                async with ekiden.timeout(5):
                    await ekiden.sleep(5)
        except TimeoutError:
            seen.append("outer")
        return seen

    assert ekiden.run(main()) == ["inner", "outer"]


def test_wait_for() -> None:
    async def slow() -> int:
        await ekiden.sleep(5)
        return 1

    async def fast() -> int:
        await ekiden.sleep(0.001)
        return 2

    async def main() -> None:
        assert await ekiden.wait_for(fast(), 5) == 2
        with pytest.raises(TimeoutError):
            await ekiden.wait_for(slow(), 0.02)
        t = ekiden.spawn(slow())
        with pytest.raises(TimeoutError):
            await ekiden.wait_for(t, 0.02)
        with pytest.raises(ekiden.CancelledError):
            await t
        assert t.cancelled()

    ekiden.run(main())


# -- tasks ----------------------------------------------------------------------

def test_spawn_and_await_results() -> None:
    async def child(i: int) -> int:
        await ekiden.sleep(0.001 * (5 - i))
        return i * i

    async def main() -> List[int]:
        tasks = [ekiden.spawn(child(i), name=f"c{i}") for i in range(5)]
        assert tasks[0].get_name() == "c0"
        return [await t for t in tasks]

    assert ekiden.run(main()) == [0, 1, 4, 9, 16]


def test_task_states_and_result() -> None:
    async def child() -> str:
        await ekiden.sleep(0.01)
        return "x"

    async def main() -> None:
        t = ekiden.spawn(child())
        assert not t.done()
        with pytest.raises(ekiden.InvalidStateError):
            t.result()
        assert await t == "x"
        assert t.done() and not t.cancelled()
        assert t.result() == "x" and t.exception() is None
        assert await t == "x"  # awaiting again gives the same result
        assert not t.cancel()

    ekiden.run(main())


def test_task_exception_is_raised_where_awaited() -> None:
    async def child() -> None:
        await ekiden.sleep(0.001)
        raise KeyError("k")

    async def main() -> None:
        t = ekiden.spawn(child())
        with pytest.raises(KeyError):
            await t
        assert isinstance(t.exception(), KeyError)

    ekiden.run(main())


def test_many_awaiters_of_one_task() -> None:
    async def child() -> int:
        await ekiden.sleep(0.01)
        return 5

    async def waiter(t: ekiden.Task[int]) -> int:
        return await t

    async def main() -> List[int]:
        t = ekiden.spawn(child())
        ws = [ekiden.spawn(waiter(t)) for _ in range(10)]
        return [await w for w in ws]

    assert ekiden.run(main()) == [5] * 10


def test_spawn_needs_a_coroutine() -> None:
    async def main() -> None:
        with pytest.raises(TypeError):
            ekiden.spawn(lambda: None)  # type: ignore[arg-type]

    ekiden.run(main())


def test_unretrieved_exception_is_reported_once() -> None:
    reports: List[Tuple[str, BaseException]] = []
    ekiden.set_exception_handler(lambda msg, exc: reports.append((msg, exc)))
    try:
        async def bad() -> None:
            raise RuntimeError("lost?")

        async def main() -> None:
            ekiden.spawn(bad())
            await ekiden.sleep(0.01)

        ekiden.run(main())
        import gc
        gc.collect()
    finally:
        ekiden.set_exception_handler(None)
    assert len(reports) == 1
    assert "never retrieved" in reports[0][0]
    assert isinstance(reports[0][1], RuntimeError)


def test_retrieved_exception_is_not_reported() -> None:
    reports: List[Any] = []
    ekiden.set_exception_handler(lambda msg, exc: reports.append(exc))
    try:
        async def bad() -> None:
            raise RuntimeError("seen")

        async def main() -> None:
            t = ekiden.spawn(bad())
            with pytest.raises(RuntimeError):
                await t

        ekiden.run(main())
        import gc
        gc.collect()
    finally:
        ekiden.set_exception_handler(None)
    assert reports == []


def test_leftover_tasks_are_cancelled_when_run_returns() -> None:
    events: List[str] = []

    async def forever() -> None:
        try:
            await ekiden.sleep(100)
        finally:
            events.append("finally")

    async def main() -> None:
        for _ in range(3):
            ekiden.spawn(forever())
        await ekiden.sleep(0.01)

    ekiden.run(main())
    assert events == ["finally"] * 3


def test_ten_thousand_concurrent_tasks() -> None:
    n = 10_000
    done = [0]

    async def child(i: int) -> int:
        await ekiden.sleep(0.02)
        await ekiden.sleep(0)
        done[0] += 1
        return i

    async def main() -> Tuple[int, int, int]:
        base = alive()
        tasks = [ekiden.spawn(child(i)) for i in range(n)]
        peak = alive()
        total = 0
        for t in tasks:
            total += await t
        del tasks
        return base, peak, total

    base, peak, total = ekiden.run(main(), workers=2)
    assert done[0] == n
    assert total == n * (n - 1) // 2
    assert peak >= base + n


# -- cancellation -------------------------------------------------------------------

def test_cancel_at_sleep_releases_the_timer_and_task() -> None:
    events: List[str] = []

    async def sleeper() -> None:
        try:
            await ekiden.sleep(100)
        finally:
            events.append("finally")

    async def main() -> None:
        rt = ekiden.current_runtime()
        base = rt.metrics()
        t = ekiden.spawn(sleeper())
        await ekiden.sleep(0.01)
        assert rt.metrics()["TIMERS"] >= base["TIMERS"] + 1
        assert t.cancel()
        with pytest.raises(ekiden.CancelledError):
            await t
        assert t.cancelled()
        await ekiden.sleep(0.01)
        m = rt.metrics()
        assert m["TASKS_ALIVE"] == base["TASKS_ALIVE"]
        assert m["TIMERS"] <= base["TIMERS"] + 1  # only main's own sleep may be registered

    ekiden.run(main(), handle_sigint=False)
    assert events == ["finally"]


def test_cancel_before_first_poll() -> None:
    ran: List[int] = []

    async def child() -> None:
        ran.append(1)

    async def main() -> None:
        t = ekiden.spawn(child())
        t.cancel()
        with pytest.raises(ekiden.CancelledError):
            await t

    ekiden.run(main())
    assert ran == []


def test_cancel_at_task_await_and_timeout() -> None:
    async def inner() -> None:
        await ekiden.sleep(100)

    async def outer(t: ekiden.Task[None]) -> None:
        async with ekiden.timeout(50):
            await t

    async def main() -> None:
        base = alive()
        t1 = ekiden.spawn(inner())
        t2 = ekiden.spawn(outer(t1))
        await ekiden.sleep(0.01)
        t2.cancel()
        with pytest.raises(ekiden.CancelledError):
            await t2
        assert not t1.done()  # cancelling the awaiter does not cancel the awaited
        t1.cancel()
        with pytest.raises(ekiden.CancelledError):
            await t1
        await ekiden.sleep(0)
        assert alive() == base

    ekiden.run(main())


def test_self_cancel_and_catching_cancellation() -> None:
    async def child() -> str:
        ekiden.current_task().cancel()  # type: ignore[union-attr]
        try:
            await ekiden.sleep(10)
        except ekiden.CancelledError:
            return "caught"
        return "not cancelled"

    async def main() -> str:
        return await ekiden.spawn(child())

    assert ekiden.run(main()) == "caught"


# -- TaskGroup ----------------------------------------------------------------------

def test_taskgroup_waits_for_children() -> None:
    async def child(i: int) -> int:
        await ekiden.sleep(0.001 * i)
        return i

    async def main() -> List[int]:
        async with ekiden.TaskGroup() as tg:
            ts = [tg.spawn(child(i)) for i in range(5)]
        assert all(t.done() for t in ts)
        return [t.result() for t in ts]

    assert ekiden.run(main()) == [0, 1, 2, 3, 4]


def test_taskgroup_one_failure_cancels_siblings_and_body() -> None:
    events: List[str] = []

    async def fails() -> None:
        await ekiden.sleep(0.01)
        raise ValueError("child")

    async def sibling() -> None:
        try:
            await ekiden.sleep(100)
        finally:
            events.append("sibling cancelled")

    async def main() -> None:
        with pytest.raises(ValueError, match="child"):
            async with ekiden.TaskGroup() as tg:
                tg.spawn(fails())
                tg.spawn(sibling())
                try:
                    await ekiden.sleep(100)
                finally:
                    events.append("body cancelled")
        events.append("after")

    ekiden.run(main())
    assert sorted(events[:2]) == ["body cancelled", "sibling cancelled"] and events[2] == "after"


def test_taskgroup_several_failures_raise_an_exception_group() -> None:
    async def fails(i: int) -> None:
        try:
            await ekiden.sleep(0.01 * i)
        finally:
            raise ValueError(i)  # also when cancelled by the sibling's failure

    async def main() -> None:
        async with ekiden.TaskGroup() as tg:
            tg.spawn(fails(1))
            tg.spawn(fails(2))

    with pytest.raises(BaseExceptionGroup) as info:
        ekiden.run(main())
    assert sorted(e.args[0] for e in info.value.exceptions) == [1, 2]


def test_taskgroup_body_error_cancels_children() -> None:
    async def child() -> None:
        await ekiden.sleep(100)

    async def main() -> None:
        with pytest.raises(KeyError):
            async with ekiden.TaskGroup() as tg:
                t = tg.spawn(child())
                await ekiden.sleep(0)
                raise KeyError("body")
        assert t.cancelled()

    ekiden.run(main())


# -- errors ----------------------------------------------------------------------

def test_error_hierarchy() -> None:
    from ekiden._ekiden import lib
    e = ekiden.error_from_code(lib.EK_ECONNREFUSED)
    assert isinstance(e, ekiden.EkidenError) and isinstance(e, ConnectionRefusedError)
    assert isinstance(e, OSError)
    assert e.code == -111 and e.name == "ECONNREFUSED" and e.errno == 111
    assert "ECONNREFUSED" in str(e)
    assert isinstance(ekiden.error_from_code(lib.EK_EPIPE), BrokenPipeError)
    assert isinstance(ekiden.error_from_code(lib.EK_ETIMEDOUT), TimeoutError)
    assert isinstance(ekiden.error_from_code(lib.EK_ECONNRESET), ConnectionResetError)
    assert isinstance(ekiden.error_from_code(lib.EK_EINVAL), ValueError)
    closed = ekiden.error_from_code(lib.EK_ECLOSED)
    assert type(closed) is ekiden.Closed and closed.errno is None and closed.name == "ECLOSED"
    other = ekiden.error_from_code(lib.EK_EMSGSIZE)
    assert type(other) is ekiden.EkidenError and other.name == "EMSGSIZE"
    unknown = ekiden.error_from_code(-3999)
    assert unknown.name == "UNKNOWN"
    import pickle
    again = pickle.loads(pickle.dumps(e))
    assert type(again) is type(e) and again.code == e.code


# -- interrupt -----------------------------------------------------------------------

def test_keyboard_interrupt_cancels_tasks_and_runs_finally(tmp_path: Any) -> None:
    script = tmp_path / "interrupt.py"
    script.write_text(textwrap.dedent("""
        import sys, ekiden
        async def worker(i):
            try:
                await ekiden.sleep(100)
            finally:
                print("finally", i, flush=True)
        async def main():
            for i in range(3):
                ekiden.spawn(worker(i))
            print("ready", flush=True)
            try:
                await ekiden.sleep(100)
            finally:
                print("main finally", flush=True)
        try:
            ekiden.run(main())
        except KeyboardInterrupt:
            print("KeyboardInterrupt", flush=True)
            sys.exit(3)
    """))
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                         preexec_fn=_sigint_default)
    assert p.stdout is not None
    assert p.stdout.readline().strip() == "ready"
    time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=30)
    assert p.returncode == 3, out
    lines = out.split("\n")
    assert sorted(lines[:4]) == ["finally 0", "finally 1", "finally 2", "main finally"]
    assert lines[4] == "KeyboardInterrupt"


SIGINT_WHILE_PARKED = """
import signal, sys, ekiden
signal.signal(signal.SIGINT, signal.default_int_handler)  # a background job may ignore it
async def main():
    listener = await ekiden.TcpListener.bind("127.0.0.1:0")
    try:
        # Parked on an accept that never comes: no timer anywhere in the runtime
        # (the Ctrl-C handling needs none), so only the signal can wake the thread.
        print("ready", ekiden.current_runtime().metrics()["TIMERS"], flush=True)
        await listener.accept()
    finally:
        print("main finally", flush=True)
try:
    ekiden.run(main(), **FLAVOUR)
except KeyboardInterrupt:
    print("KeyboardInterrupt", signal.set_wakeup_fd(-1), flush=True)
    sys.exit(3)
"""


@pytest.mark.parametrize("flavour", ["dict(workers=2)", "dict(current_thread=True)"])
def test_sigint_wakes_a_parked_run_at_once(tmp_path: Any, flavour: str) -> None:
    # SIGINT reaches the run thread through signal.set_wakeup_fd and a reactor
    # socket: with no timer registered, a thread parked in C (on its futex, or in
    # epoll_wait for the current-thread flavour) still gets back to Python and
    # raises KeyboardInterrupt; the wake-up fd is restored when run returns.
    script = tmp_path / "sigint.py"
    script.write_text(SIGINT_WHILE_PARKED.replace("**FLAVOUR", f"**{flavour}"))
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    try:
        assert p.stdout.readline().split() == ["ready", "0"]
        for _ in range(2):  # a second Ctrl-C while the first is handled changes nothing
            p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 3, out
    assert out.split("\n")[:2] == ["main finally", "KeyboardInterrupt -1"]


def test_run_restores_the_wakeup_fd() -> None:
    # run installs its own wake-up fd only for the time it runs.
    r, w = os.pipe()
    os.set_blocking(w, False)
    old = signal.set_wakeup_fd(w)
    try:
        async def main() -> int:
            await ekiden.sleep(0.05)  # the signal task has started
            cur = signal.set_wakeup_fd(-1)  # what run installed
            signal.set_wakeup_fd(cur)
            return cur

        inside = ekiden.run(main())
        assert signal.set_wakeup_fd(w) == w
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            assert inside not in (-1, w)
    finally:
        signal.set_wakeup_fd(old)
        os.close(r)
        os.close(w)


def test_run_leaves_no_descriptors_or_threads() -> None:
    before = open_fds()
    threads = threading.active_count()

    async def main() -> None:
        for _ in range(10):
            ekiden.spawn(ekiden.sleep(0.001))
        await ekiden.sleep(0.01)

    for _ in range(3):
        ekiden.run(main(), workers=2)
    assert open_fds() == before
    assert threading.active_count() == threads
    assert os.getpid() > 0


# -- the park (await _PENDING): the glue's one-yield iterator ------------------

def test_the_glue_installs_each_function_in_its_own_module() -> None:
    from ekiden import _runtime, _service
    from ekiden._ekiden import lib

    assert hasattr(_runtime, "_c_wait")
    for name in ("_c_setup", "_c_requests", "_c_reply"):
        assert hasattr(_service, name) and not hasattr(_runtime, name)
    assert not hasattr(_service, "_c_wait")
    assert lib.ekpy_io_install(b"ekiden._service", 7) == -1  # no such set
    assert not hasattr(_service, "_c_wait")



def test_a_park_yields_once_and_each_await_has_its_own() -> None:
    from ekiden import _runtime

    assert _runtime._Pending.__await__ is _runtime._c_wait  # the glue's, not the generator
    a = _runtime._PENDING.__await__()
    b = _runtime._PENDING.__await__()
    assert a is not b and iter(a) is a
    assert next(a) is None
    assert next(b) is None  # a's state is its own
    for it in (a, b, a):
        with pytest.raises(StopIteration):
            next(it)

    order: List[Tuple[int, int]] = []

    async def worker(k: int) -> int:
        for i in range(3):
            order.append((k, i))
            await ekiden.sleep(0)  # a park in each of 50 tasks at once
        return k

    async def main() -> List[int]:
        ts = [ekiden.spawn(worker(k)) for k in range(50)]
        return [await t for t in ts]

    assert ekiden.run(main()) == list(range(50))
    assert sorted(order) == [(k, i) for k in range(50) for i in range(3)]


def test_cancel_at_a_parked_read_is_raised_there_and_the_stream_goes_on() -> None:
    async def main() -> bytes:
        listener = await ekiden.TcpListener.bind(("127.0.0.1", 0))
        client = await ekiden.TcpStream.connect(listener.local_addr)
        server, _ = await listener.accept()
        seen: List[str] = []

        async def reader() -> bytes:
            try:
                await server.read()
            except ekiden.CancelledError:
                seen.append("cancelled at the read")
            return await server.read()  # the same stream, parked again

        t = ekiden.spawn(reader())
        await ekiden.sleep(0.01)
        t.cancel()
        await ekiden.sleep(0.01)
        await client.write_all(b"after")
        data = await t
        assert seen == ["cancelled at the read"]
        client.close()
        server.close()
        listener.close()
        return data

    assert ekiden.run(main()) == b"after"



def test_current_thread_runtime_parks_without_the_gil() -> None:
    # A current-thread runtime keeps the GIL from one task poll to the next
    # (the lease, ekiden_glue.c) and must give it back whenever its thread
    # parks: here each round trip parks the runtime (in epoll_wait) until a
    # plain Python thread, which needs the GIL to run at all, has sent its next
    # line. Holding the GIL through the park would stall both until the
    # timeout below (then TimedOut fails the test).
    import socket

    rounds = 20
    got: List[bytes] = []

    async def main() -> None:
        listener = await ekiden.TcpListener.bind("127.0.0.1:0")
        port = listener.local_addr[1]

        def client() -> None:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
                for i in range(rounds):
                    time.sleep(0.001)  # let the runtime park first
                    c.sendall(b"%02d" % i)
                    got.append(c.recv(2))

        th = threading.Thread(target=client)
        th.start()
        try:
            async with ekiden.timeout(10):
                stream, _peer = await listener.accept()
                async with stream:
                    for _ in range(rounds):
                        await stream.write_all(await stream.read_exact(2))
        finally:
            listener.close()
            th.join(30)

    ekiden.run(main(), current_thread=True)
    assert got == [b"%02d" % i for i in range(rounds)]
