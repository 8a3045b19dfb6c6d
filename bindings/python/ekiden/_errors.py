"""Errors: one EkidenError(OSError) hierarchy mapped from the runtime's EK_E* codes.

Every failure of a C operation raises `error_from_code(code)`: an instance of the
class registered for the code (also an instance of the builtin exception Python
has for it, so `except ConnectionRefusedError` works), or of EkidenError itself.
`.code` is the negative EK_E* code, `.name` its name ("ECONNREFUSED"), and
`.errno` the positive errno for OS errors (None for the runtime's own codes).
"""
from __future__ import annotations

import socket
from typing import Dict, Optional, Type

from ._ekiden import ffi, lib

__all__ = [
    "EkidenError", "CancelledError", "InvalidStateError",
    "ConnectionRefused", "ConnectionReset", "ConnectionAborted", "BrokenPipe", "TimedOut",
    "NotFound", "FileExists", "PermissionDenied", "Interrupted", "WouldBlock",
    "InvalidArgument", "AddressInUse", "AddressNotAvailable", "Closed", "Full", "Empty",
    "WrongThread", "Deadlock", "NoMemory", "Canceled", "Overloaded", "ResolveError", "error_from_code",
    "error_name", "strerror",
]

# Codes at or below this are the runtime's own (not errno values).
_RUNTIME_CODES = -4000


def error_name(code: int) -> str:
    """The code's name without prefix, e.g. "ECLOSED" ("UNKNOWN" if unknown)."""
    return str(ffi.string(lib.ek_err_name(code)).decode())


def strerror(code: int) -> str:
    """The runtime's message for the code."""
    return str(ffi.string(lib.ek_strerror(code)).decode())


class EkidenError(OSError):
    """An error code from the runtime. `.code` (negative), `.name`, `.errno`."""

    code: int
    name: str

    def __init__(self, code: int, message: Optional[str] = None) -> None:
        text = message if message is not None else strerror(code)
        super().__init__(-code if _RUNTIME_CODES < code < 0 else None, text)
        self.code = code
        self.name = error_name(code)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.code, self.strerror))

    def __str__(self) -> str:
        return f"[{self.name}] {self.strerror}"


class CancelledError(BaseException):
    """Raised inside a task at its current await when the task is cancelled.

    A BaseException (as asyncio's), so that `except Exception` does not swallow it.
    """


class InvalidStateError(Exception):
    """Task.result() / exception() on a task that has not finished."""


class ConnectionRefused(EkidenError, ConnectionRefusedError):
    """EK_ECONNREFUSED."""


class ConnectionReset(EkidenError, ConnectionResetError):
    """EK_ECONNRESET."""


class ConnectionAborted(EkidenError, ConnectionAbortedError):
    """EK_ECONNABORTED."""


class BrokenPipe(EkidenError, BrokenPipeError):
    """EK_EPIPE: writing to a connection that is shut down."""


class TimedOut(EkidenError, TimeoutError):
    """EK_ETIMEDOUT (a deadline or the kernel's connect/keepalive timeout)."""


class NotFound(EkidenError, FileNotFoundError):
    """EK_ENOENT."""


class FileExists(EkidenError, FileExistsError):
    """EK_EEXIST."""


class PermissionDenied(EkidenError, PermissionError):
    """EK_EACCES, EK_EPERM."""


class Interrupted(EkidenError, InterruptedError):
    """EK_EINTR."""


class WouldBlock(EkidenError, BlockingIOError):
    """EK_EAGAIN."""


class InvalidArgument(EkidenError, ValueError):
    """EK_EINVAL: a bad argument reached the runtime."""


class AddressInUse(EkidenError):
    """EK_EADDRINUSE."""


class AddressNotAvailable(EkidenError):
    """EK_EADDRNOTAVAIL."""


class Closed(EkidenError):
    """EK_ECLOSED: the handle (socket, channel, runtime) is closed."""


class Full(EkidenError):
    """EK_EFULL: no capacity left (try_send on a full channel)."""


class Empty(EkidenError):
    """EK_EEMPTY: nothing available."""


class WrongThread(EkidenError):
    """EK_EWRONGTHREAD: the object belongs to another thread."""


class Deadlock(EkidenError):
    """EK_EDEADLK: a blocking call from a runtime thread."""


class NoMemory(EkidenError, MemoryError):
    """EK_ENOMEM."""


class Canceled(EkidenError):
    """EK_ECANCELED: a C operation or task was cancelled underneath."""


class Overloaded(EkidenError):
    """EK_EOVERLOADED: a service shed the request (middleware.load_shed)."""


class ResolveError(EkidenError, socket.gaierror):
    """EK_EAI_*: name resolution failed."""


_BY_CODE: Dict[int, Type[EkidenError]] = {
    lib.EK_ECONNREFUSED: ConnectionRefused,
    lib.EK_ECONNRESET: ConnectionReset,
    lib.EK_ECONNABORTED: ConnectionAborted,
    lib.EK_EPIPE: BrokenPipe,
    lib.EK_ETIMEDOUT: TimedOut,
    lib.EK_ENOENT: NotFound,
    lib.EK_EEXIST: FileExists,
    lib.EK_EACCES: PermissionDenied,
    lib.EK_EPERM: PermissionDenied,
    lib.EK_EINTR: Interrupted,
    lib.EK_EAGAIN: WouldBlock,
    lib.EK_EINVAL: InvalidArgument,
    lib.EK_EADDRINUSE: AddressInUse,
    lib.EK_EADDRNOTAVAIL: AddressNotAvailable,
    lib.EK_ECLOSED: Closed,
    lib.EK_EFULL: Full,
    lib.EK_EEMPTY: Empty,
    lib.EK_EWRONGTHREAD: WrongThread,
    lib.EK_EDEADLK: Deadlock,
    lib.EK_ENOMEM: NoMemory,
    lib.EK_ECANCELED: Canceled,
    lib.EK_EOVERLOADED: Overloaded,
    lib.EK_EAI_NONAME: ResolveError,
    lib.EK_EAI_AGAIN: ResolveError,
    lib.EK_EAI_FAIL: ResolveError,
    lib.EK_EAI_FAMILY: ResolveError,
    lib.EK_EAI_OTHER: ResolveError,
}


def error_from_code(code: int, message: Optional[str] = None) -> EkidenError:
    """The exception for a negative EK_E* code (not raised: returned)."""
    return _BY_CODE.get(code, EkidenError)(code, message)


def check(rc: int) -> int:
    """Raise for a negative status; return it otherwise."""
    if rc < 0:
        raise error_from_code(rc)
    return rc
