"""Channels and synchronisation, backed by the C primitives (ekiden/sync.h).

Python objects travel through C channels as cffi handles: the handle is kept
alive in a set from the send until the receiver takes it, or until the
channel's drop function (ekpy_handle_drop) releases a message nobody received.
Waits are direct polls of the C object with the task's ek_cx; cancelling a
task at any of these awaits gives its place in the queue back (the C waiter
object is dropped in `finally`).

These objects need no runtime to be created, and may be shared by every task
of a run. Channel is many-producer; receivers take turns (one waits in C at a
time, the others queue behind it in FIFO order).
"""
from __future__ import annotations

from types import TracebackType
from typing import Any, Generic, List, Optional, Type, TypeVar

from ._ekiden import ffi, lib
from ._errors import InvalidStateError, check, error_from_code
from ._runtime import _PENDING, _cx, _keep

__all__ = ["Channel", "Oneshot", "Semaphore", "Event", "Lock"]

T = TypeVar("T")
EK_OK = 0
EK_PENDING = 1


def _handle(obj: Any) -> Any:
    h = ffi.new_handle(obj)
    _keep.add(h)
    return h


def _take(p: Any) -> Any:
    obj = ffi.from_handle(p)
    _keep.discard(p)
    return obj


class _Turns:
    """FIFO turns for waits that only one task may do at a time in C."""

    __slots__ = ("busy", "waiters")

    def __init__(self) -> None:
        self.busy = False
        self.waiters: List[Any] = []

    async def acquire(self) -> None:
        while self.busy:
            w = lib.ek_cx_waker(_cx())
            self.waiters.append(w)
            try:
                await _PENDING
            finally:
                try:
                    self.waiters.remove(w)
                except ValueError:
                    pass
                else:
                    lib.ek_waker_drop(w)
        self.busy = True

    def release(self) -> None:
        self.busy = False
        if self.waiters:
            w = self.waiters.pop(0)
            lib.ek_waker_wake(w)


class Channel(Generic[T]):
    """A C mpsc channel of Python objects: Channel() unbounded, Channel(n) with
    back-pressure (send waits while n items are queued, senders served FIFO).

    close() ends it: sends fail with ekiden.Closed, receivers get what is queued
    and then ekiden.Closed (`async for` simply ends).
    """

    def __init__(self, capacity: Optional[int] = None) -> None:
        tx = ffi.new("ek_mpsc_sender **")
        rx = ffi.new("ek_mpsc_receiver **")
        if capacity is None:
            check(lib.ek_mpsc_unbounded(lib.ekpy_handle_drop_fn, tx, rx))
        else:
            if isinstance(capacity, bool) or not isinstance(capacity, int):
                raise TypeError("capacity must be an int or None")
            if capacity < 1:
                raise ValueError("capacity must be at least 1")
            check(lib.ek_mpsc_bounded(capacity, lib.ekpy_handle_drop_fn, tx, rx))
        self._tx: Any = tx[0]
        self._rx: Any = rx[0]
        self._out = ffi.new("void **")
        self._turns = _Turns()
        self.capacity = capacity

    def try_send(self, item: T) -> None:
        """Send without waiting: ekiden.Full if there is no room, ekiden.Closed."""
        h = _handle(item)
        rc = lib.ek_mpsc_try_send(self._tx, h)
        if rc != EK_OK:
            _keep.discard(h)
            raise error_from_code(rc)

    async def send(self, item: T) -> None:
        """Send, waiting for room on a bounded channel. ekiden.Closed if closed."""
        h = _handle(item)
        rc = lib.ek_mpsc_try_send(self._tx, h)
        if rc == EK_OK:
            return
        if rc != lib.EK_EFULL:
            _keep.discard(h)
            raise error_from_code(rc)
        # Wait with a sender of its own: each holds one place in the C queue.
        sp = ffi.new("ek_mpsc_sender **")
        rc = lib.ek_mpsc_sender_clone(self._tx, sp)
        if rc != EK_OK:
            _keep.discard(h)
            raise error_from_code(rc)
        sender = sp[0]
        sent = False
        try:
            while True:
                rc = lib.ek_mpsc_send(sender, _cx(), h)
                if rc == EK_OK:
                    sent = True
                    return
                if rc != EK_PENDING:
                    raise error_from_code(rc)
                await _PENDING
        finally:
            if not sent:
                _keep.discard(h)
            lib.ek_mpsc_sender_drop(sender)

    async def recv(self) -> T:
        """The next item, waiting for one. ekiden.Closed once closed and empty."""
        await self._turns.acquire()
        try:
            out = self._out
            while True:
                rc = lib.ek_mpsc_recv(self._rx, _cx(), out)
                if rc == EK_OK:
                    return _take(out[0])  # type: ignore[no-any-return]
                if rc != EK_PENDING:
                    raise error_from_code(rc)
                await _PENDING
        finally:
            self._turns.release()

    def try_recv(self) -> T:
        """The next item without waiting: ekiden.Empty, ekiden.Closed."""
        rc = lib.ek_mpsc_try_recv(self._rx, self._out)
        if rc != EK_OK:
            raise error_from_code(rc)
        return _take(self._out[0])  # type: ignore[no-any-return]

    def close(self) -> None:
        """No more sends; what is queued can still be received. Idempotent."""
        check(lib.ek_mpsc_close(self._rx))

    @property
    def closed(self) -> bool:
        return check(lib.ek_mpsc_sender_is_closed(self._tx)) == 1

    def __len__(self) -> int:
        return check(lib.ek_mpsc_len(self._rx))

    def __aiter__(self) -> "Channel[T]":
        return self

    async def __anext__(self) -> T:
        try:
            return await self.recv()
        except Exception as e:
            if getattr(e, "code", None) == lib.EK_ECLOSED:
                raise StopAsyncIteration from None
            raise

    def __del__(self) -> None:
        tx, self._tx = getattr(self, "_tx", None), None
        rx, self._rx = getattr(self, "_rx", None), None
        if tx is not None:
            lib.ek_mpsc_sender_drop(tx)
        if rx is not None:
            lib.ek_mpsc_receiver_drop(rx)  # queued items go through ekpy_handle_drop


