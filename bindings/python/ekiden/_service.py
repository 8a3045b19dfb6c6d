"""Services: asynchronous functions from request to response, in any language.

`ekiden.Service(handler)` turns `async def handler(request) -> response` (or an
object with `async __call__`) into a C service (ekiden/service.h). The Python
side is always run on the thread of `ekiden.run`: the C service is wrapped in
ek_svc_buffer_local, whose worker is a local task on that thread, so a caller on
any thread (a C task on a worker, a C server) reaches the handler through the
buffer's queue and the interpreter is never entered from a worker. Each call
runs the handler as a Python task of its own; dropping the response (a caller's
timeout, a cancelled caller) cancels that task.

Messages. bytes-like requests and responses travel as C byte messages (a C
service sees bytes); any other Python object travels as a host message carrying
a cffi handle (another Python caller gets the object back; C sees an opaque
host value). An exception in a handler fails the response with its EK_E* code
(an EkidenError's own code, EK_ETIMEDOUT for TimeoutError, EK_EIO otherwise) and
is reported through ekiden.set_exception_handler unless it was an EkidenError.

Any ek_service handle, whoever implemented it, is a `ServiceHandle`: `await
svc(request)` calls it (readiness first, then call, then the response), and the
middleware of ekiden.middleware wraps it.
"""
from __future__ import annotations

import types
from typing import Any, Awaitable, Callable, Coroutine, Dict, List, Optional, Sequence, Tuple, Union

from ._ekiden import ffi, lib
from ._errors import CancelledError, EkidenError, TimedOut, check, error_from_code
from ._runtime import _PENDING, _RUNNING, Runtime, Task, _await_future, _cx, _keep, _report, _rt
from . import http as _http
from . import resp as _resp

__all__ = ["Service", "ServiceHandle", "Handler", "to_msg", "from_msg", "register", "lookup",
           "unregister"]

# An async function (or an object with async __call__), or a plain function
# returning the response.
Handler = Callable[[Any], Union[Awaitable[Any], Any]]
EK_OK = 0
EK_PENDING = 1


# ---------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------

def to_msg(value: Any, resp: bool = False, http: bool = False) -> Any:
    """A new ek_msg for a Python value (the caller owns it); RESP values when
    `resp` (see ekiden.resp); HTTP messages for ekiden.http values, and for
    bytes or str when `http` (a 200 response: see ekiden.http)."""
    if resp:
        return _resp.to_msg(value)
    if http or isinstance(value, (_http.Request, _http.Response)):
        return _http.to_msg(value)
    out = ffi.new("ek_msg **")
    if isinstance(value, (bytes, bytearray, memoryview)):
        src = ffi.from_buffer(value)
        check(lib.ek_msg_bytes_copy(src, len(src), out))
        return out[0]
    h = ffi.new_handle(value)
    _keep.add(h)
    rc = lib.ek_msg_host(h, lib.ekpy_handle_clone_fn, lib.ekpy_handle_drop_fn, out)
    if rc != EK_OK:
        _keep.discard(h)  # (the drop function may already have run: discard is idempotent)
        raise error_from_code(rc)
    return out[0]


_resp_bulks = lib.ekpy_io_resp_bulks


def from_msg(msg: Any) -> Any:
    """The Python value of an ek_msg (borrowed: the caller still frees msg)."""
    f = _resp._flat
    n = _resp_bulks(msg, f.flat)
    if n >= 0:  # a RESP request (an array of bulk strings): one C call
        return _resp._bulk_items(f, n)
    kind = lib.ek_msg_kind(msg)
    if kind == lib.EK_MSG_BYTES:
        data = ffi.new("const uint8_t **")
        size = ffi.new("size_t *")
        check(lib.ek_msg_data(msg, data, size))
        return ffi.unpack(ffi.cast("char *", data[0]), size[0])
    if kind == lib.EK_MSG_HOST:
        obj = ffi.new("void **")
        check(lib.ek_msg_host_get(msg, obj))
        if obj[0] in _keep:  # a Python object; other hosts' values stay opaque
            return ffi.from_handle(obj[0])
        return HostValue(int(ffi.cast("uintptr_t", obj[0])))
    if kind == lib.EK_MSG_RESP:
        return _resp.from_msg(msg)
    if kind == lib.EK_MSG_HTTP_REQUEST or kind == lib.EK_MSG_HTTP_RESPONSE:
        return _http.from_msg(msg)
    if kind < 0:
        raise error_from_code(kind)
    return Message(kind)


