"""Per-operation costs of the binding: python micro.py [N].

- cffi call: a C function that does nothing much, called from Python: ek_version
  (cffi drops and takes back the GIL around it, as around every call) and the
  glue's ekpy_io_yield outside a task (one of the hot-path calls, which keep the
  GIL: see ekiden_glue.c);
- task poll: one Python task poll by the C scheduler, measured as sleep(0)
  round trips (ek_yield_now, the poll returns EK_PENDING, the scheduler polls the
  task again: one C poll -> extern "Python" callback -> coro.send per iteration),
  against asyncio's sleep(0) on the default loop (and uvloop when installed);
- spawn+await: a task spawned and awaited.
CPU time of the process per operation (time.process_time: the other sessions'
load on a shared machine does not count), best of 3 runs. Prints "name ns/op".
"""
import asyncio
import sys
import time
from typing import Any, Callable, Coroutine

import ekiden
from ekiden._ekiden import lib

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
clock = time.process_time


def report(name: str, seconds: float, n: int) -> None:
    print(f"{name:44s} {seconds / n * 1e9:8.0f} ns/op", flush=True)


def best(f: Callable[[], float]) -> float:
    return min(f() for _ in range(3))


def calls(f: Any) -> float:
    t0 = clock()
    for _ in range(N):
        f()
    return clock() - t0


async def ek_yields() -> float:
    t0 = clock()
    for _ in range(N):
        await ekiden.sleep(0)
    return clock() - t0


async def ek_spawns() -> float:
    async def child() -> None:
        pass

    n = N // 4
    t0 = clock()
    for _ in range(n):
        await ekiden.spawn(child())
    return (clock() - t0) / n * N


async def aio_yields() -> float:
    t0 = clock()
    for _ in range(N):
        await asyncio.sleep(0)
    return clock() - t0


async def aio_spawns() -> float:
    async def child() -> None:
        pass

    n = N // 4
    t0 = clock()
    for _ in range(n):
        await asyncio.create_task(child())
    return (clock() - t0) / n * N


def main() -> None:
    report("cffi call, GIL released (ek_version)", best(lambda: calls(lib.ek_version)), N)
    report("cffi call, GIL kept (ekpy_io_yield)", best(lambda: calls(lib.ekpy_io_yield)), N)

    def ek(c: Callable[[], Coroutine[Any, Any, float]], **kw: Any) -> Callable[[], float]:
        return lambda: ekiden.run(c(), **kw)

    report("ekiden task poll (sleep(0)), current thread", best(ek(ek_yields, current_thread=True)), N)
    report("ekiden task poll (sleep(0)), 1 worker", best(ek(ek_yields, workers=1)), N)
    report("asyncio task step (sleep(0))", best(lambda: asyncio.run(aio_yields())), N)
    report("ekiden spawn + await, current thread", best(ek(ek_spawns, current_thread=True)), N)
    report("asyncio create_task + await", best(lambda: asyncio.run(aio_spawns())), N)
    try:
        import uvloop
    except ImportError:
        return
    report("uvloop task step (sleep(0))", best(lambda: uvloop.run(aio_yields())), N)
    report("uvloop create_task + await", best(lambda: uvloop.run(aio_spawns())), N)


if __name__ == "__main__":
    main()