class Oneshot(Generic[T]):
    """One value from one sender to one receiver: `o.send(v)`, `await o.recv()`
    (or `await o`). recv raises ekiden.Closed if the sender was closed without a
    value."""

    def __init__(self) -> None:
        tx = ffi.new("ek_oneshot_sender **")
        rx = ffi.new("ek_oneshot_receiver **")
        check(lib.ek_oneshot_new(lib.ekpy_handle_drop_fn, tx, rx))
        self._tx: Any = tx[0]
        self._rx: Any = rx[0]
        self._out = ffi.new("void **")

    def send(self, value: T) -> None:
        """Send the value (once). ekiden.Closed if the receiver was closed;
        InvalidStateError on a second send."""
        tx, self._tx = self._tx, None
        if tx is None:
            raise InvalidStateError("oneshot already sent or closed")
        h = _handle(value)
        rc = lib.ek_oneshot_send(tx, h)  # consumes tx in every case
        if rc != EK_OK:
            _keep.discard(h)
            raise error_from_code(rc)

    def close_sender(self) -> None:
        """Drop the sending side without a value: recv raises ekiden.Closed."""
        tx, self._tx = self._tx, None
        if tx is not None:
            lib.ek_oneshot_sender_drop(tx)

    def close(self) -> None:
        """Close the receiving side: a later send raises ekiden.Closed."""
        check(lib.ek_oneshot_close(self._rx))

    async def recv(self) -> T:
        while True:
            rc = lib.ek_oneshot_recv(self._rx, _cx(), self._out)
            if rc == EK_OK:
                return _take(self._out[0])  # type: ignore[no-any-return]
            if rc != EK_PENDING:
                raise error_from_code(rc)
            await _PENDING

    def __await__(self) -> Any:
        return self.recv().__await__()

    def __del__(self) -> None:
        tx, self._tx = getattr(self, "_tx", None), None
        rx, self._rx = getattr(self, "_rx", None), None
        if tx is not None:
            lib.ek_oneshot_sender_drop(tx)
        if rx is not None:
            lib.ek_oneshot_receiver_drop(rx)