class HostValue:
    """A host message made by another language (its pointer, as an int)."""

    def __init__(self, address: int) -> None:
        self.address = address

    def __repr__(self) -> str:
        return f"<ekiden.HostValue 0x{self.address:x}>"


class Message:
    """A message of a kind this binding does not convert yet (RESP, HTTP, stream)."""

    def __init__(self, kind: int) -> None:
        self.kind = kind

    def __repr__(self) -> str:
        return f"<ekiden.Message kind={self.kind}>"


@ffi.def_extern(error=-12)
def ekpy_handle_clone(handle: Any, out: Any) -> int:
    h = ffi.new_handle(ffi.from_handle(handle))
    _keep.add(h)
    out[0] = h
    return EK_OK


# ---------------------------------------------------------------------------
# Handles
# ---------------------------------------------------------------------------

class ServiceHandle:
    """A C service handle (ek_service *). `await svc(request)`: response.

    Tasks that call one handle take turns only for readiness (poll_ready and the
    call); their responses are awaited concurrently.
    """

    def __init__(self, ptr: Any, rt: Runtime, *, resp: bool = False) -> None:
        self._ptr: Any = ptr
        self._rt = rt
        self.resp = resp  # requests are sent as RESP values (ekiden.resp)
        self._busy = False
        self._waiters: List[Any] = []
        rt._track(self)

    def _p(self) -> Any:
        if self._ptr is None:
            raise error_from_code(lib.EK_ECLOSED)
        return self._ptr

    def _take(self) -> Any:
        """Give the C handle to a middleware constructor (which consumes it): a
        clone when the service is shareable (this object stays usable), else
        the handle itself (this object is then used up)."""
        p = self._p()
        if lib.ek_service_is_shareable(p) == 1:
            out = ffi.new("ek_service **")
            check(lib.ek_service_clone(p, out))
            return out[0]
        self._ptr = None
        return p

    @property
    def shareable(self) -> bool:
        return check(lib.ek_service_is_shareable(self._p())) == 1

    @property
    def status(self) -> str:
        """"open", "busy" or "closed"."""
        if self._ptr is None:
            return "closed"
        return ("open", "busy", "closed")[check(lib.ek_service_status(self._ptr))]

    @property
    def pending(self) -> int:
        """Responses of this handle in flight."""
        return check(lib.ek_service_pending(self._p()))

    async def _turn(self) -> None:
        while self._busy:
            w = lib.ek_cx_waker(_cx())
            self._waiters.append(w)
            try:
                await _PENDING
            finally:
                try:
                    self._waiters.remove(w)
                except ValueError:
                    pass
                else:
                    lib.ek_waker_drop(w)
        self._busy = True

    def _end_turn(self) -> None:
        self._busy = False
        if self._waiters:
            lib.ek_waker_wake(self._waiters.pop(0))

    async def __call__(self, request: Any) -> Any:
        msg = to_msg(request, self.resp)
        fp = ffi.new("ek_future **")
        try:
            await self._turn()
            try:
                p = self._p()
                while True:
                    rc = lib.ek_service_poll_ready(p, _cx())
                    if rc == EK_OK:
                        break
                    if rc != EK_PENDING:
                        raise error_from_code(rc)
                    try:
                        await _PENDING
                    except BaseException:
                        lib.ek_service_disarm(p)  # gives back its place in a queue
                        raise
                m, msg = msg, None
                check(lib.ek_service_call(p, m, fp))  # consumes the request
            finally:
                self._end_turn()
        finally:
            if msg is not None:
                lib.ek_msg_free(msg)
        out = await _await_future(fp[0])
        resp = ffi.cast("ek_msg *", out)
        try:
            return from_msg(resp)
        finally:
            lib.ek_msg_free(resp)

    def close(self) -> None:
        """Release the handle (responses in flight go on)."""
        self._release()

    def _release(self) -> None:
        p, self._ptr = self._ptr, None
        if p is not None:
            lib.ek_service_free(p)

    def __del__(self) -> None:
        if getattr(self, "_ptr", None) is not None:
            self._release()


