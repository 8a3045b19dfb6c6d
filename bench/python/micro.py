"""Per-operation costs of the binding: python micro.py [N].

- cffi call: a C function that does nothing much (ek_version), called from Python;
- task poll: one Python task poll by the C scheduler, measured as sleep(0)
  round trips (ek_yield_now, the poll returns EK_PENDING, the scheduler polls the
  task again: one C poll -> extern "Python" callback -> coro.send per iteration),
  against asyncio's sleep(0) on the default loop (and uvloop when installed);
- spawn+await: a task spawned and awaited.
Prints one line per figure, "name ns/op".
"""
import asyncio
import sys
import time

import ekiden
from ekiden._ekiden import lib

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000


def report(name: str, seconds: float, n: int) -> None:
    print(f"{name:40s} {seconds / n * 1e9:8.0f} ns/op")


def cffi_call() -> None:
    f = lib.ek_version
    t0 = time.perf_counter()
    for _ in range(N):
        f()
    report("cffi call (ek_version)", time.perf_counter() - t0, N)


async def ek_yields() -> float:
    t0 = time.perf_counter()
    for _ in range(N):
        await ekiden.sleep(0)
    return time.perf_counter() - t0


async def ek_spawns() -> float:
    async def child() -> None:
        pass

    n = N // 4
    t0 = time.perf_counter()
    for _ in range(n):
        await ekiden.spawn(child())
    return (time.perf_counter() - t0) / n * N


async def aio_yields() -> float:
    t0 = time.perf_counter()
    for _ in range(N):
        await asyncio.sleep(0)
    return time.perf_counter() - t0


async def aio_spawns() -> float:
    async def child() -> None:
        pass

    n = N // 4
    t0 = time.perf_counter()
    for _ in range(n):
        await asyncio.create_task(child())
    return (time.perf_counter() - t0) / n * N


def main() -> None:
    cffi_call()
    report("ekiden task poll (sleep(0))", ekiden.run(ek_yields(), current_thread=True), N)
    report("ekiden task poll, 2 workers", ekiden.run(ek_yields(), workers=2), N)
    report("asyncio task step (sleep(0))", asyncio.run(aio_yields()), N)
    report("ekiden spawn + await", ekiden.run(ek_spawns(), current_thread=True), N)
    report("asyncio create_task + await", asyncio.run(aio_spawns()), N)
    try:
        import uvloop
    except ImportError:
        return
    report("uvloop task step (sleep(0))", uvloop.run(aio_yields()), N)
    report("uvloop create_task + await", uvloop.run(aio_spawns()), N)


if __name__ == "__main__":
    main()
