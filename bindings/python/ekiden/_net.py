"""Networking: TCP, UDP, Unix sockets and name resolution on the C reactor.

Every operation calls the C function with the current task's ek_cx; on
EK_PENDING the socket has registered the task's waker and the task suspends.
Reads copy once, from the kernel into a per-runtime scratch buffer and from
there into the returned bytes (read_into() skips the second copy); writes pass
the caller's buffer to C as it is (ffi.from_buffer: bytes, bytearray,
memoryview, array... no copy).

Addresses are ("host", port) tuples for IP and path strings for Unix sockets;
anything that takes an address also accepts the text form "127.0.0.1:8080",
"[::1]:80", "/run/app.sock", "@abstract".

Sockets belong to the runtime that created them; when ekiden.run returns,
every socket still open is closed and released.
"""
from __future__ import annotations

from collections.abc import Coroutine as _CoroutineABC
from typing import TYPE_CHECKING, Any, Coroutine, List, NoReturn, Optional, Tuple, Union

from ._ekiden import ffi, lib
from ._errors import InvalidArgument, check, error_from_code
from ._runtime import _IO_PENDING, _NO_TASK, _PENDING, Runtime, _await_future, _cx, _no_task, _rt

__all__ = [
    "Address", "TcpListener", "TcpStream", "UdpSocket", "UnixListener", "UnixStream",
    "IncompleteReadError", "resolve",
]

Address = Union[Tuple[str, int], str]
AddressLike = Union[Tuple[str, int], str]
Buffer = Any  # any object with the buffer protocol (bytes, bytearray, memoryview, ...)

EK_OK = 0
EK_PENDING = 1
_READ_CHUNK = 65536
_io_read = lib.ekpy_io_read
_io_read_into = lib.ekpy_io_read_into
_io_write = lib.ekpy_io_write
_unpack = ffi.unpack
_from_buffer = ffi.from_buffer


class IncompleteReadError(EOFError):
    """read_exact() reached the end of the stream first. `.partial` holds what
    was read, `.expected` the size asked for."""

    def __init__(self, partial: bytes, expected: int) -> None:
        super().__init__(f"{len(partial)} bytes read before the end of the stream, {expected} expected")
        self.partial = partial
        self.expected = expected


# ---------------------------------------------------------------------------
# Addresses
# ---------------------------------------------------------------------------

def _io_error(r: int) -> NoReturn:
    if r == _NO_TASK:
        _no_task()
    raise error_from_code(r)


# The glue's stream awaitables (see _Stream); they are coroutines to whoever
# steps one by hand (send, throw, close), and to isinstance.
_c_read: Any
_c_write_all: Any
_c_net_setup: Any
if lib.ekpy_io_install(__name__.encode(), lib.EKPY_INSTALL_NET) != 0:
    raise ImportError("ekiden: the extension's functions could not be installed")
if TYPE_CHECKING:
    class _ResourceBase:
        """The glue's C base of the resources (ekpy__res): a stream's C read
        and write_all methods and its read-ahead buffer."""

        _rbuf: bytearray

        def _c_attach(self, io: int) -> None: ...
        def _c_read_m(self, n: int = ...) -> Coroutine[Any, Any, bytes]: ...
        def _c_write_all_m(self, data: Buffer) -> Coroutine[Any, Any, None]: ...
    _op_type: Any = None
else:
    _op_type, _ResourceBase = _c_net_setup(_io_error)
_CoroutineABC.register(_op_type)


def _new_sockaddr() -> Any:
    p = ffi.new("ek_sockaddr **")
    check(lib.ek_sockaddr_new(p))
    return ffi.gc(p[0], lib.ek_sockaddr_free)


def _sockaddr(addr: AddressLike) -> Any:
    """An owned ek_sockaddr for a tuple or text address (no name resolution)."""
    p = ffi.new("ek_sockaddr **")
    if isinstance(addr, tuple):
        if len(addr) < 2:
            raise TypeError("an address tuple is (host, port)")
        host, port = addr[0], addr[1]
        if not isinstance(host, str) or isinstance(port, bool) or not isinstance(port, int):
            raise TypeError("an address tuple is (host: str, port: int)")
        if not 0 <= port <= 65535:
            raise ValueError(f"port out of range: {port}")
        check(lib.ek_sockaddr_from_ip(host.encode(), port, p))
    elif isinstance(addr, str):
        check(lib.ek_sockaddr_parse(addr.encode(), p))
    else:
        raise TypeError(f"an address is a (host, port) tuple or a string, not {type(addr).__name__}")
    return ffi.gc(p[0], lib.ek_sockaddr_free)