class _Impl:
    """The state of a Python service's inner C service (the handler and how its
    messages convert), and the handler being stepped by a batch."""

    __slots__ = ("handler", "rt", "name", "resp", "http", "batch", "_coro", "_task")

    def __init__(self, handler: Handler, rt: Runtime, name: str, resp: bool,
                 batch: bool = False) -> None:
        self.handler = handler
        self.rt = rt
        self.name = name
        self.resp = resp
        self.batch = batch  # the handler takes a list of requests, gives a list of responses
        self.http = False  # set by serve(codec="http"): bytes/str answers are 200 responses
        self._coro: Optional[Coroutine[Any, Any, Any]] = None  # in its first step
        self._task: Optional[Task[Any]] = None  # its Task, once asked for

    def _current_task(self) -> Optional[Task[Any]]:
        # current_task() inside a handler's first step (ekiden_glue.c made this
        # object the current task of the batch): the handler's Task, made now,
        # of the coroutine being stepped here (_first_step) or by the glue
        # (_c_call_each: _c_stepping tells it the Task was made).
        t = self._task
        if t is None:
            coro = self._coro if self._coro is not None else _c_stepping()
            if coro is not None:
                t = self._task = Task(coro, self.rt, self.name, driven=True)
                t._svc = (self.resp, self.http)
        return t

    def _answer(self, value: Any) -> "_Pre":
        # An answer the glue does not convert itself (ekpy__py_answer): a
        # message made here, or the failure it is.
        if self.batch and isinstance(value, BaseException):
            # A batch handler's way to fail one request: with the exception's code.
            return _Pre(_R_FAIL, int(lib.EK_ECANCELED) if isinstance(value, CancelledError)
                        else _error_code(value))
        try:
            m = to_msg(value, self.resp, self.http)
        except BaseException as e:
            _report("service response cannot be converted to a message", e)
            return _Pre(_R_FAIL, _error_code(e))
        return _Pre(_R_MSG, int(_cast("uintptr_t", m)))

    def _failure(self, e: BaseException) -> "_Pre":
        # A handler raised (in its first step): the response fails with its code.
        if isinstance(e, CancelledError):
            return _Pre(_R_FAIL, int(lib.EK_ECANCELED))
        if not isinstance(e, EkidenError):
            _report(f"exception in service handler {self.name}", e)
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            self.rt._interrupt()
        return _Pre(_R_FAIL, _error_code(e))

    def _first_step(self, v: Any) -> Tuple[bool, Any]:
        # A handler's awaitable result, stepped once here (current_task() makes
        # its Task if asked): (True, its value) if it completed, and what it
        # raised is raised; (False, its Task, driven: not spawned) if it
        # suspended, for whoever goes on with it to step it again with its own
        # context (what it awaits registered the batch's waker).
        r = v if type(v) is _CoroutineType else _await(v)
        self._coro = r
        try:
            r.send(None)
        except StopIteration as stop:
            t = self._task
            if t is not None:  # made for current_task(): done with
                t._finish(stop.value, None)
                t._on_drop()
            return True, stop.value
        except BaseException as e:
            t = self._task
            if t is not None:
                t._finish(None, e, cancelled=isinstance(e, CancelledError))
                t._log_exc = False
                t._on_drop()
            raise
        else:
            t = self._task
            if t is None:
                t = Task(r, self.rt, self.name, driven=True)
            return False, t
        finally:
            self._coro = None
            self._task = None

    def _run_batch(self, b: Any) -> None:
        # Every request of the batch: convert it (the glue makes most: _c_requests), call
        # the handler and step it once; what completed is answered in the one
        # reply call at the end, a handler that suspended becomes a Task that
        # its slot drives (see ekiden_glue.c).
        reqs, npre = _c_requests()
        if npre:
            npre = _convert(b, reqs)
        if self.batch:
            self._run_list(reqs, npre)
            return
        # Each answer replaces its request in reqs (a list of the batch's own):
        # no second list per batch. The glue calls the handler and steps a
        # coroutine once (_c_call_each), and calls back _stepped, _failure and
        # _value for what it does not finish itself.
        _c_call_each(reqs, self.handler, self)
        _c_reply(reqs, (1 if self.resp else 0) | (0 if self.http else 2), self._answer)

    def _stepped(self, r: Coroutine[Any, Any, Any], kind: int, value: Any) -> Any:
        # The end of a coroutine's first step that _c_call_each left here:
        # kind 0, it returned value after current_task() made its Task; 1, it
        # suspended (its slot steps it again with its own context); 2, it
        # raised value. The answer, as _c_reply takes it.
        t = self._task
        self._coro = None
        self._task = None
        if kind == 0:
            if t is not None:  # made for current_task(): done with
                t._finish(value, None)
                t._on_drop()
            return value
        if kind == 2:
            if t is not None:
                t._finish(None, value, cancelled=isinstance(value, CancelledError))
                t._log_exc = False
                t._on_drop()
            return self._failure(value)
        try:
            if t is None:
                t = Task(r, self.rt, self.name, driven=True)
            t._svc = (self.resp, self.http)
            return _Pre(_R_TASK, int(_cast("uintptr_t", t._handle)))
        except BaseException as e:
            return self._failure(e)

    def _value(self, v: Any) -> Any:
        # A handler's result of a type _c_call_each does not take as it is: an
        # awaitable (not a coroutine) is stepped once here; anything else is the
        # answer.
        try:
            if hasattr(type(v), "__await__"):
                done, v = self._first_step(v)
                if not done:  # its slot steps it again with its own context
                    v._svc = (self.resp, self.http)
                    v = _Pre(_R_TASK, int(_cast("uintptr_t", v._handle)))
        except BaseException as e:
            v = self._failure(e)
        return v

    def _run_list(self, reqs: List[Any], npre: int) -> None:
        # A batch handler: one call with the list of the batch's requests (those
        # whose caller is still there and that convert), stepped once; its list
        # of responses is answered in the one reply call, or, if it suspended,
        # it goes on as a task of its own that every request's slot waits for.
        flags = (1 if self.resp else 0) | (0 if self.http else 2)
        live = [r for r in reqs if type(r) is not _Pre] if npre else reqs
        if not live:
            _c_reply(reqs, flags, self._answer)
            return
        try:
            res: Any = self.handler(live)
            tv = type(res)
            done = True
            if tv is _CoroutineType or (tv not in _PLAIN and hasattr(tv, "__await__")):
                done, res = self._first_step(res)
                if not done:  # a task of its own goes on with it
                    rc = res._start(_NULL)
                    if rc < 0:  # the C side ran its drop: the coroutine is closed
                        raise error_from_code(rc)
                    run = _BatchRun(self, res, len(live))
                    res = [_Pre(_R_TASK, int(_cast("uintptr_t", run.part(j))))
                           for j in range(len(live))]
            if done and (type(res) is not list or len(res) != len(live)):
                res = _check_list(res, len(live), self.name)
        except BaseException as e:
            fail = self._failure(e)
            _c_reply([r if type(r) is _Pre else fail for r in reqs], flags, self._answer)
            return
        if npre:
            it = iter(res)
            res = [r if type(r) is _Pre else next(it) for r in reqs]
        # The answers to C in one call, which reads the common values itself
        # and asks _answer for the rest.
        _c_reply(res, flags, self._answer)

