"""The runtime, tasks and time: ekiden.run, spawn, Task, TaskGroup, sleep, timeout.

How a coroutine runs. A Python task is a local C task (ek_spawn_local, through
_c_spawn in ekiden_glue.c) pinned to the thread that called `run`. Its poll is
C: it steps the coroutine itself (PyIter_Send) while the task's `fast` flag is
set (no cancellation asked, no deadline), and calls Task._step or Task._ended
for everything else. The awaitables of this package call a C operation with
the poll's ek_cx; when it returns EK_PENDING (the C side has registered the
task's waker) they yield, the step returns EK_PENDING and the C scheduler
alone decides when the task is polled again. Nothing here keeps a ready queue
of its own.

Threads and the GIL. Only the thread inside `run` executes Python tasks; the C
workers run C tasks and the reactor. cffi releases the GIL around C calls
(`ekpy_join_wait` parks there; the glue's non-blocking socket calls keep it),
and each task poll takes it back. On a current-thread runtime the polls of one
wake-up share one taking: the GIL is leased to them until the thread parks
(the runtime's park hook gives it back; see ekiden_glue.c).

Cancellation. `Task.cancel()` wakes the task; its next step throws
CancelledError at the current await. The awaitables drop the C future under
them in `finally`, so a cancelled sleep, connect or channel wait leaves nothing
behind. Deadlines (`timeout`) are C sleep futures polled by the task's step;
an expired one throws a CancelledError that `timeout.__aexit__` turns into
TimeoutError.
"""
from __future__ import annotations

import math
import signal
import sys
import threading
import traceback
import weakref
from typing import (
    Any, Awaitable, Callable, Coroutine, Dict, Generator, Generic, List, Optional, Set,
    NoReturn, Type, TypeVar,
)
from types import TracebackType

from ._ekiden import ffi, lib
from ._errors import CancelledError, InvalidStateError, TimedOut, check, error_from_code

if sys.version_info >= (3, 11):
    _ExceptionGroup = ExceptionGroup  # noqa: F821
else:  # pragma: no cover - Python 3.9/3.10
    from exceptiongroup import ExceptionGroup as _ExceptionGroup  # type: ignore[import-not-found,no-redef,unused-ignore]

__all__ = [
    "run", "spawn", "Task", "TaskGroup", "Runtime", "current_runtime", "current_task",
    "sleep", "timeout", "wait_for", "interval", "Interval", "Timeout", "set_exception_handler",
]

T = TypeVar("T")

EK_OK = 0
EK_PENDING = 1
# Results of the glue's ekpy_io_* calls besides byte counts and EK_E* codes.
_IO_PENDING = int(lib.EKPY_PENDING)
_NO_TASK = int(lib.EKPY_NO_TASK)

# Keep-alive set of cffi handles given to C: a handle is valid only while its
# cdata lives. Added before C gets it, discarded by the C side's drop callback.
# GIL-protected (drop callbacks may come from any thread; cffi takes the GIL).
_keep: Set[Any] = set()


class _Local(threading.local):
    rt: Optional["Runtime"] = None


_local = _Local()