def _addr_of(sa: Any) -> Address:
    buf = ffi.new("char[]", 128)
    n = check(lib.ek_sockaddr_format(sa, buf, 128))
    text: str = ffi.unpack(buf, n).decode("utf-8", "surrogateescape")
    fam = lib.ek_sockaddr_family(sa)
    if fam == lib.EK_AF_INET or fam == lib.EK_AF_INET6:
        host, _, port = text.rpartition(":")
        if host.startswith("["):
            host = host[1:-1]
        return (host, int(port))
    return text


def _ip_of(sa: Any) -> Tuple[str, int]:
    a = _addr_of(sa)
    if not isinstance(a, tuple):  # pragma: no cover - an IP socket has an IP address
        raise error_from_code(lib.EK_EAFNOSUPPORT)
    return a


def _path_of(sa: Any) -> str:
    a = _addr_of(sa)
    return a if isinstance(a, str) else f"{a[0]}:{a[1]}"


def _split_host_port(text: str) -> Tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise InvalidArgument(lib.EK_EINVAL, f"not host:port: {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


# ---------------------------------------------------------------------------
# Resources
# ---------------------------------------------------------------------------

class _Resource(_ResourceBase):
    """A C handle owned by one Python object, released exactly once: by close(),
    by the garbage collector, or when its runtime's `run` returns."""

    __slots__ = ("_ptr", "_rt", "__weakref__")
    _c_free: Any = None

    def __init__(self, ptr: Any, rt: Runtime) -> None:
        self._ptr: Any = ptr
        self._rt = rt
        rt._track(self)

    def _p(self) -> Any:
        p = self._ptr
        if p is None:
            raise error_from_code(lib.EK_ECLOSED)
        return p

    def _release(self) -> None:
        p, self._ptr = self._ptr, None
        if p is not None:
            type(self)._c_free(p)

    def __del__(self) -> None:
        if getattr(self, "_ptr", None) is not None:
            self._release()


class _Stream(_Resource):
    """What TcpStream and UnixStream share: buffered reads, writes, closing.

    Reads and writes go through the glue's ekpy_io_read/ekpy_io_write with the
    step's context from the glue. The common two, read() with nothing buffered
    and write_all() of bytes, are the glue's C awaitables (_c_read,
    _c_write_all): a read that finds data returns its bytes without
    suspending and without a Python frame or a cffi call. The count of tasks
    suspended in an operation (busy) and the closing flag live in the C
    struct (ekpy_stream), where those awaitables keep them. read and
    write_all themselves are C methods of the glue's base (_ResourceBase): a
    read of the stream's read size with nothing buffered, or a write_all of
    bytes, makes the awaitable without entering a Python frame; any other
    call goes to _read_py / _write_all_py.
    """

    # (_rbuf, the read-ahead bytearray, is a member of the C base.)
    __slots__ = ("_io", "_ioa", "_rlen", "_mv")
    _c_shutdown: Any = None
    _c_close: Any = None
    _c_peer: Any = None
    _c_local: Any = None
    _unix = 0

    def __init__(self, ptr: Any, rt: Runtime) -> None:
        super().__init__(ptr, rt)
        self._rbuf = bytearray()
        io = ffi.new("ekpy_stream *")
        io.sock = ptr
        io.unix_ = self._unix
        io.buf = rt._scratch
        io.len = _READ_CHUNK
        self._io: Any = io
        self._ioa = int(ffi.cast("uintptr_t", io))  # for the glue's awaitables
        self._c_attach(self._ioa)  # for read and write_all, the C methods
        self._rlen = _READ_CHUNK
        self._mv = rt._scratch_mv  # the read buffer as a memoryview: [:n].tobytes()

    def _leave(self) -> None:
        io = self._io
        io.busy -= 1
        if io.busy == 0 and io.closing:
            self._release()

    def _release(self) -> None:
        io = getattr(self, "_io", None)
        if io is not None:
            io.sock = ffi.NULL
        _Resource._release(self)

    async def _wait(self) -> None:
        # Suspend until the waker the C call registered fires; close() waits
        # for this task to return before the stream is freed.
        self._io.busy += 1
        try:
            await _PENDING
        finally:
            self._leave()

    async def _read_raw(self, n: int) -> bytes:
        io = self._io
        if n != self._rlen:
            if n > _READ_CHUNK:
                return await self._read_big(n)
            io.len = n
            self._rlen = n
        while True:
            r = _io_read(io)
            if r >= 0:
                return self._mv[:r].tobytes()
            if r != _IO_PENDING:
                _io_error(r)
            await self._wait()

    async def _read_big(self, n: int) -> bytes:
        buf = ffi.new("char[]", n)
        while True:
            r = _io_read_into(self._io, buf, n)
            if r >= 0:
                return _unpack(buf, r)  # type: ignore[no-any-return]
            if r != _IO_PENDING:
                _io_error(r)
            await self._wait()

    if TYPE_CHECKING:
        def read(self, n: int = _READ_CHUNK) -> Coroutine[Any, Any, bytes]:
            """Up to n bytes as soon as some are there; b"" at the end of the stream."""
            ...

        def write_all(self, data: Buffer) -> Coroutine[Any, Any, None]:
            """Write all of data. If cancelled or failed midway, what was written
            is not taken back (the error says nothing about how much; use
            write())."""
            ...
    else:
        # C methods of the base (see the class doc): the common case makes the
        # glue's awaitable with no Python frame; the rest calls _read_py or
        # _write_all_py.
        read = _ResourceBase._c_read_m
        write_all = _ResourceBase._c_write_all_m

    def _read_py(self, n: int = _READ_CHUNK) -> Coroutine[Any, Any, bytes]:
        """read(), every case."""
        if n == self._rlen and not self._rbuf:
            # The common case: the glue's awaitable (see the class doc).
            return _c_read(self, self._ioa)  # type: ignore[no-any-return]
        return self._read(n)

    async def _read(self, n: int) -> bytes:
        if n < 0:
            raise ValueError("n must be >= 0")
        if n == 0:
            return b""
        if self._rbuf:
            data = bytes(self._rbuf[:n])
            del self._rbuf[:n]
            return data
        return await self._read_raw(n)

    async def read_into(self, buffer: Buffer) -> int:
        """Read into a writable buffer (bytearray, memoryview...) without an extra
        copy; the number of bytes read, 0 at the end of the stream."""
        target = _from_buffer(buffer, require_writable=True)
        size = len(target)
        if size == 0:
            return 0
        if self._rbuf:
            k = min(size, len(self._rbuf))
            ffi.memmove(target, bytes(self._rbuf[:k]), k)
            del self._rbuf[:k]
            return k
        while True:
            r = _io_read_into(self._io, target, size)
            if r >= 0:
                return int(r)
            if r != _IO_PENDING:
                _io_error(r)
            await self._wait()

    async def read_exact(self, n: int) -> bytes:
        """Exactly n bytes; IncompleteReadError if the stream ends first."""
        if n < 0:
            raise ValueError("n must be >= 0")
        while len(self._rbuf) < n:
            chunk = await self._read_raw(max(_READ_CHUNK, n - len(self._rbuf)))
            if not chunk:
                partial = bytes(self._rbuf)
                self._rbuf.clear()
                raise IncompleteReadError(partial, n)
            self._rbuf += chunk
        data = bytes(self._rbuf[:n])
        del self._rbuf[:n]
        return data

    async def readline(self, limit: int = 1 << 20) -> bytes:
        """One line including its b"\\n"; at the end of the stream whatever is left
        (b"" if nothing). ValueError if no newline comes within `limit` bytes."""
        start = 0
        while True:
            i = self._rbuf.find(b"\n", start)
            if i >= 0:
                line = bytes(self._rbuf[: i + 1])
                del self._rbuf[: i + 1]
                return line
            if len(self._rbuf) > limit:
                raise ValueError(f"line longer than {limit} bytes")
            start = len(self._rbuf)
            chunk = await self._read_raw(_READ_CHUNK)
            if not chunk:
                line = bytes(self._rbuf)
                self._rbuf.clear()
                return line
            self._rbuf += chunk

    async def write(self, data: Buffer) -> int:
        """Write some of data (waiting until at least one byte can go); returns
        how many bytes were written."""
        src = data if type(data) is bytes else _from_buffer(data)
        size = len(src)
        if size == 0:
            return 0
        while True:
            r = _io_write(self._io, src, size)
            if r >= 0:
                return int(r)
            if r != _IO_PENDING:
                _io_error(r)
            await self._wait()

    def _write_all_py(self, data: Buffer) -> Coroutine[Any, Any, None]:
        """write_all(), every case."""
        if type(data) is bytes:
            # The glue's awaitable (see the class doc), over the bytes as they are.
            return _c_write_all(self, self._ioa, data)  # type: ignore[no-any-return]
        return self._write_all(data)

    async def _write_all(self, data: Buffer) -> None:
        src = _from_buffer(data)
        size = len(src)
        if size == 0:
            return
        r = _io_write(self._io, src, size)
        if r == size:
            return
        off = 0
        while True:
            if r >= 0:
                off += r
                if off >= size:
                    return
            elif r == _IO_PENDING:
                self._io.busy += 1  # as _wait(), inline
                try:
                    await _PENDING
                finally:
                    self._leave()
            else:
                _io_error(r)
            r = _io_write(self._io, src + off, size - off)

    def shutdown(self) -> None:
        """Shut down the write side: the peer reads the end of the stream."""
        check(type(self)._c_shutdown(self._p()))

    def close(self) -> None:
        """Close the socket. Other tasks waiting on it see ekiden.Closed; the
        descriptor is released once the last of them has returned. Idempotent."""
        io = self._io
        if self._ptr is None or io.closing:
            return
        type(self)._c_close(self._ptr)
        io.closing = 1
        io.sock = ffi.NULL  # the next read or write: EK_ECLOSED
        if io.busy == 0:
            self._release()

    @property
    def closed(self) -> bool:
        return self._ptr is None or bool(self._io.closing)

    def _peer_sa(self) -> Any:
        sa = _new_sockaddr()
        check(type(self)._c_peer(self._p(), sa))
        return sa

    def _local_sa(self) -> Any:
        sa = _new_sockaddr()
        check(type(self)._c_local(self._p(), sa))
        return sa

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()


class TcpStream(_Stream):
    """A TCP connection. `async with` closes it."""

    __slots__ = ()
    _c_free = lib.ek_tcp_free
    _c_shutdown = lib.ek_tcp_shutdown
    _c_close = lib.ek_tcp_close
    _c_peer = lib.ek_tcp_peer_addr
    _c_local = lib.ek_tcp_local_addr

    @classmethod
    async def connect(cls, addr_or_host: AddressLike, port: Optional[int] = None) -> "TcpStream":
        """Connect to ("1.2.3.4", 80), "1.2.3.4:80", ("example.org", 80) or
        ("example.org", port=80): a host name is resolved and each address is
        tried in turn. Errors: ConnectionRefusedError (ekiden.ConnectionRefused),
        ekiden.ResolveError, TimeoutError... (wrap in ekiden.timeout for a limit)."""
        rt = _rt()
        host: str
        if port is None:
            if isinstance(addr_or_host, tuple):
                host, port = addr_or_host[0], addr_or_host[1]
            elif isinstance(addr_or_host, str):
                p = ffi.new("ek_sockaddr **")
                if lib.ek_sockaddr_parse(addr_or_host.encode(), p) == EK_OK:
                    sa = ffi.gc(p[0], lib.ek_sockaddr_free)
                    return await cls._connect_sockaddr(rt, sa)
                host, port = _split_host_port(addr_or_host)
            else:
                raise TypeError("connect() takes an address tuple, text, or host and port")
        else:
            if not isinstance(addr_or_host, str):
                raise TypeError("connect(host, port) takes a host name string")
            host = addr_or_host
        if isinstance(port, bool) or not isinstance(port, int):
            raise TypeError("port must be an int")
        if not 0 <= port <= 65535:
            raise ValueError(f"port out of range: {port}")
        p = ffi.new("ek_sockaddr **")
        if lib.ek_sockaddr_from_ip(host.encode(), port, p) == EK_OK:
            return await cls._connect_sockaddr(rt, ffi.gc(p[0], lib.ek_sockaddr_free))
        f = ffi.new("ek_future **")
        check(lib.ek_tcp_connect_host(rt._require(), host.encode(), port, f))
        out = await _await_future(f[0])
        return cls(ffi.cast("ek_tcp_stream *", out), rt)

    @classmethod
    async def _connect_sockaddr(cls, rt: Runtime, sa: Any) -> "TcpStream":
        f = ffi.new("ek_future **")
        check(lib.ek_tcp_connect(rt._require(), sa, f))
        out = await _await_future(f[0])
        return cls(ffi.cast("ek_tcp_stream *", out), rt)

    @property
    def peer_addr(self) -> Tuple[str, int]:
        """The peer's (ip, port)."""
        return _ip_of(self._peer_sa())

    @property
    def local_addr(self) -> Tuple[str, int]:
        """This end's (ip, port)."""
        return _ip_of(self._local_sa())

    def set_nodelay(self, on: bool = True) -> None:
        """TCP_NODELAY on or off."""
        check(lib.ek_tcp_set_nodelay(self._p(), 1 if on else 0))

    @property
    def nodelay(self) -> bool:
        return check(lib.ek_tcp_nodelay(self._p())) == 1

    def set_keepalive(self, idle_secs: int) -> None:
        """SO_KEEPALIVE with probes after idle_secs (0 turns it off)."""
        check(lib.ek_tcp_set_keepalive(self._p(), idle_secs))

    def set_linger(self, secs: Optional[int]) -> None:
        """SO_LINGER: None off (default), 0 resets the connection on close."""
        check(lib.ek_tcp_set_linger(self._p(), -1 if secs is None else secs))

    def fileno(self) -> int:
        """The descriptor (still owned by the stream)."""
        return check(lib.ek_tcp_fd(self._p()))

    async def __aenter__(self) -> "TcpStream":
        return self


class UnixStream(_Stream):
    """A Unix stream socket connection. `async with` closes it."""

    __slots__ = ()
    _c_free = lib.ek_unix_free
    _unix = 1
    _c_shutdown = lib.ek_unix_shutdown
    _c_close = lib.ek_unix_close
    _c_peer = lib.ek_unix_peer_addr
    _c_local = lib.ek_unix_local_addr

    @classmethod
    async def connect(cls, path: str) -> "UnixStream":
        """Connect to the listener at path ("@name": abstract). Errors:
        FileNotFoundError, ConnectionRefusedError, BlockingIOError (backlog full)."""
        if not isinstance(path, str):
            raise TypeError("path must be a str")
        rt = _rt()
        f = ffi.new("ek_future **")
        check(lib.ek_unix_connect(rt._require(), path.encode(), f))
        out = await _await_future(f[0])
        return cls(ffi.cast("ek_unix_stream *", out), rt)

    @property
    def peer_addr(self) -> str:
        """The peer's path ("" when unnamed, as for a connecting client)."""
        return _path_of(self._peer_sa())

    @property
    def local_addr(self) -> str:
        return _path_of(self._local_sa())

    @classmethod
    def pair(cls) -> Tuple["UnixStream", "UnixStream"]:
        """Two connected streams (socketpair)."""
        rt = _rt()
        a = ffi.new("ek_unix_stream **")
        b = ffi.new("ek_unix_stream **")
        check(lib.ek_unix_pair(rt._require(), a, b))
        return cls(a[0], rt), cls(b[0], rt)

    async def __aenter__(self) -> "UnixStream":
        return self


class _Listener(_Resource):
    __slots__ = ("_peer", "_out")
    _c_accept: Any = None
    _c_close: Any = None
    _c_local: Any = None
    _stream: Any = None
    _out_type = ""

    def __init__(self, ptr: Any, rt: Runtime) -> None:
        super().__init__(ptr, rt)
        self._peer = _new_sockaddr()
        self._out = ffi.new(self._out_type)

    async def _accept(self) -> Tuple[Any, Any]:
        c_accept = type(self)._c_accept
        while True:
            p = self._p()
            rc = c_accept(p, _cx(), self._out, self._peer)
            if rc == EK_OK:
                s = type(self)._stream(self._out[0], self._rt)
                return s, self._peer
            if rc != EK_PENDING:
                raise error_from_code(rc)
            await _PENDING

    def _local_sa(self) -> Any:
        sa = _new_sockaddr()
        check(type(self)._c_local(self._p(), sa))
        return sa

    def close(self) -> None:
        """Stop listening and release the socket. Idempotent."""
        if self._ptr is not None:
            type(self)._c_close(self._ptr)
            self._release()

    async def __aexit__(self, *exc: Any) -> None:
        self.close()


class TcpListener(_Listener):
    """A listening TCP socket. `async for stream in listener` accepts forever."""

    __slots__ = ()
    _c_free = lib.ek_tcp_listener_free
    _c_accept = lib.ek_tcp_accept
    _c_close = lib.ek_tcp_listener_close
    _c_local = lib.ek_tcp_listener_local_addr
    _stream = TcpStream
    _out_type = "ek_tcp_stream **"

    @classmethod
    async def bind(cls, addr: AddressLike, *, reuse_port: bool = False, backlog: int = 1024,
                   v6only: bool = False) -> "TcpListener":
        """Listen on addr (port 0 picks a free port: see local_addr). Errors:
        ekiden.AddressInUse, PermissionError, ekiden.InvalidArgument..."""
        rt = _rt()
        sa = _sockaddr(addr)
        flags = (lib.EK_TCP_REUSEPORT if reuse_port else 0) | (lib.EK_TCP_V6ONLY if v6only else 0)
        out = ffi.new("ek_tcp_listener **")
        check(lib.ek_tcp_bind(rt._require(), sa, backlog, flags, out))
        return cls(out[0], rt)

    @property
    def local_addr(self) -> Tuple[str, int]:
        """The (ip, port) it listens on (port 0 resolved)."""
        return _ip_of(self._local_sa())

    async def accept(self) -> Tuple[TcpStream, Tuple[str, int]]:
        """The next connection and its peer's (ip, port)."""
        s, peer = await self._accept()
        return s, _ip_of(peer)

    def __aiter__(self) -> "TcpListener":
        return self

    async def __anext__(self) -> TcpStream:
        s, _ = await self._accept()
        return s  # type: ignore[no-any-return]

    async def __aenter__(self) -> "TcpListener":
        return self


class UnixListener(_Listener):
    """A listening Unix stream socket (the path is not removed on close)."""

    __slots__ = ()
    _c_free = lib.ek_unix_listener_free
    _c_accept = lib.ek_unix_accept
    _c_close = lib.ek_unix_listener_close
    _c_local = lib.ek_unix_listener_local_addr
    _stream = UnixStream
    _out_type = "ek_unix_stream **"

    @classmethod
    async def bind(cls, path: str, *, backlog: int = 1024) -> "UnixListener":
        """Listen at path ("@name": abstract). An existing file: AddressInUse."""
        if not isinstance(path, str):
            raise TypeError("path must be a str")
        rt = _rt()
        out = ffi.new("ek_unix_listener **")
        check(lib.ek_unix_bind(rt._require(), path.encode(), backlog, out))
        return cls(out[0], rt)

    @property
    def local_addr(self) -> str:
        """The path it listens on."""
        return _path_of(self._local_sa())

    async def accept(self) -> Tuple[UnixStream, str]:
        """The next connection and its peer's path (usually "": unnamed)."""
        s, peer = await self._accept()
        return s, _path_of(peer)

    def __aiter__(self) -> "UnixListener":
        return self

    async def __anext__(self) -> UnixStream:
        s, _ = await self._accept()
        return s  # type: ignore[no-any-return]

    async def __aenter__(self) -> "UnixListener":
        return self


class UdpSocket(_Resource):
    """A UDP socket: send_to/recv_from, or connect then send/recv."""

    __slots__ = ("_n", "_from")
    _c_free = lib.ek_udp_free

    def __init__(self, ptr: Any, rt: Runtime) -> None:
        super().__init__(ptr, rt)
        self._n = ffi.new("size_t *")
        self._from = _new_sockaddr()

    @classmethod
    async def bind(cls, addr: AddressLike, *, reuse_addr: bool = False,
                   reuse_port: bool = False) -> "UdpSocket":
        """Bind to addr (port 0 picks one)."""
        rt = _rt()
        sa = _sockaddr(addr)
        flags = (lib.EK_UDP_REUSEADDR if reuse_addr else 0) | (lib.EK_UDP_REUSEPORT if reuse_port else 0)
        out = ffi.new("ek_udp_socket **")
        check(lib.ek_udp_bind(rt._require(), sa, flags, out))
        return cls(out[0], rt)

    def connect(self, addr: AddressLike) -> None:
        """Set the default peer (send/recv use it; other senders are filtered)."""
        check(lib.ek_udp_connect(self._p(), _sockaddr(addr)))

    async def send_to(self, data: Buffer, addr: AddressLike) -> int:
        """Send one datagram to addr; its length."""
        src = ffi.from_buffer(data)
        sa = _sockaddr(addr)
        while True:
            rc = lib.ek_udp_send_to(self._p(), _cx(), src, len(src), sa, self._n)
            if rc == EK_OK:
                return int(self._n[0])
            if rc != EK_PENDING:
                raise error_from_code(rc)
            await _PENDING

    async def recv_from(self, n: int = _READ_CHUNK) -> Tuple[bytes, Tuple[str, int]]:
        """One datagram (truncated to n bytes) and its sender."""
        buf = self._rt._buffer(n)
        while True:
            rc = lib.ek_udp_recv_from(self._p(), _cx(), buf, n, self._n, self._from)
            if rc == EK_OK:
                return ffi.unpack(buf, self._n[0]), _ip_of(self._from)
            if rc != EK_PENDING:
                raise error_from_code(rc)
            await _PENDING

    async def send(self, data: Buffer) -> int:
        """Send one datagram to the connected peer."""
        src = ffi.from_buffer(data)
        while True:
            rc = lib.ek_udp_send(self._p(), _cx(), src, len(src), self._n)
            if rc == EK_OK:
                return int(self._n[0])
            if rc != EK_PENDING:
                raise error_from_code(rc)
            await _PENDING

    async def recv(self, n: int = _READ_CHUNK) -> bytes:
        """One datagram from the connected peer."""
        buf = self._rt._buffer(n)
        while True:
            rc = lib.ek_udp_recv(self._p(), _cx(), buf, n, self._n)
            if rc == EK_OK:
                return ffi.unpack(buf, self._n[0])  # type: ignore[no-any-return]
            if rc != EK_PENDING:
                raise error_from_code(rc)
            await _PENDING

    @property
    def local_addr(self) -> Tuple[str, int]:
        sa = _new_sockaddr()
        check(lib.ek_udp_local_addr(self._p(), sa))
        return _ip_of(sa)

    @property
    def peer_addr(self) -> Tuple[str, int]:
        sa = _new_sockaddr()
        check(lib.ek_udp_peer_addr(self._p(), sa))
        return _ip_of(sa)

    def set_broadcast(self, on: bool = True) -> None:
        check(lib.ek_udp_set_broadcast(self._p(), 1 if on else 0))

    def close(self) -> None:
        """Close and release the socket. Idempotent."""
        if self._ptr is not None:
            lib.ek_udp_close(self._ptr)
            self._release()

    async def __aenter__(self) -> "UdpSocket":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()


async def resolve(host: str, port: int = 0, *, family: Optional[str] = None,
                  passive: bool = False) -> List[Tuple[str, int]]:
    """Resolve host (getaddrinfo on the blocking pool) to (ip, port) tuples, in
    the resolver's order. family: None (both), "inet" or "inet6". Errors:
    ekiden.ResolveError (a socket.gaierror)."""
    if not isinstance(host, str):
        raise TypeError("host must be a str")
    hints = {None: 0, "inet": lib.EK_RESOLVE_INET, "inet6": lib.EK_RESOLVE_INET6}.get(family, -1)
    if hints < 0:
        raise ValueError("family must be None, 'inet' or 'inet6'")
    if passive:
        hints |= lib.EK_RESOLVE_PASSIVE
    rt = _rt()
    f = ffi.new("ek_future **")
    check(lib.ek_resolve(rt._require(), host.encode(), port, hints, f))
    out = await _await_future(f[0])
    lst = ffi.cast("ek_addr_list *", out)
    try:
        result: List[Tuple[str, int]] = []
        for i in range(check(lib.ek_addr_list_count(lst))):
            result.append(_ip_of(lib.ek_addr_list_get(lst, i)))
        return result
    finally:
        lib.ek_addr_list_free(lst)