class _Pre:
    """A batch slot's answer that is no handler's value: a request that failed
    (before or in its handler), whose caller is gone, or whose handler goes on
    as a task (its Task handle's address)."""

    __slots__ = ("kind", "val")

    def __init__(self, kind: int, val: int) -> None:
        self.kind = kind
        self.val = val


def _convert(b: Any, reqs: List[Any]) -> int:
    # The requests _c_requests left to Python (_OTHER: from_msg's value, or a
    # _Pre of its failure), in place; how many _Pre are left (those and the
    # requests whose caller is gone, _SKIP).
    npre = 0
    for i in range(len(reqs)):
        if reqs[i] is _OTHER:
            try:
                reqs[i] = from_msg(b.reqs[i])
                continue
            except BaseException as e:
                reqs[i] = _Pre(_R_FAIL, _error_code(e))
        if type(reqs[i]) is _Pre:
            npre += 1
    return npre

async def _await(aw: Awaitable[Any]) -> Any:
    return await aw


def _check_list(out: Any, n: int, name: str) -> Any:
    # A batch handler's result: a list (or tuple) of one response per request.
    if type(out) is not list and type(out) is not tuple:
        raise TypeError(f"batch handler {name} must return a list of {n} responses, "
                        f"not {type(out).__name__}")
    if len(out) != n:
        raise ValueError(f"batch handler {name} returned {len(out)} responses for {n} requests")
    return out if type(out) is list else list(out)


