"""C middleware over any service (ekiden/service.h): the same objects that wrap a C
client or server wrap a Python service.

Each function takes a service and returns a new one. A shareable inner service
(an ekiden.Service, anything behind buffer()) is cloned, so the original stays
usable; one that is not shareable is used up by the wrapper (calling the
original afterwards raises ekiden.Closed). Canonical order, outermost first:
timeout, load_shed, limits, buffer, balance.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from ._ekiden import ffi, lib
from ._errors import check
from ._runtime import _ms, _rt
from ._service import ServiceHandle, _handles, from_msg

__all__ = ["timeout", "retry", "concurrency_limit", "rate_limit", "load_shed", "buffer",
           "balance", "RetryPolicy"]

RetryPolicy = Callable[[Any, int, Optional[BaseException], Any], bool]


def _wrap(ptr_out: Any, like: ServiceHandle) -> ServiceHandle:
    # The wrapper speaks the inner's messages (RESP or not).
    return ServiceHandle(ptr_out[0], _rt(), resp=like.resp)


def timeout(svc: ServiceHandle, seconds: float) -> ServiceHandle:
    """A deadline per request that also counts the wait for readiness (behind a
    limit or a full buffer); past it the response fails with TimeoutError
    (ekiden.TimedOut) and the inner response is dropped (cancelled)."""
    ms = max(1, _ms(seconds))
    out = ffi.new("ek_service **")
    check(lib.ek_svc_timeout(_rt()._require(), svc._take(), ms, out))
    return _wrap(out, svc)


def concurrency_limit(svc: ServiceHandle, n: int) -> ServiceHandle:
    """At most n requests in flight; callers beyond wait in FIFO order."""
    if n < 1:
        raise ValueError("n must be at least 1")
    out = ffi.new("ek_service **")
    check(lib.ek_svc_concurrency_limit(svc._take(), n, out))
    return _wrap(out, svc)


def rate_limit(svc: ServiceHandle, n: int, per: float = 1.0) -> ServiceHandle:
    """At most n requests per `per` seconds (not shareable: buffer() it to share)."""
    if n < 1:
        raise ValueError("n must be at least 1")
    out = ffi.new("ek_service **")
    check(lib.ek_svc_rate_limit(_rt()._require(), svc._take(), n, max(1, _ms(per)), out))
    return _wrap(out, svc)


def load_shed(svc: ServiceHandle) -> ServiceHandle:
    """Fail fast with ekiden.EkidenError EOVERLOADED instead of waiting when the
    inner service is not ready."""
    out = ffi.new("ek_service **")
    check(lib.ek_svc_load_shed(svc._take(), out))
    return _wrap(out, svc)


def buffer(svc: ServiceHandle, n: int) -> ServiceHandle:
    """A queue of n requests in front of one worker task that owns the inner
    service; the result is shareable by every task (and C callers on any thread)."""
    if n < 1:
        raise ValueError("n must be at least 1")
    out = ffi.new("ek_service **")
    check(lib.ek_svc_buffer(_rt()._require(), svc._take(), n, out))
    return _wrap(out, svc)


def balance(services: Sequence[ServiceHandle]) -> ServiceHandle:
    """Power of two choices over the services, by pending requests."""
    if not services:
        raise ValueError("balance() needs at least one service")
    ptrs = _handles(services)
    arr = ffi.new("ek_service *[]", ptrs)
    out = ffi.new("ek_service **")
    check(lib.ek_svc_balance(arr, len(ptrs), out))
    return _wrap(out, services[0])


_policies: dict[int, RetryPolicy] = {}


@ffi.def_extern(error=0)
def ekpy_retry_policy(ud: Any, req: Any, attempt: int, rc: int, resp: Any) -> int:
    policy = _policies.get(int(ffi.cast("uintptr_t", ud)))
    if policy is None:
        return 0
    from ._errors import error_from_code

    exc = None if rc == 0 else error_from_code(rc)
    value = from_msg(resp) if resp != ffi.NULL else None
    request = from_msg(req)
    try:
        return 1 if policy(request, attempt, exc, value) else 0
    except Exception:
        return 0


@ffi.def_extern()
def ekpy_retry_drop(ud: Any) -> None:
    _policies.pop(int(ffi.cast("uintptr_t", ud)), None)


_next_policy = [1]


def retry(svc: ServiceHandle, policy: Optional[RetryPolicy] = None, *, budget: Optional[
        tuple[float, int, float]] = None) -> ServiceHandle:
    """Retry failed requests by policy(request, attempt, error_or_None, response)
    -> bool (default: retry any error), within a budget (ttl seconds, minimum
    retries per second, retry ratio; default Tower's (10, 10, 0.2)). The inner
    service must be shareable (an ekiden.Service, or buffer() it)."""
    rt = _rt()
    bp: Any = ffi.NULL
    if budget is not None:
        ttl, min_per_sec, ratio = budget
        b = ffi.new("ek_retry_budget **")
        check(lib.ek_retry_budget_new(rt._require(), max(1, _ms(ttl)), min_per_sec, ratio, b))
        bp = b[0]
    key = _next_policy[0]
    _next_policy[0] += 1
    _policies[key] = policy if policy is not None else (lambda req, n, exc, resp: exc is not None)
    out = ffi.new("ek_service **")
    check(lib.ek_svc_retry(rt._require(), svc._take(), bp, lib.ekpy_retry_policy,
                           ffi.cast("void *", key), lib.ekpy_retry_drop, out))
    return _wrap(out, svc)