class _Pending:
    """`await _PENDING` suspends the task once: the C operation that returned
    EK_PENDING has registered the task's waker, so the C scheduler resumes it."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        yield


# The glue's _c_wait (ekiden_glue.c) does what the generator above does without
# making a generator and a frame per park: __await__ becomes it (a builtin is
# no descriptor, so the await calls it with no arguments). _c_spawn makes the
# C task of a Task (its poll steps the coroutine in C: see Task).
_c_wait: Any
_c_spawn: Any
_c_runtime_setup: Any
if lib.ekpy_io_install(__name__.encode(), lib.EKPY_INSTALL_RUNTIME) != 0:
    raise ImportError("ekiden: the extension's functions could not be installed")
setattr(_Pending, "__await__", _c_wait)

_PENDING = _Pending()


def _cx() -> Any:
    # The context of the step running on this thread (ekiden_glue.c keeps it).
    cx = lib.ekpy_cx()
    if cx == ffi.NULL:
        _no_task()
    return cx


def _no_task() -> NoReturn:
    raise RuntimeError("ekiden: this operation must be awaited inside a task of ekiden.run()")


def _rt() -> "Runtime":
    rt = _local.rt
    if rt is None:
        raise RuntimeError("ekiden: no runtime is running on this thread (use ekiden.run())")
    return rt


# ---------------------------------------------------------------------------
# Exception reporting
# ---------------------------------------------------------------------------

def _default_exception_handler(message: str, exc: BaseException) -> None:
    print(f"ekiden: {message}", file=sys.stderr)
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)


_exception_handler: Callable[[str, BaseException], None] = _default_exception_handler


def set_exception_handler(handler: Optional[Callable[[str, BaseException], None]]) -> None:
    """Where exceptions nobody can receive go (a task's exception never
    retrieved, an error in a callback from C): handler(message, exc). None
    restores the default, which prints the traceback to stderr."""
    global _exception_handler
    _exception_handler = handler if handler is not None else _default_exception_handler


def _report(message: str, exc: BaseException) -> None:
    try:
        _exception_handler(message, exc)
    except Exception:  # the handler itself failed: last resort
        traceback.print_exc()


def _on_callback_error(exc_type: Type[BaseException], exc: BaseException, tb: Any) -> None:
    # An exception escaped a callback from C (a bug in this package): never let
    # it cross into C; report it.
    _report("exception in a callback from the runtime", exc)


# ---------------------------------------------------------------------------
# Runtime
# ---------------------------------------------------------------------------

class Runtime:
    """The C runtime `run` builds (ek_runtime): workers, reactor, timers.

    Obtain it inside `run` with `current_runtime()`. Methods may be called from
    the thread that runs it.
    """

    def __init__(self, workers: Optional[int] = None, *, current_thread: bool = False) -> None:
        if workers is not None:
            if not isinstance(workers, int) or isinstance(workers, bool):
                raise TypeError("workers must be an int or None")
            if not 1 <= workers <= 1024:
                raise ValueError("workers must be between 1 and 1024")
        b = ffi.new("ek_builder **")
        check(lib.ek_builder_new(b))
        builder = b[0]
        try:
            if current_thread:
                check(lib.ek_builder_set_flavor(builder, lib.EK_FLAVOR_CURRENT_THREAD))
                # The thread's GIL is leased to the polls of a wake-up (see _wait).
                check(lib.ekpy_builder_lease(builder))
            elif workers is not None:
                check(lib.ek_builder_set_worker_threads(builder, workers))
            check(lib.ek_builder_set_thread_name(builder, b"ekiden-py"))
            r = ffi.new("ek_runtime **")
            check(lib.ek_runtime_new(builder, r))
        finally:
            lib.ek_builder_free(builder)
        self._ptr: Any = r[0]
        self._lease = 1 if current_thread else 0
        self._tasks: Set[Task[Any]] = set()
        self._resources: "weakref.WeakSet[Any]" = weakref.WeakSet()
        self._thread = threading.get_ident()
        self._interrupted = False
        self._main: Optional[Task[Any]] = None
        self._scratch = ffi.new("char[]", 65536)
        self._scratch_mv = memoryview(ffi.buffer(self._scratch))
        self._big: Any = None
        self._big_len = 0
        self._out = ffi.new("void **")
        self._sizep = ffi.new("size_t *")
        self._closed = False

    # -- internals ---------------------------------------------------------
    def _buffer(self, n: int) -> Any:
        """A scratch buffer of at least n bytes, valid until the next call. C reads
        and writes into it synchronously (EK_PENDING retains nothing). The first
        64 KiB one (_scratch) lives as long as the runtime: streams read into it."""
        if n <= 65536:
            return self._scratch
        if n > self._big_len:
            size = 1 << (n - 1).bit_length()
            self._big = ffi.new("char[]", size)
            self._big_len = size
        return self._big

    def _interrupt(self) -> None:
        # SIGINT, or KeyboardInterrupt/SystemExit raised in a task: cancel all.
        if self._interrupted:
            return
        self._interrupted = True
        for t in list(self._tasks):
            t.cancel()

    def _track(self, resource: Any) -> None:
        self._resources.add(resource)

    # -- public ------------------------------------------------------------
    @property
    def workers(self) -> int:
        """Number of worker threads (1 for a current-thread runtime)."""
        return check(lib.ek_runtime_worker_count(self._require()))

    def metrics(self) -> Dict[str, int]:
        """A snapshot of the runtime's counters and gauges ({"TASKS_ALIVE": 3, ...})."""
        values = ffi.new("uint64_t[]", 64)
        n = check(lib.ek_runtime_metrics(self._require(), values, 64))
        out: Dict[str, int] = {}
        for i in range(min(n, 64)):
            name = lib.ek_metric_name(i)
            if name != ffi.NULL:
                out[ffi.string(name).decode()] = int(values[i])
        return out

    def time(self) -> float:
        """The runtime's monotonic clock, in seconds (1 ms resolution)."""
        return int(lib.ek_now_ms(self._require())) / 1000.0

    def tasks(self) -> List["Task[Any]"]:
        """The Python tasks that have not finished."""
        return list(self._tasks)

    def _require(self) -> Any:
        if self._closed:
            raise error_from_code(lib.EK_ECLOSED)
        return self._ptr

    def close(self) -> None:
        """Release every resource still open and free the C runtime."""
        if self._closed:
            return
        self._closed = True
        for res in list(self._resources):
            try:
                res._release()
            except Exception as e:  # pragma: no cover - defensive
                _report("error releasing a resource", e)
        self._resources = weakref.WeakSet()
        lib.ek_runtime_free(self._ptr)
        self._ptr = ffi.NULL