class _BatchRun:
    """A batch handler that suspended in its first step: its Task runs it on;
    the slot of each of its requests holds a _Part, whose polls wait for the
    task and then give that request's response."""

    __slots__ = ("impl", "task", "n", "alive", "parts", "out", "code")

    def __init__(self, impl: _Impl, task: Task[Any], n: int) -> None:
        self.impl = impl
        self.task = task
        self.n = n
        self.alive = 0
        self.parts: List[_Part] = []
        self.out: Any = None
        self.code = 0  # the EK_E* code every request fails with (0: none)
        task.add_done_callback(self._done)

    def part(self, j: int) -> Any:
        p = _Part(self, j)
        self.parts.append(p)
        self.alive += 1
        return p.handle

    def _done(self, t: Task[Any]) -> None:
        t._log_exc = False
        if t.cancelled():
            self.code = int(lib.EK_ECANCELED)
        elif t._exc is not None:
            if not isinstance(t._exc, EkidenError):
                _report(f"exception in service handler {self.impl.name}", t._exc)
            self.code = _error_code(t._exc)
        else:
            try:
                self.out = _check_list(t._result, self.n, self.impl.name)
            except BaseException as e:
                _report(f"exception in service handler {self.impl.name}", e)
                self.code = _error_code(e)
        parts, self.parts = self.parts, []
        for p in parts:
            w, p.waker = p.waker, None
            if w is not None:
                lib.ek_waker_wake(w)

    def release(self) -> None:
        self.alive -= 1
        if self.alive == 0:
            self.parts = []  # (no cycle left: each part let go of this run)
            if not self.task.done():
                self.task.cancel()  # every caller is gone


class _Part:
    """One request of a suspended batch (see _BatchRun)."""

    __slots__ = ("run", "j", "waker", "handle")

    def __init__(self, run: _BatchRun, j: int) -> None:
        self.run: Any = run
        self.j = j
        self.waker: Any = None
        h = ffi.new_handle(self)
        self.handle = h
        _keep.add(h)

    def _current_task(self) -> Optional[Task[Any]]:
        return self.run.task if self.run is not None else None

    def poll(self, out: Any) -> int:
        run = self.run
        if not run.task.done():
            w = lib.ekpy_io_waker()  # this poll's (the slot's caller's) waker
            if self.waker is not None:
                lib.ek_waker_drop(self.waker)
            self.waker = w
            return EK_PENDING
        self._free()  # (run is kept here: the part let go of it)
        if run.code:
            return int(run.code)
        v = run.out[self.j]
        if isinstance(v, BaseException):
            return int(lib.EK_ECANCELED) if isinstance(v, CancelledError) else _error_code(v)
        try:
            out[0] = to_msg(v, run.impl.resp, run.impl.http)
        except BaseException as e:
            _report("service response cannot be converted to a message", e)
            return _error_code(e)
        return EK_OK

    def _free(self) -> None:
        if self.waker is not None:
            lib.ek_waker_drop(self.waker)
            self.waker = None
        h, self.handle = self.handle, None
        if h is not None:
            _keep.discard(h)
            run, self.run = self.run, None
            run.release()

    def drop(self) -> None:
        self._free()


