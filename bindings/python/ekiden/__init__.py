"""Ekiden for Python: async/await on Ekiden's C scheduler and reactor.

    import ekiden

    async def main() -> None:
        await ekiden.sleep(0.1)

    ekiden.run(main())

Python coroutines run as local tasks of the C runtime on the thread that calls
`run`; sockets, timers and channels are the C library's. See docs/python.md.
"""
from ._errors import (
    AddressInUse, AddressNotAvailable, BrokenPipe, Canceled, CancelledError, Closed,
    ConnectionAborted, ConnectionRefused, ConnectionReset, Deadlock, EkidenError, Empty,
    FileExists, Full, Interrupted, InvalidArgument, InvalidStateError, NoMemory, NotFound,
    Overloaded, PermissionDenied, ResolveError, TimedOut, WouldBlock, WrongThread, error_from_code,
    error_name, strerror,
)
from ._runtime import (
    Interval, Runtime, Task, TaskGroup, Timeout, current_runtime, current_task, interval, run,
    set_exception_handler, sleep, spawn, timeout, wait_for,
)
from ._net import (
    Address, IncompleteReadError, TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream,
    resolve,
)
from ._sync import Channel, Event, Lock, Oneshot, Semaphore
from ._service import HostValue, Message, Service, ServiceHandle, lookup, register, unregister
from . import http, middleware, resp
from ._serve import Server, connect, serve
from ._ekiden import lib as _lib, ffi as _ffi

__version__ = "0.1.0"


def library_version() -> str:
    """The version of the C library in use ("0.1.0")."""
    return str(_ffi.string(_lib.ek_version_string()).decode())


__all__ = [
    "AddressInUse", "AddressNotAvailable", "BrokenPipe", "Canceled", "CancelledError", "Closed",
    "ConnectionAborted", "ConnectionRefused", "ConnectionReset", "Deadlock", "EkidenError",
    "Empty", "FileExists", "Full", "Interrupted", "InvalidArgument", "InvalidStateError",
    "NoMemory", "NotFound", "Overloaded", "PermissionDenied", "ResolveError", "TimedOut", "WouldBlock",
    "WrongThread", "error_from_code", "error_name", "strerror",
    "Interval", "Runtime", "Task", "TaskGroup", "Timeout", "current_runtime", "current_task",
    "interval", "run", "set_exception_handler", "sleep", "spawn", "timeout", "wait_for",
    "library_version",
    "Address", "IncompleteReadError", "TcpListener", "TcpStream", "UdpSocket", "UnixListener",
    "UnixStream", "resolve",
    "Channel", "Event", "Lock", "Oneshot", "Semaphore",
    "HostValue", "Message", "Service", "ServiceHandle", "http", "middleware", "resp", "Server", "connect", "serve", "lookup", "register",
    "unregister",
]
