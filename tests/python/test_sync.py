"""Channel, Oneshot, Semaphore, Event, Lock (the C primitives underneath)."""
from __future__ import annotations

import gc
from typing import Any, List

import pytest

import ekiden
from ekiden._runtime import _keep


def test_unbounded_channel_fifo_and_close() -> None:
    async def main() -> List[Any]:
        ch: ekiden.Channel[Any] = ekiden.Channel()
        for i in range(100):
            ch.try_send(i)
        await ch.send({"x": 1})
        assert len(ch) == 101
        ch.close()
        assert ch.closed
        with pytest.raises(ekiden.Closed):
            ch.try_send(1)
        with pytest.raises(ekiden.Closed):
            await ch.send(1)
        return [x async for x in ch]

    got = ekiden.run(main())
    assert got == list(range(100)) + [{"x": 1}]


def test_bounded_channel_back_pressure_and_fairness() -> None:
    async def main() -> None:
        ch: ekiden.Channel[int] = ekiden.Channel(2)
        ch.try_send(1)
        ch.try_send(2)
        with pytest.raises(ekiden.Full):
            ch.try_send(3)
        order: List[int] = []

        async def sender(v: int) -> None:
            await ch.send(v)
            order.append(v)

        ts = [ekiden.spawn(sender(v)) for v in (10, 11, 12)]
        await ekiden.sleep(0.01)
        assert order == [] and len(ch) == 2
        got = [await ch.recv() for _ in range(5)]
        for t in ts:
            await t
        assert got == [1, 2, 10, 11, 12]
        assert order == [10, 11, 12]
        with pytest.raises(ekiden.Empty):
            ch.try_recv()

    ekiden.run(main())


def test_channel_many_receivers_take_turns() -> None:
    async def main() -> List[int]:
        ch: ekiden.Channel[int] = ekiden.Channel(4)
        got: List[int] = []

        async def receiver() -> None:
            async for x in ch:
                got.append(x)
                await ekiden.sleep(0)

        rs = [ekiden.spawn(receiver()) for _ in range(3)]
        for i in range(200):
            await ch.send(i)
        ch.close()
        for r in rs:
            await r
        return got

    assert sorted(ekiden.run(main())) == list(range(200))


def test_channel_bad_capacity() -> None:
    with pytest.raises(ValueError):
        ekiden.Channel(0)
    with pytest.raises(TypeError):
        ekiden.Channel("3")  # type: ignore[arg-type]


def test_channel_queued_objects_are_released_with_the_channel() -> None:
    class Item:
        pass

    before = len(_keep)
    ch: ekiden.Channel[Item] = ekiden.Channel()
    for _ in range(10):
        ch.try_send(Item())
    assert len(_keep) == before + 10
    del ch
    gc.collect()
    assert len(_keep) == before  # every queued item went through the drop function


def test_oneshot() -> None:
    async def main() -> None:
        o: ekiden.Oneshot[str] = ekiden.Oneshot()

        async def later() -> None:
            await ekiden.sleep(0.01)
            o.send("v")

        ekiden.spawn(later())
        assert await o == "v"
        with pytest.raises(ekiden.InvalidStateError):
            o.send("again")
        o2: ekiden.Oneshot[int] = ekiden.Oneshot()
        o2.close_sender()
        with pytest.raises(ekiden.Closed):
            await o2.recv()
        o3: ekiden.Oneshot[int] = ekiden.Oneshot()
        o3.close()
        with pytest.raises(ekiden.Closed):
            o3.send(1)

    ekiden.run(main())


def test_semaphore_limits_concurrency() -> None:
    async def main() -> int:
        sem = ekiden.Semaphore(3)
        active = [0]
        peak = [0]

        async def worker() -> None:
            async with sem:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
                await ekiden.sleep(0.005)
                active[0] -= 1

        async with ekiden.TaskGroup() as tg:
            for _ in range(20):
                tg.spawn(worker())
        assert sem.value == 3
        assert sem.try_acquire()
        assert sem.value == 2
        sem.release()
        sem.release()  # more releases than acquires grow it
        assert sem.value == 4
        sem.close()
        with pytest.raises(ekiden.Closed):
            for _ in range(10):
                await sem.acquire()
        return peak[0]

    assert ekiden.run(main()) == 3
    with pytest.raises(ValueError):
        ekiden.Semaphore(-1)


def test_event() -> None:
    async def main() -> None:
        ev = ekiden.Event()
        woke: List[int] = []

        async def waiter(i: int) -> None:
            await ev.wait()
            woke.append(i)

        ts = [ekiden.spawn(waiter(i)) for i in range(5)]
        await ekiden.sleep(0.01)
        assert woke == [] and not ev.is_set()
        ev.set()
        for t in ts:
            await t
        assert sorted(woke) == [0, 1, 2, 3, 4]
        assert await ev.wait()
        ev.clear()
        with pytest.raises(TimeoutError):
            await ekiden.wait_for(ev.wait(), 0.02)

    ekiden.run(main())


def test_lock_is_fair_and_exclusive() -> None:
    async def main() -> List[int]:
        lock = ekiden.Lock()
        order: List[int] = []
        inside = [0]

        async def worker(i: int) -> None:
            async with lock:
                inside[0] += 1
                assert inside[0] == 1
                order.append(i)
                await ekiden.sleep(0.001)
                inside[0] -= 1

        await lock.acquire()
        ts = [ekiden.spawn(worker(i)) for i in range(5)]
        await ekiden.sleep(0.01)
        assert lock.locked()
        lock.release()
        for t in ts:
            await t
        with pytest.raises(RuntimeError):
            lock.release()
        return order

    assert ekiden.run(main()) == [0, 1, 2, 3, 4]
