"""Services: Python handlers as C services, C middleware around them, and interop
with a C service and a C caller on a worker thread (a small C extension,
tests/python/ektest.c, built here with cffi against the package's library)."""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

import ekiden
from ekiden import middleware
from ekiden._ekiden import ffi, lib

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def ektest(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import importlib

    import cffi  # type: ignore[import-untyped]

    pkg = Path(ekiden.__file__).parent
    out = tmp_path_factory.mktemp("ektest")
    b = cffi.FFI()
    b.cdef("""
        typedef struct ek_service ek_service;
        typedef struct ek_runtime ek_runtime;
        typedef struct ek_join ek_join;
        int ektest_upper_service(ek_service **out);
        int ektest_call_on_worker(ek_runtime *rt, ek_service *svc, const char *data, size_t len,
                                  unsigned long *thread, ek_join **join);
    """)
    b.set_source("_ektest", (Path(__file__).parent / "ektest.c").read_text(),
                 include_dirs=[str(ROOT / "capi" / "include")], library_dirs=[str(pkg)],
                 libraries=[":libekiden.so.0", "pthread"], extra_link_args=[f"-Wl,-rpath,{pkg}"])
    b.compile(tmpdir=str(out))
    sys.path.insert(0, str(out))
    try:
        return importlib.import_module("_ektest")
    finally:
        sys.path.remove(str(out))


def _cast(other_ffi: Any, ctype: str, p: Any) -> Any:
    """A pointer of this package's ffi as a cdata of the test extension's ffi."""
    return other_ffi.cast(ctype, int(ffi.cast("uintptr_t", p)))


async def await_join(jp: Any) -> Any:
    out = ffi.new("void **")
    try:
        while True:
            rc = lib.ek_join_poll(jp, ekiden._runtime._cx(), out)
            if rc == 1:
                await ekiden._runtime._PENDING
                continue
            if rc < 0:
                raise ekiden.error_from_code(rc)
            return out[0]
    finally:
        lib.ek_join_detach(jp)


def test_python_service_called_from_python() -> None:
    threads: List[int] = []

    async def handler(req: Any) -> Any:
        threads.append(threading.get_ident())
        await ekiden.sleep(0.001)
        if isinstance(req, bytes):
            return req[::-1]
        return {"echo": req}

    async def main() -> None:
        svc = ekiden.Service(handler)
        assert svc.shareable and svc.status == "open"
        assert await svc(b"abc") == b"cba"
        assert await svc(bytearray(b"xy")) == b"yx"
        assert await svc({"k": [1, 2]}) == {"echo": {"k": [1, 2]}}
        results = await gather(*[svc(b"%d" % i) for i in range(50)])
        assert results == [(b"%d" % i)[::-1] for i in range(50)]
        svc.close()
        with pytest.raises(ekiden.Closed):
            await svc(b"x")

    ekiden.run(main(), workers=2)
    assert set(threads) == {threading.get_ident()}


async def gather(*aws: Any) -> List[Any]:
    tasks = [ekiden.spawn(a) for a in aws]
    return [await t for t in tasks]


def test_handler_errors_reach_the_caller() -> None:
    reports: List[BaseException] = []
    ekiden.set_exception_handler(lambda msg, e: reports.append(e))

    async def handler(req: Any) -> Any:
        if req == b"full":
            raise ekiden.error_from_code(lib.EK_EFULL)
        if req == b"timeout":
            raise TimeoutError()
        raise ValueError("handler bug")

    async def main() -> None:
        svc = ekiden.Service(handler)
        with pytest.raises(ekiden.Full):
            await svc(b"full")
        with pytest.raises(TimeoutError):
            await svc(b"timeout")
        with pytest.raises(ekiden.EkidenError) as info:
            await svc(b"bug")
        assert info.value.name == "EIO"

    try:
        ekiden.run(main())
    finally:
        ekiden.set_exception_handler(None)
    # The caller sees codes; the Python exceptions that are not EkidenErrors are
    # reported once each (not lost).
    assert [type(e) for e in reports] == [TimeoutError, ValueError]


def test_service_arguments() -> None:
    async def main() -> None:
        with pytest.raises(TypeError):
            ekiden.Service(42)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            ekiden.Service(ekiden.sleep, bound=0)

    ekiden.run(main())
    with pytest.raises(RuntimeError):
        ekiden.Service(ekiden.sleep)


def test_middleware_timeout_cancels_the_handler() -> None:
    events: List[str] = []

    async def slow(req: Any) -> Any:
        try:
            await ekiden.sleep(10)
        finally:
            events.append("handler cancelled")
        return req

    async def main() -> None:
        svc = middleware.timeout(ekiden.Service(slow), 0.05)
        t0 = time.monotonic()
        with pytest.raises(TimeoutError) as info:
            await svc(b"x")
        assert isinstance(info.value, ekiden.TimedOut)
        assert time.monotonic() - t0 < 5
        await ekiden.sleep(0.05)

    ekiden.run(main())
    assert events == ["handler cancelled"]


def test_dropped_response_cancels_a_handler_that_awaits_in_finally() -> None:
    # The response future steps the handler; when the caller drops it (a
    # timeout), the handler goes on as a task of its own, is cancelled at its
    # await, and its finally block may still await before it ends.
    events: List[str] = []
    reported: List[BaseException] = []

    async def slow(req: Any) -> Any:
        events.append(f"started {ekiden.current_task() is not None}")
        try:
            await ekiden.sleep(10)
        except ekiden.CancelledError:
            events.append("cancelled")
            raise
        finally:
            await ekiden.sleep(0.01)
            events.append("finally done")
        return req

    async def main() -> None:
        rt = ekiden.current_runtime()
        base = rt.metrics()["TASKS_ALIVE"]
        svc = middleware.timeout(ekiden.Service(slow), 0.05)
        with pytest.raises(TimeoutError):
            await svc(b"x")
        for _ in range(500):
            if "finally done" in events:
                break
            await ekiden.sleep(0.01)
        assert [t for t in rt.tasks() if t.get_name() == "slow"] == []
        svc.close()
        for _ in range(500):
            if rt.metrics()["TASKS_ALIVE"] <= base:
                break
            await ekiden.sleep(0.01)
        assert rt.metrics()["TASKS_ALIVE"] <= base

    ekiden.set_exception_handler(lambda msg, exc: reported.append(exc))
    try:
        ekiden.run(main())
    finally:
        ekiden.set_exception_handler(None)
    assert events == ["started True", "cancelled", "finally done"]
    assert reported == []


def test_middleware_concurrency_limit() -> None:
    active = [0]
    peak = [0]

    async def handler(req: Any) -> Any:
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        await ekiden.sleep(0.01)
        active[0] -= 1
        return req

    async def main() -> None:
        svc = middleware.concurrency_limit(ekiden.Service(handler), 2)
        assert svc.shareable
        got = await gather(*[svc(b"%d" % i) for i in range(10)])
        assert sorted(got) == sorted(b"%d" % i for i in range(10))

    ekiden.run(main())
    assert peak[0] == 2


def test_middleware_rate_limit() -> None:
    async def handler(req: Any) -> Any:
        return req

    async def main() -> float:
        svc = middleware.rate_limit(ekiden.Service(handler), 5, per=0.1)
        t0 = time.monotonic()
        for i in range(15):
            await svc(b"x")
        return time.monotonic() - t0

    assert ekiden.run(main()) >= 0.19  # three windows of five


def test_middleware_load_shed() -> None:
    async def handler(req: Any) -> Any:
        await ekiden.sleep(0.05)
        return req

    async def main() -> None:
        svc = middleware.load_shed(middleware.concurrency_limit(ekiden.Service(handler), 1))
        first = ekiden.spawn(svc(b"1"))
        await ekiden.sleep(0.01)
        with pytest.raises(ekiden.Overloaded):
            await svc(b"2")
        assert await first == b"1"

    ekiden.run(main())


def test_middleware_buffer_and_balance() -> None:
    hits: Dict[str, int] = {"a": 0, "b": 0}

    def backend(name: str) -> Any:
        async def handler(req: Any) -> Any:
            hits[name] += 1
            await ekiden.sleep(0.002)
            return name.encode()
        return handler

    async def main() -> None:
        bal = middleware.balance([ekiden.Service(backend("a")), ekiden.Service(backend("b"))])
        shared = middleware.buffer(bal, 64)
        got = await gather(*[shared(b"x") for _ in range(40)])
        assert set(got) <= {b"a", b"b"} and len(got) == 40

    ekiden.run(main())
    assert hits["a"] > 0 and hits["b"] > 0


def test_middleware_retry() -> None:
    attempts = [0]

    async def flaky(req: Any) -> Any:
        attempts[0] += 1
        if attempts[0] < 3:
            raise ekiden.error_from_code(lib.EK_ECONNRESET)
        return b"ok"

    seen: List[Tuple[int, str]] = []

    def policy(req: Any, attempt: int, exc: Any, resp: Any) -> bool:
        seen.append((attempt, type(exc).__name__))
        return exc is not None

    async def main() -> Any:
        svc = middleware.retry(ekiden.Service(flaky), policy, budget=(10.0, 10, 0.2))
        return await svc(b"x")

    assert ekiden.run(main()) == b"ok"
    assert attempts[0] == 3
    assert seen == [(1, "ConnectionReset"), (2, "ConnectionReset"), (3, "NoneType")]


def test_c_service_called_and_wrapped_from_python(ektest: Any) -> None:
    async def main() -> None:
        rt = ekiden.current_runtime()
        p = ektest.ffi.new("ek_service **")
        assert ektest.lib.ektest_upper_service(p) == 0
        c_svc = ekiden.ServiceHandle(ffi.cast("ek_service *", int(ektest.ffi.cast("uintptr_t", p[0]))), rt)
        assert await c_svc(b"hello") == b"HELLO"
        limited = middleware.timeout(middleware.concurrency_limit(c_svc, 4), 1.0)
        got = await gather(*[limited(b"abc%d" % i) for i in range(20)])
        assert got == [b"ABC%d" % i for i in range(20)]
        assert await c_svc(b"still usable") == b"STILL USABLE"  # shareable: cloned

    ekiden.run(main(), workers=2)


def test_c_caller_on_a_worker_reaches_the_python_thread(ektest: Any) -> None:
    handler_threads: List[int] = []
    caller_threads: List[int] = []

    async def handler(req: Any) -> Any:
        handler_threads.append(threading.get_ident())
        await ekiden.sleep(0.001)
        return b"py:" + req

    async def main() -> None:
        rt = ekiden.current_runtime()
        svc = middleware.timeout(ekiden.Service(handler), 5)
        for i in range(10):
            thread = ektest.ffi.new("unsigned long *")
            jp = ektest.ffi.new("ek_join **")
            handle = _cast(ektest.ffi, "ek_service *", svc._take())
            data = b"req%d" % i
            rc = ektest.lib.ektest_call_on_worker(_cast(ektest.ffi, "ek_runtime *", rt._ptr), handle,
                                                  data, len(data), thread, jp)
            assert rc == 0
            out = await await_join(ffi.cast("ek_join *", int(ektest.ffi.cast("uintptr_t", jp[0]))))
            msg = ffi.cast("ek_msg *", out)
            try:
                assert ekiden._service.from_msg(msg) == b"py:" + data
            finally:
                lib.ek_msg_free(msg)
            caller_threads.append(int(thread[0]))

    ekiden.run(main(), workers=2)
    me = threading.get_ident()
    assert len(handler_threads) == 10 and set(handler_threads) == {me}
    assert len(caller_threads) == 10 and me not in caller_threads  # C callers ran on workers


def test_registry_both_directions(ektest: Any) -> None:
    threads: List[int] = []

    async def handler(req: Any) -> Any:
        threads.append(threading.get_ident())
        return b"python saw " + req

    async def main() -> None:
        rt = ekiden.current_runtime()
        # A Python service in the registry, looked up and called from Python and C.
        ekiden.register("py.echo", ekiden.Service(handler))
        with pytest.raises(FileExistsError):
            ekiden.register("py.echo", ekiden.Service(handler))
        svc = ekiden.lookup("py.echo")
        assert await svc(b"a") == b"python saw a"
        thread = ektest.ffi.new("unsigned long *")
        jp = ektest.ffi.new("ek_join **")
        again = ekiden.lookup("py.echo")
        assert ektest.lib.ektest_call_on_worker(_cast(ektest.ffi, "ek_runtime *", rt._ptr),
                                                _cast(ektest.ffi, "ek_service *", again._take()),
                                                b"c", 1, thread, jp) == 0
        out = await await_join(ffi.cast("ek_join *", int(ektest.ffi.cast("uintptr_t", jp[0]))))
        msg = ffi.cast("ek_msg *", out)
        assert ekiden._service.from_msg(msg) == b"python saw c"
        lib.ek_msg_free(msg)
        assert int(thread[0]) != threading.get_ident()
        # A C service in the registry, called from Python.
        p = ektest.ffi.new("ek_service **")
        assert ektest.lib.ektest_upper_service(p) == 0
        c_svc = ekiden.ServiceHandle(ffi.cast("ek_service *", int(ektest.ffi.cast("uintptr_t", p[0]))), rt)
        ekiden.register("c.upper", c_svc)
        assert await ekiden.lookup("c.upper")(b"shout") == b"SHOUT"
        ekiden.unregister("c.upper")
        with pytest.raises(FileNotFoundError):
            ekiden.lookup("c.upper")
        with pytest.raises(TypeError):
            ekiden.lookup(1)  # type: ignore[arg-type]

    ekiden.run(main(), workers=2)
    assert set(threads) == {threading.get_ident()} and len(threads) == 2


def test_resp_values_round_trip() -> None:
    from ekiden import resp

    seen: List[Any] = []

    async def handler(req: Any) -> Any:
        seen.append(req)
        return req

    values: List[Any] = [b"bulk", "text", resp.Simple("OK"), resp.Error("ERR bad"), 42, -7,
                         2**70, 1.5, True, False, None, [b"a", [1, None]], {b"k": b"v", b"n": 1},
                         resp.Set([b"x", b"y"]), resp.Push([b"message", b"ch", b"hi"]), []]

    async def main() -> List[Any]:
        svc = ekiden.Service(handler, resp=True)
        wrapped = middleware.timeout(svc, 5)
        assert wrapped.resp
        return [await wrapped(v) for v in values]

    got = ekiden.run(main())
    expect = [b"bulk", b"text", "OK", "ERR bad", 42, -7, 2**70, 1.5, True, False, None,
              [b"a", [1, None]], {b"k": b"v", b"n": 1}, [b"x", b"y"], [b"message", b"ch", b"hi"], []]
    assert got == expect
    assert type(got[2]) is resp.Simple and type(got[3]) is resp.Error
    assert type(got[13]) is resp.Set and type(got[14]) is resp.Push
    assert seen == expect

    async def bad() -> None:
        svc = ekiden.Service(handler, resp=True)
        with pytest.raises(TypeError):
            await svc(object())

    ekiden.run(bad())
