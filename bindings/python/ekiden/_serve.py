"""Servers and clients over the C framed I/O (ekiden/server.h, ekiden/client.h):
C reads, frames (the codec) and writes; the service sees decoded messages.

    server = await ekiden.serve("127.0.0.1:6379", service=svc, codec="resp")
    client = await ekiden.connect(server.local_addr, codec="resp")
    await client([b"PING"])                  # resp.Simple("PONG")
    await server.shutdown(grace=5.0)

Codecs: "lines" (bytes without the newline; 64 KiB limit), "length" (4-byte
big-endian length prefix, 8 MiB limit: tokio-util's defaults), "resp" (redis's
protocol; requests arrive as a list of bytes, responses are RESP values: see
ekiden.resp), "http" (HTTP/1.0 and 1.1 on llhttp: requests arrive as
ekiden.http.Request, the handler returns an ekiden.http.Response, or bytes/str
for a 200; a client sends Requests and gets Responses: see ekiden.http).
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple, Union

from ._ekiden import ffi, lib
from ._errors import CancelledError, check, error_from_code
from ._net import AddressLike, _ip_of, _new_sockaddr, _sockaddr
from ._runtime import _PENDING, Runtime, _cx, _ms, _rt
from ._service import Service, ServiceHandle

__all__ = ["serve", "connect", "Server", "CODECS"]

CODECS = ("lines", "length", "resp", "http")
_SIZE_MAX = ffi.cast("size_t", -1)


def _codec(name: str, server: bool) -> Any:
    out = ffi.new("ek_codec **")
    if name == "lines":
        check(lib.ek_codec_lines(0, out))
    elif name == "length":
        check(lib.ek_codec_length_delimited(0, 4, 0, _SIZE_MAX, 0, 0, out))
    elif name == "resp":
        check(lib.ek_codec_resp_server(out) if server else lib.ek_codec_resp_client(2, out))
    elif name == "http":
        # llhttp; default limits (80 KiB of head, 8 MiB of body); a server writes Date.
        if server:
            check(lib.ek_codec_http_server(0, 0, lib.EK_HTTP_DATE, out))
        else:
            check(lib.ek_codec_http_client(0, 0, 0, out))
    else:
        raise ValueError(f"codec must be one of {', '.join(CODECS)} (not {name!r})")
    return out[0]


class Server:
    """A running framed server (see serve())."""

    def __init__(self, ptr: Any, rt: Runtime, codec: str) -> None:
        self._ptr: Any = ptr
        self._rt = rt
        self.codec = codec
        rt._track(self)

    def _p(self) -> Any:
        if self._ptr is None:
            raise error_from_code(lib.EK_ECLOSED)
        return self._ptr

    @property
    def local_addr(self) -> Tuple[str, int]:
        sa = _new_sockaddr()
        check(lib.ek_server_local_addr(self._p(), sa))
        return _ip_of(sa)

    def metrics(self) -> Dict[str, int]:
        """Connections, requests, responses, errors, bytes in and out."""
        values = ffi.new("uint64_t[]", 32)
        n = check(lib.ek_server_metrics(self._p(), values, 32))
        out: Dict[str, int] = {}
        for i in range(min(n, 32)):
            name = lib.ek_server_metric_name(i)
            if name != ffi.NULL:
                out[ffi.string(name).decode()] = int(values[i])
        return out

    async def shutdown(self, grace: float = 5.0) -> bool:
        """Stop accepting, let connections finish what they read, wait up to
        `grace` seconds, then close the rest. True if all closed in time."""
        p = self._p()
        tx = ffi.new("ek_oneshot_sender **")
        rx = ffi.new("ek_oneshot_receiver **")
        check(lib.ek_oneshot_new(ffi.NULL, tx, rx))
        try:
            check(lib.ekpy_server_shutdown_thread(p, _ms(grace), tx[0]))  # consumes tx
            out = ffi.new("void **")
            cancelled: Optional[BaseException] = None
            while True:
                rc = lib.ek_oneshot_recv(rx[0], _cx(), out)
                if rc != 1:
                    break
                try:
                    await _PENDING
                except CancelledError as e:
                    # The thread uses the server until it is done (at most
                    # `grace`): finish waiting, then be cancelled.
                    cancelled = e
            if cancelled is not None:
                raise cancelled
            check(rc)
        finally:
            lib.ek_oneshot_receiver_drop(rx[0])
        rc = int(ffi.cast("intptr_t", out[0]))
        if rc not in (0, lib.EK_ETIMEDOUT):
            raise error_from_code(rc)
        return bool(rc == 0)

    def close(self) -> None:
        """Release the server (shutting it down at once if that was not done)."""
        self._release()

    def _release(self) -> None:
        p, self._ptr = self._ptr, None
        if p is not None:
            lib.ek_server_free(p)

    def __del__(self) -> None:
        if getattr(self, "_ptr", None) is not None:
            self._release()


async def serve(addr: AddressLike, *, service: ServiceHandle, codec: str = "lines",
                max_in_flight: Optional[int] = None, idle_timeout: Optional[float] = None,
                reuse_port: bool = False, local: bool = False) -> Server:
    """Serve `service` on a TCP address with a codec. A connection task per
    client (on the C workers) decodes requests, calls the service (pipelined, up
    to max_in_flight per connection) and writes the responses in order; an
    ekiden.Service still runs on this thread (through its buffer).

    local=True: the accept loop and the connection tasks are local tasks of
    this thread (reads, framing and writes happen here too), and an
    ekiden.Service is called directly, with no buffer: no request crosses
    threads. What a current-thread runtime does anyway; with workers it trades
    their help with the I/O for the crossings. server.shutdown() works as
    usual."""
    rt = _rt()
    codec_ptr = _codec(codec, server=True)
    if codec == "resp" and isinstance(service, Service):
        service._impl.resp = True
        service.resp = True
    if codec == "http" and isinstance(service, Service):
        service._impl.http = True
    opts_p = ffi.new("ek_server_options **")
    try:
        sa = _sockaddr(addr)
        lp = ffi.new("ek_tcp_listener **")
        check(lib.ek_tcp_bind(rt._require(), sa, 1024, lib.EK_TCP_REUSEPORT if reuse_port else 0, lp))
        check(lib.ek_server_options_new(opts_p))
        if max_in_flight is not None:
            check(lib.ek_server_options_set_max_in_flight(opts_p[0], max_in_flight))
        if idle_timeout is not None:
            check(lib.ek_server_options_set_idle_timeout_ms(opts_p[0], _ms(idle_timeout)))
        if local:
            check(lib.ek_server_options_set_local(opts_p[0], 1))
        handle = service._direct() if local and isinstance(service, Service) else service._take()
    except BaseException:
        lib.ek_codec_free(codec_ptr)
        raise
    out = ffi.new("ek_server **")
    try:
        # Consumes the listener, the codec and the service handle, also on error.
        check(lib.ek_server_serve(rt._require(), lp[0], codec_ptr, handle, opts_p[0], out))
    finally:
        lib.ek_server_options_free(opts_p[0])
    return Server(out[0], rt, codec)


async def connect(addr: Union[AddressLike], *, codec: str = "lines", reconnect: bool = False,
                  max_in_flight: Optional[int] = None) -> ServiceHandle:
    """A client service over one pipelined connection to addr: `await
    client(request)` sends a request and gives the response (RESP requests are
    lists of bytes/str)."""
    rt = _rt()
    codec_ptr = _codec(codec, server=False)
    opts_p = ffi.new("ek_client_options **")
    try:
        sa = _sockaddr(addr)
        check(lib.ek_client_options_new(opts_p))
        if reconnect:
            check(lib.ek_client_options_set_reconnect(opts_p[0], 1, 100))
        if max_in_flight is not None:
            check(lib.ek_client_options_set_max_in_flight(opts_p[0], max_in_flight))
    except BaseException:
        lib.ek_codec_free(codec_ptr)
        if opts_p[0] != ffi.NULL:
            lib.ek_client_options_free(opts_p[0])
        raise
    out = ffi.new("ek_service **")
    try:
        check(lib.ek_client_connect(rt._require(), sa, codec_ptr, opts_p[0], out))  # consumes codec
    finally:
        lib.ek_client_options_free(opts_p[0])
    return ServiceHandle(out[0], rt, resp=(codec == "resp"))