def current_runtime() -> Runtime:
    """The runtime running on this thread (inside ekiden.run); RuntimeError if none."""
    return _rt()


def current_task() -> "Optional[Task[Any]]":
    """The task being stepped on this thread, or None."""
    h = lib.ekpy_current_task()
    if h == ffi.NULL:
        return None
    obj: Any = ffi.from_handle(h)
    if type(obj) is not Task:
        # A service handler's first step in a batch (_service._Impl): its Task
        # is made when asked for.
        obj = obj._current_task()
    task: Optional[Task[Any]] = obj
    return task


# ---------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------

_RUNNING, _DONE, _CANCELLED = 0, 1, 2


class _Deadline:
    __slots__ = ("fut", "expired", "exc")

    def __init__(self, fut: Any) -> None:
        self.fut = fut
        self.expired = False
        self.exc: Optional[CancelledError] = None

    def drop(self) -> None:
        if self.fut is not None:
            lib.ek_future_drop(self.fut)
            self.fut = None


class Task(Generic[T]):
    """A coroutine running as a local task of the runtime (see spawn()).

    Awaiting a task gives its result or raises its exception (CancelledError if
    it was cancelled). An exception that nobody retrieves (no await, result()
    or exception()) is reported once, through set_exception_handler's handler,
    when the task is garbage collected.
    """

    __slots__ = ("_coro", "_rt", "_state", "_result", "_exc", "_waiters", "_must_cancel",
                 "_waker", "_deadlines", "_handle", "_callbacks", "_log_exc", "_name",
                 "_svc", "_ct", "__weakref__")

    def __init__(self, coro: Coroutine[Any, Any, T], rt: Runtime, name: Optional[str] = None,
                 *, join: Any = ffi.NULL, driven: bool = False) -> None:
        # driven: no C task of its own; whoever polls the future made over its
        # handle steps it (a service call's response: see _service.py).
        self._coro: Optional[Coroutine[Any, Any, T]] = coro
        self._rt = rt
        self._state = _RUNNING
        self._result: Optional[T] = None
        self._exc: Optional[BaseException] = None
        self._waiters: List[Any] = []
        self._must_cancel = False
        self._waker: Any = None
        self._deadlines: List[_Deadline] = []
        self._callbacks: List[Callable[[Task[Any]], None]] = []
        self._log_exc = False
        self._name = name
        self._svc: Any = None
        self._ct: Any = None  # the C task's state (_c_spawn), whose `fast` the step reads
        handle = ffi.new_handle(self)
        self._handle: Any = handle
        _keep.add(handle)
        rt._tasks.add(self)
        if driven:
            return
        rc = self._start(join)
        if rc < 0:
            # The C side has already run the drop callback (which released the
            # handle); the coroutine never started.
            rt._tasks.discard(self)
            self._state = _CANCELLED
            coro.close()
            raise error_from_code(rc)

    def __repr__(self) -> str:
        state = ("running", "done", "cancelled")[self._state]
        return f"<ekiden.Task {self._name or hex(id(self))} {state}>"

    def _start(self, join: Any) -> int:
        """Spawn the C task that steps this Task: 0, or the EK_E* code (its drop
        has then run)."""
        coro = self._coro
        if coro is None:
            return int(lib.EK_EINVAL)
        ct = _c_spawn(self, coro, int(ffi.cast("uintptr_t", self._handle)),
                      int(ffi.cast("uintptr_t", self._rt._require())),
                      int(ffi.cast("uintptr_t", join)))
        if type(ct) is int:
            return ct
        self._ct = ct
        return 0

    # -- stepping (called from C: the glue's ekpy__ctask_step) -------------
    def _step(self, resumed: bool = False) -> int:
        # The glue has made this the current task and its poll context current
        # on this thread, for the awaitables' C calls. resumed: the glue's fast
        # path has sent into the coroutine already, which suspended.
        coro = self._coro
        if coro is None:
            return EK_OK
        exc: Optional[BaseException] = None
        if self._must_cancel and not resumed:
            self._must_cancel = False
            exc = CancelledError()
        while True:
            try:
                if resumed:
                    resumed = False
                elif exc is None:
                    coro.send(None)
                else:
                    coro.throw(exc)
            except StopIteration as stop:
                self._finish(stop.value, None)
                return EK_OK
            except CancelledError as e:
                self._finish(None, e, cancelled=True)
                return EK_OK
            except BaseException as e:
                self._finish(None, e)
                if isinstance(e, (KeyboardInterrupt, SystemExit)):
                    self._rt._interrupt()
                return EK_OK
            # Suspended at an await that arranged to be woken.
            if self._must_cancel:
                self._must_cancel = False
                exc = CancelledError()
                continue
            if self._deadlines:
                d = self._poll_deadlines()
                if d is not None:
                    exc = d.exc
                    continue
            if self._waker is None:
                # Taken at the first suspension (for cancel()): a task that ends
                # in its first step (most service calls) never needs one.
                self._waker = lib.ekpy_io_waker()
            ct = self._ct
            if ct is not None:
                # The glue's next poll sends into the coroutine itself.
                ct.fast = 0 if self._deadlines else 1
            return EK_PENDING

    def _ended(self, result: Any, exc: Optional[BaseException]) -> int:
        # The glue's fast path: the coroutine returned result or raised exc.
        if exc is None:
            self._finish(result, None)
        elif isinstance(exc, CancelledError):
            self._finish(None, exc, cancelled=True)
        else:
            self._finish(None, exc)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                self._rt._interrupt()
        return EK_OK

    def _poll_deadlines(self) -> Optional[_Deadline]:
        out = self._rt._out
        for d in self._deadlines:
            if d.expired or d.fut is None:
                continue
            rc = lib.ekpy_io_future_poll(d.fut, out)
            if rc != EK_PENDING:
                d.expired = True
                d.drop()
                d.exc = CancelledError("deadline expired")
                return d
        return None

    def _finish(self, result: Any, exc: Optional[BaseException], cancelled: bool = False) -> None:
        self._coro = None
        self._state = _CANCELLED if cancelled else _DONE
        self._result = result
        self._exc = exc
        if exc is not None and not cancelled:
            self._log_exc = True
        for d in self._deadlines:
            d.drop()
        self._deadlines = []
        self._rt._tasks.discard(self)
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            lib.ek_waker_wake(w)
        callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            try:
                cb(self)
            except Exception as e:
                _report("exception in a task done callback", e)

    def _on_drop(self) -> None:
        # The C task is gone (after its last poll, or dropped unpolled by the
        # runtime's shutdown). Runs on the task's own thread.
        if self._waker is not None:
            lib.ek_waker_drop(self._waker)
            self._waker = None
        coro = self._coro
        if coro is not None:
            # Dropped without finishing: close the coroutine so that its finally
            # blocks run and the awaitables release their C futures.
            loc = _local
            prev = loc.rt
            loc.rt = self._rt
            try:
                coro.close()
            except BaseException as e:
                _report("exception while closing a dropped task", e)
            finally:
                loc.rt = prev
            self._finish(None, CancelledError("task dropped by the runtime"), cancelled=True)
        handle, self._handle = self._handle, None
        _keep.discard(handle)
        self._ct = None

    # -- public ------------------------------------------------------------
    def done(self) -> bool:
        """True once the task finished: returned, raised, or was cancelled."""
        return self._state != _RUNNING

    def cancelled(self) -> bool:
        """True if the task ended by cancellation."""
        return self._state == _CANCELLED

    def cancel(self) -> bool:
        """Request cancellation: CancelledError is raised at the task's current
        await (its finally blocks run; the C operation under that await is
        dropped). False if the task had already finished."""
        if self._state != _RUNNING:
            return False
        self._must_cancel = True
        ct = self._ct
        if ct is not None:
            ct.fast = 0
        if self._waker is not None:
            lib.ek_waker_wake_by_ref(self._waker)
        return True

    def result(self) -> T:
        """The task's return value; raises its exception, CancelledError if it was
        cancelled, InvalidStateError if it has not finished."""
        if self._state == _RUNNING:
            raise InvalidStateError("task has not finished")
        self._log_exc = False
        if self._exc is not None:
            raise self._exc
        return self._result  # type: ignore[return-value]

    def exception(self) -> Optional[BaseException]:
        """The exception the task raised (None if it returned); CancelledError is
        raised if it was cancelled, InvalidStateError if it has not finished."""
        if self._state == _RUNNING:
            raise InvalidStateError("task has not finished")
        self._log_exc = False
        if self._state == _CANCELLED:
            raise self._exc if self._exc is not None else CancelledError()
        return self._exc

    def add_done_callback(self, fn: Callable[["Task[Any]"], None]) -> None:
        """Call fn(task) when the task finishes (at once if it has)."""
        if self._state != _RUNNING:
            fn(self)
        else:
            self._callbacks.append(fn)

    def get_name(self) -> Optional[str]:
        return self._name

    def __await__(self) -> Generator[None, None, T]:
        while self._state == _RUNNING:
            w = lib.ek_cx_waker(_cx())
            self._waiters.append(w)
            try:
                yield
            finally:
                if self._state == _RUNNING:
                    try:
                        self._waiters.remove(w)
                    except ValueError:
                        pass
                    else:
                        lib.ek_waker_drop(w)
        return self.result()

    def __del__(self) -> None:
        if self._log_exc and self._exc is not None:
            self._log_exc = False
            _report(f"Task exception was never retrieved: {self!r}", self._exc)