_NULL = ffi.NULL
_cast = ffi.cast
_CoroutineType = types.CoroutineType
_R_SKIP = int(lib.EKPY_R_SKIP)
_R_MSG = int(lib.EKPY_R_MSG)
_R_FAIL = int(lib.EKPY_R_FAIL)
_R_TASK = int(lib.EKPY_R_TASK)
_SKIP = _Pre(_R_SKIP, 0)
_OTHER = _Pre(_R_FAIL, int(lib.EK_EIO))  # (a marker of _c_requests: replaced)
_c_setup: Any
_c_requests: Any
_c_reply: Any
_c_call_each: Any
_c_stepping: Any
if lib.ekpy_io_install(__name__.encode(), lib.EKPY_INSTALL_SERVICE) != 0:
    raise ImportError("ekiden: the batch functions of the glue cannot be installed")
_c_setup(_resp.Simple, _resp.Error, _CoroutineType, _Pre, _SKIP, _OTHER)
# Answers that are never awaitable (a plain handler's usual results): no
# attribute lookup, which costs a formatted AttributeError when it fails.
_PLAIN = frozenset((bytes, type(None), _resp.Simple, _resp.Error, int, str, list, dict, tuple,
                    float, bool, bytearray))


def _error_code(exc: BaseException) -> int:
    if isinstance(exc, EkidenError):
        return exc.code
    if isinstance(exc, TimeoutError):
        return int(lib.EK_ETIMEDOUT)
    return int(lib.EK_EIO)


@ffi.def_extern(error=-5)
def ekpy_svc_batch(self_h: Any, batch: Any) -> int:
    impl: _Impl = ffi.from_handle(self_h)
    impl._run_batch(batch)
    return EK_OK


@ffi.def_extern()
def ekpy_svc_drop(self_h: Any) -> None:
    _keep.discard(self_h)


@ffi.def_extern(error=-5)
def ekpy_resp_poll(h: Any, out: Any) -> int:
    # The glue (ekpy__resp_poll) made the task current with this poll's context.
    t: Any = ffi.from_handle(h)
    if type(t) is _Part:
        return int(t.poll(out))
    if t._state == _RUNNING and t._step() == EK_PENDING:
        return EK_PENDING
    try:
        return _response(t, out)
    finally:
        # The result is given: the glue drops the future without calling back,
        # so the handle goes now.
        t._on_drop()


def _response(t: Task[Any], out: Any) -> int:
    if t.cancelled():
        return int(lib.EK_ECANCELED)
    exc = t._exc
    t._log_exc = False
    if exc is not None:
        if not isinstance(exc, EkidenError):
            _report(f"exception in service handler {t.get_name()}", exc)
        return _error_code(exc)
    resp, http = t._svc
    try:
        out[0] = to_msg(t._result, resp, http)
    except BaseException as e:
        _report("service response cannot be converted to a message", e)
        return _error_code(e)
    return EK_OK


@ffi.def_extern()
def ekpy_resp_drop(h: Any) -> None:
    t: Any = ffi.from_handle(h)
    if type(t) is _Part:
        t.drop()
        return
    if t._state == _RUNNING and t._coro is not None:
        # The caller gave up on the response: the handler goes on as a task of
        # its own (its own waker), cancelled at its current await, so its
        # finally blocks may still await. If it cannot be spawned (the runtime
        # is closing) the C side has run its drop: the coroutine is closed.
        if t._waker is not None:
            lib.ek_waker_drop(t._waker)
            t._waker = None
        t._must_cancel = True
        if not t._rt._closed:
            # On failure too the C task's drop (Task._on_drop) has run.
            t._start(ffi.NULL)
            return
    t._on_drop()