class Semaphore:
    """A fair (FIFO) counting semaphore: `async with sem:` or acquire()/release()."""

    def __init__(self, value: int = 1) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("value must be an int")
        if value < 0:
            raise ValueError("value must be >= 0")
        p = ffi.new("ek_semaphore **")
        check(lib.ek_semaphore_new(value, p))
        self._sem: Any = p[0]
        # What each acquire holds, returned by release in LIFO order: None for a
        # raw permit (try_acquire), else a permit object.
        self._held: List[Any] = []

    def try_acquire(self) -> bool:
        """Take a permit if one is free and nobody waits; True if taken."""
        rc = lib.ek_semaphore_try_acquire(self._sem, 1)
        if rc == EK_OK:
            self._held.append(None)
            return True
        if rc == lib.EK_EFULL:
            return False
        raise error_from_code(rc)

    async def acquire(self) -> bool:
        """Wait for a permit (FIFO). ekiden.Closed if the semaphore is closed."""
        if self.try_acquire():
            return True
        pp = ffi.new("ek_semaphore_permit **")
        check(lib.ek_semaphore_permit_new(self._sem, pp))
        permit = pp[0]
        try:
            while True:
                rc = lib.ek_semaphore_acquire(permit, _cx(), 1)
                if rc == EK_OK:
                    self._held.append(permit)
                    permit = None
                    return True
                if rc != EK_PENDING:
                    raise error_from_code(rc)
                await _PENDING
        finally:
            if permit is not None:
                lib.ek_semaphore_permit_drop(permit)  # leaves the queue

    def release(self) -> None:
        """Give one permit back (or add one, when none is held)."""
        if self._held:
            permit = self._held.pop()
            if permit is None:
                check(lib.ek_semaphore_release(self._sem, 1))
            else:
                lib.ek_semaphore_permit_drop(permit)
        else:
            check(lib.ek_semaphore_release(self._sem, 1))

    @property
    def value(self) -> int:
        """Permits available now."""
        return check(lib.ek_semaphore_available_permits(self._sem))

    def locked(self) -> bool:
        return self.value == 0

    def close(self) -> None:
        """Waiting and later acquires raise ekiden.Closed."""
        check(lib.ek_semaphore_close(self._sem))

    async def __aenter__(self) -> "Semaphore":
        await self.acquire()
        return self

    async def __aexit__(self, et: Optional[Type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        self.release()

    def __del__(self) -> None:
        for permit in getattr(self, "_held", []):
            if permit is not None:
                lib.ek_semaphore_permit_drop(permit)
        sem, self._sem = getattr(self, "_sem", None), None
        if sem is not None:
            lib.ek_semaphore_drop(sem)


class Event:
    """set() wakes every waiter and stays set until clear(); wait() returns at
    once while it is set. Backed by a C notify."""

    def __init__(self) -> None:
        p = ffi.new("ek_notify **")
        check(lib.ek_notify_new(p))
        self._notify: Any = p[0]
        self._set = False

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if not self._set:
            self._set = True
            check(lib.ek_notify_waiters(self._notify))

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        wp = ffi.new("ek_notified **")
        check(lib.ek_notified_new(self._notify, wp))
        w = wp[0]
        try:
            while not self._set:
                rc = lib.ek_notified_poll(w, _cx())
                if rc == EK_OK:
                    if self._set:
                        break
                    check(lib.ek_notified_reset(w))  # set() then clear(): wait again
                    continue
                if rc != EK_PENDING:
                    raise error_from_code(rc)
                await _PENDING
            return True
        finally:
            lib.ek_notified_drop(w)

    def __del__(self) -> None:
        n, self._notify = getattr(self, "_notify", None), None
        if n is not None:
            lib.ek_notify_drop(n)


class Lock:
    """A fair (FIFO) asynchronous mutex: `async with lock:`. Backed by a C mutex."""

    def __init__(self) -> None:
        p = ffi.new("ek_mutex **")
        check(lib.ek_mutex_new(ffi.NULL, ffi.NULL, p))
        self._mutex: Any = p[0]
        self._guard: Any = None  # the guard holding the lock
        self._spare: Any = None  # an unlocked guard kept for the next acquire

    def _new_guard(self) -> Any:
        g, self._spare = self._spare, None
        if g is None:
            gp = ffi.new("ek_mutex_guard **")
            check(lib.ek_mutex_guard_new(self._mutex, gp))
            g = gp[0]
        return g

    def locked(self) -> bool:
        return self._guard is not None

    async def acquire(self) -> bool:
        g = self._new_guard()
        try:
            while True:
                rc = lib.ek_mutex_lock(g, _cx())
                if rc == EK_OK:
                    self._guard = g
                    g = None
                    return True
                if rc != EK_PENDING:
                    raise error_from_code(rc)
                await _PENDING
        finally:
            if g is not None:
                lib.ek_mutex_guard_drop(g)  # leaves the queue

    def release(self) -> None:
        """Unlock; the longest waiter gets the lock. RuntimeError if not locked."""
        g, self._guard = self._guard, None
        if g is None:
            raise RuntimeError("Lock is not acquired")
        check(lib.ek_mutex_unlock(g))
        if self._spare is None:
            self._spare = g
        else:
            lib.ek_mutex_guard_drop(g)

    async def __aenter__(self) -> "Lock":
        await self.acquire()
        return self

    async def __aexit__(self, et: Optional[Type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        self.release()

    def __del__(self) -> None:
        for name in ("_guard", "_spare"):
            g = getattr(self, name, None)
            setattr(self, name, None)
            if g is not None:
                lib.ek_mutex_guard_drop(g)
        m, self._mutex = getattr(self, "_mutex", None), None
        if m is not None:
            lib.ek_mutex_drop(m)