_c_runtime_setup(_on_callback_error)


@ffi.def_extern(onerror=_on_callback_error)
def ekpy_handle_drop(handle: Any) -> None:
    _keep.discard(handle)


def spawn(coro: Coroutine[Any, Any, T], *, name: Optional[str] = None) -> Task[T]:
    """Run a coroutine concurrently as a new task on this thread's runtime."""
    if not isinstance(coro, Coroutine):
        raise TypeError(f"spawn() needs a coroutine, not {type(coro).__name__}")
    return Task(coro, _rt(), name)


# ---------------------------------------------------------------------------
# TaskGroup
# ---------------------------------------------------------------------------

class TaskGroup:
    """Structured concurrency: `async with TaskGroup() as tg: tg.spawn(coro)`.

    Leaving the block waits for every child. If a child raises, the other
    children (and the block itself, if it is still running) are cancelled and
    the exception is raised from the `async with`: the exception itself when one
    child failed, an ExceptionGroup of all of them when several did.
    """

    def __init__(self) -> None:
        self._tasks: Set[Task[Any]] = set()
        self._errors: List[BaseException] = []
        self._parent: Optional[Task[Any]] = None
        self._entered = False
        self._exiting = False
        self._aborting = False
        self._parent_cancelled = False

    async def __aenter__(self) -> "TaskGroup":
        if self._entered:
            raise RuntimeError("TaskGroup entered twice")
        self._entered = True
        self._parent = current_task()
        if self._parent is None:
            raise RuntimeError("TaskGroup must be used inside a task")
        return self

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: Optional[str] = None) -> Task[T]:
        """Start a child task of the group."""
        if not self._entered:
            raise RuntimeError("TaskGroup has not been entered")
        if self._aborting:
            coro.close()
            raise RuntimeError("TaskGroup is shutting down")
        t = spawn(coro, name=name)
        self._tasks.add(t)
        t.add_done_callback(self._child_done)
        return t

    def _child_done(self, t: Task[Any]) -> None:
        self._tasks.discard(t)
        if t.cancelled():
            return
        exc = t._exc
        t._log_exc = False
        if exc is None:
            return
        self._errors.append(exc)
        if not self._aborting:
            self._abort()

    def _abort(self) -> None:
        self._aborting = True
        for t in list(self._tasks):
            t.cancel()
        if not self._exiting and self._parent is not None and not self._parent.done():
            self._parent_cancelled = True
            self._parent.cancel()

    async def __aexit__(self, et: Optional[Type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> Optional[bool]:
        self._exiting = True
        propagate: Optional[BaseException] = None
        if exc is not None and not (isinstance(exc, CancelledError) and self._parent_cancelled):
            propagate = exc
            if not self._aborting:
                self._abort()
        while self._tasks:
            try:
                await _wait_any(list(self._tasks))
            except CancelledError as e:
                # Cancelled while waiting: cancel the children, keep waiting.
                propagate = propagate or e
                if not self._aborting:
                    self._abort()
        if self._errors:
            if len(self._errors) == 1:
                raise self._errors[0]
            raise _ExceptionGroup("unhandled errors in a TaskGroup", self._errors)  # type: ignore[type-var,unused-ignore]
        if propagate is not None and propagate is not exc:
            raise propagate
        return None


async def _wait_any(tasks: List[Task[Any]]) -> None:
    """Wait until at least one of the tasks is done."""
    if any(t.done() for t in tasks):
        return
    cx = _cx()
    mine = []
    for t in tasks:
        w = lib.ek_cx_waker(cx)
        t._waiters.append(w)
        mine.append((t, w))
    try:
        await _PENDING
    finally:
        # A finished task consumed its wakers; take ours back from the others.
        for t, w in mine:
            if t._state == _RUNNING:
                try:
                    t._waiters.remove(w)
                except ValueError:
                    continue
                lib.ek_waker_drop(w)


# ---------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------

def _ms(seconds: float) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError("seconds must be a number")
    if math.isnan(seconds):
        raise ValueError("seconds must not be NaN")
    if seconds <= 0:
        return 0
    if math.isinf(seconds):
        return (1 << 62)
    return min(math.ceil(seconds * 1000), 1 << 62)


async def _signal_watch() -> None:
    # Python runs signal handlers only while the main thread executes bytecode,
    # and the thread of `run` parks in C. Python's C-level handler writes the
    # signal number to the wake-up fd (signal.set_wakeup_fd) from whichever
    # thread the kernel picked; here that fd is a datagram socket connected to
    # a UDP socket of the reactor, so the byte wakes this task, and running it
    # runs the pending Python handler (on_sigint in run) at once. Nothing is
    # polled while no signal comes (no timer, no ticker). Anything else
    # arriving on the socket only wakes the task once more.
    import socket

    from ._net import UdpSocket

    try:
        rx = await UdpSocket.bind(("127.0.0.1", 0))
    except OSError:  # pragma: no cover - no loopback: wake up ten times a second
        while True:
            await sleep(0.1)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    old = -1
    installed = False
    try:
        tx.setblocking(False)
        tx.connect(rx.local_addr)
        old = signal.set_wakeup_fd(tx.fileno(), warn_on_full_buffer=False)
        installed = True
        while True:
            await rx.recv(64)
    finally:
        if installed:
            signal.set_wakeup_fd(old)
        tx.close()
        rx.close()


async def _drain(rt: Runtime) -> None:
    me = current_task()
    while True:
        rest = [t for t in rt._tasks if t is not me]
        if not rest:
            return
        for t in rest:
            t.cancel()
        for t in rest:
            try:
                await t
            except BaseException:
                pass


def run(coro: Coroutine[Any, Any, T], *, workers: Optional[int] = None,
        current_thread: bool = False, handle_sigint: bool = True) -> T:
    """Build a runtime, run `coro` to completion on the calling thread as a local
    task, and return its result (or raise its exception).

    workers: C worker threads (default: one per core, or EKIDEN_WORKER_THREADS);
    current_thread=True runs everything, reactor included, on this thread.
    Python tasks always run on this thread; the GIL is released while it parks.
    Tasks still running when coro returns are cancelled (their finally blocks
    run) before run returns; every socket, timer and channel of the runtime is
    released, then the runtime is freed. Ctrl-C (SIGINT, when run is called on
    the main thread with Python's default handler in place, and handle_sigint
    is true) cancels every task and raises KeyboardInterrupt; for that, run
    points signal.set_wakeup_fd at a socket of the reactor (and restores the
    previous one when it returns), so a signal wakes the parked thread at once.
    """
    if not isinstance(coro, Coroutine):
        raise TypeError(f"run() needs a coroutine, not {type(coro).__name__}")
    if _local.rt is not None:
        coro.close()
        raise RuntimeError("ekiden.run() cannot be called from inside a running runtime")
    try:
        rt = Runtime(workers, current_thread=current_thread)
    except BaseException:
        coro.close()
        raise
    old_handler: Any = None
    install = (handle_sigint and threading.current_thread() is threading.main_thread()
               and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    _local.rt = rt
    try:
        if install:
            def on_sigint(signum: int, frame: Any) -> None:
                rt._interrupt()

            old_handler = signal.signal(signal.SIGINT, on_sigint)
        jp = ffi.new("ek_join **")
        main = Task(coro, rt, "main", join=jp)
        rt._main = main
        watch = Task(_signal_watch(), rt, "ekiden-signals") if install else None
        _wait(jp[0], rt._lease)
        if watch is not None:
            watch.cancel()
        jd = ffi.new("ek_join **")
        Task(_drain(rt), rt, "ekiden-drain", join=jd)
        _wait(jd[0], rt._lease)
        if rt._interrupted:
            main._log_exc = False
            raise KeyboardInterrupt
        return main.result()
    finally:
        if install and old_handler is not None:
            signal.signal(signal.SIGINT, old_handler)
        _local.rt = None
        rt.close()


def _wait(join: Any, lease: int) -> None:
    # lease (a current-thread runtime): the GIL is taken once per wake-up of
    # the thread, not per task poll (ekpy_join_wait in the glue).
    out = ffi.new("void **")
    rc = lib.ekpy_join_wait(join, out, lease)
    lib.ek_join_detach(join)
    if rc < 0 and rc != lib.EK_ECANCELED:
        raise error_from_code(rc)


# ---------------------------------------------------------------------------
# Time
# ---------------------------------------------------------------------------

async def _await_future(fut: Any) -> Any:
    """Poll a heap future to completion; returns its result pointer. The future is
    dropped in every case (cancellation included)."""
    out = ffi.new("void **")
    try:
        while True:
            rc = lib.ekpy_future_poll(fut, out)
            if rc == EK_PENDING:
                await _PENDING
                continue
            if rc < 0:
                if rc == _NO_TASK:
                    _no_task()
                raise error_from_code(rc)
            return out[0]
    finally:
        lib.ek_future_drop(fut)


async def sleep(seconds: float) -> None:
    """Suspend the task for `seconds` (a C timer; 1 ms resolution, rounded up).
    sleep(0) yields to the other runnable tasks."""
    ms = _ms(seconds)
    if ms == 0:
        rc = lib.ekpy_io_yield()
        if rc == EK_PENDING:
            await _PENDING
        elif rc == _NO_TASK:
            _no_task()
        return
    f = ffi.new("ek_future **")
    check(lib.ek_sleep(_rt()._require(), ms, f))
    await _await_future(f[0])


class Timeout:
    """The async context manager timeout() returns."""

    def __init__(self, seconds: Optional[float]) -> None:
        self._ms = None if seconds is None else _ms(seconds)
        self._deadline: Optional[_Deadline] = None
        self._task: Optional[Task[Any]] = None
        self._expired = False

    def expired(self) -> bool:
        """True if the deadline passed inside the block."""
        return self._expired

    async def __aenter__(self) -> "Timeout":
        task = current_task()
        if task is None:
            raise RuntimeError("timeout() must be used inside a task")
        self._task = task
        if self._ms is not None:
            f = ffi.new("ek_future **")
            check(lib.ek_sleep(_rt()._require(), self._ms, f))
            self._deadline = _Deadline(f[0])
            task._deadlines.append(self._deadline)
            if task._ct is not None:
                task._ct.fast = 0  # the step polls the deadline
        return self

    async def __aexit__(self, et: Optional[Type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> Optional[bool]:
        d = self._deadline
        if d is None:
            return None
        self._deadline = None
        task = self._task
        if task is not None and d in task._deadlines:
            task._deadlines.remove(d)
        d.drop()
        if d.expired:
            self._expired = True
            if exc is not None and exc is d.exc:
                raise TimedOut(lib.EK_ETIMEDOUT, "deadline expired") from None
        return None


def timeout(seconds: Optional[float]) -> Timeout:
    """`async with ekiden.timeout(s):` cancels the block after `s` seconds and
    raises TimeoutError (ekiden.TimedOut) from the `async with`. None: no limit."""
    return Timeout(seconds)


async def wait_for(aw: Awaitable[T], seconds: Optional[float]) -> T:
    """Await `aw` for at most `seconds`: its result, or TimeoutError. A task
    given here is cancelled on timeout."""
    try:
        async with timeout(seconds):
            return await aw
    except TimeoutError:
        if isinstance(aw, Task):
            aw.cancel()
        raise


class Interval:
    """An async iterator of ticks `seconds` apart (ekiden.interval). Each item is
    the scheduled time of the tick (runtime clock, seconds). The first tick is
    immediate. Missed ticks: "burst" (default, as Tokio), "delay" or "skip"."""

    _POLICIES = {"burst": 0, "delay": 1, "skip": 2}

    _ptr: Any = None

    def __init__(self, seconds: float, missed: str = "burst") -> None:
        ms = _ms(seconds)
        if ms < 1:
            raise ValueError("interval period must be at least 1 ms")
        if missed not in self._POLICIES:
            raise ValueError("missed must be 'burst', 'delay' or 'skip'")
        rt = _rt()
        p = ffi.new("ek_interval **")
        check(lib.ek_interval_new(rt._require(), ms, self._POLICIES[missed], p))
        self._ptr: Any = p[0]
        self._tick = ffi.new("uint64_t *")
        rt._track(self)

    def _release(self) -> None:
        if self._ptr is not None:
            lib.ek_interval_free(self._ptr)
            self._ptr = None

    close = _release

    def __del__(self) -> None:
        self._release()

    def __aiter__(self) -> "Interval":
        return self

    async def tick(self) -> float:
        """Wait for the next tick; its scheduled time in seconds."""
        while True:
            if self._ptr is None:
                raise error_from_code(lib.EK_ECLOSED)
            rc = lib.ek_interval_tick(self._ptr, _cx(), self._tick)
            if rc == EK_OK:
                return int(self._tick[0]) / 1000.0
            if rc != EK_PENDING:
                raise error_from_code(rc)
            await _PENDING

    async def __anext__(self) -> float:
        return await self.tick()


def interval(seconds: float, *, missed: str = "burst") -> Interval:
    """`async for t in ekiden.interval(0.5):` ticks every half second."""
    return Interval(seconds, missed)