class Service(ServiceHandle):
    """A Python handler as a service of the C runtime (see the module doc).

    bound: requests that may wait in the buffer at once (callers beyond it wait
    for room). resp: responses are RESP values (ekiden.resp), as the RESP codec
    needs; calls from Python then send RESP requests too. batch: the handler
    takes a list of requests (every request of a batch: one call per read of a
    pipelining connection) and returns a list or tuple of one response per
    request, in order (or an awaitable of it); an exception instance in that
    list fails its own request; a handler that raises or returns anything else
    fails every request of the batch with EK_EIO (the exception is reported).
    Create it inside ekiden.run; it lives until closed or the run ends.
    """

    def __init__(self, handler: Handler, *, bound: int = 1024, name: Optional[str] = None,
                 resp: bool = False, batch: bool = False) -> None:
        if not callable(handler):
            raise TypeError("a service handler is an async callable")
        if bound < 1:
            raise ValueError("bound must be at least 1")
        rt = _rt()
        impl = _Impl(handler, rt, name or str(getattr(handler, "__name__", "service")), resp,
                     bool(batch))
        self._impl = impl
        h = ffi.new_handle(impl)
        _keep.add(h)
        inner = ffi.new("ek_service **")
        state = ffi.new("void **")
        check(lib.ekpy_service_new(h, inner, state))  # on error ekpy_svc_drop released h
        self._state: Any = state[0]  # a reference of ours (ekpy_service_release)
        out = ffi.new("ek_service **")
        try:
            check(lib.ek_svc_buffer_local(rt._require(), inner[0], bound, out))  # consumes inner
        except BaseException:
            self._drop_state()
            raise
        super().__init__(out[0], rt, resp=resp)

    def _direct(self) -> Any:
        """A new handle that calls the handler with no buffer (for a local
        server: every call on this thread)."""
        if self._state is None:
            raise error_from_code(lib.EK_ECLOSED)
        out = ffi.new("ek_service **")
        check(lib.ekpy_service_direct(self._state, out))
        return out[0]

    def _drop_state(self) -> None:
        st, self._state = self._state, None
        if st is not None:
            lib.ekpy_service_release(st)

    def _release(self) -> None:
        super()._release()
        self._drop_state()

    def __del__(self) -> None:
        if getattr(self, "_ptr", None) is not None:
            super()._release()
        if getattr(self, "_state", None) is not None:
            self._drop_state()


def register(name: str, svc: ServiceHandle) -> None:
    """Register svc under name in the runtime's registry, for callers in any
    language (a C caller looks it up with ek_registry_lookup). A shareable svc is
    cloned (svc stays usable); else the registry takes it (and buffers it).
    Errors: ekiden.FileExists (name taken)."""
    if not isinstance(name, str):
        raise TypeError("name must be a str")
    rt = _rt()
    check(lib.ek_registry_register(rt._require(), name.encode(), svc._take()))


def lookup(name: str) -> ServiceHandle:
    """A handle of the service registered under name, whoever wrote it.
    Errors: FileNotFoundError (ekiden.NotFound) for an unknown name."""
    if not isinstance(name, str):
        raise TypeError("name must be a str")
    rt = _rt()
    out = ffi.new("ek_service **")
    check(lib.ek_registry_lookup(rt._require(), name.encode(), out))
    return ServiceHandle(out[0], rt)


def unregister(name: str) -> None:
    """Remove name from the registry (handles already looked up keep working)."""
    check(lib.ek_registry_unregister(_rt()._require(), name.encode()))


def _handles(services: Sequence[ServiceHandle]) -> List[Any]:
    return [s._take() for s in services]
