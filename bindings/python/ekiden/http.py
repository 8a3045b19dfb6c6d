"""HTTP/1.x messages as Python values, for services behind the HTTP codec
(ekiden.serve(codec="http")) and HTTP clients (ekiden.connect(codec="http")).

The C codec (llhttp) reads and frames requests, answers 100-continue, joins
chunked bodies and writes responses with their Content-Length and Connection
headers; a Python handler sees a Request and returns a Response:

    async def hello(req: ekiden.http.Request) -> ekiden.http.Response:
        if req.method == "GET" and req.path == "/":
            return ekiden.http.Response(200, b"Hello, World!",
                                        headers=[("Content-Type", "text/plain")])
        return ekiden.http.Response(404)

    server = await ekiden.serve("127.0.0.1:8080", service=ekiden.Service(hello), codec="http")

Strings (method, target, reason, header names and values) are str, decoded as
latin-1 (HTTP's own rule: every byte maps to one character, so nothing is lost);
bodies are bytes. A handler may also return bytes or str: a 200 response with
that body. Headers are a list of (name, value) pairs, in order, duplicates kept;
`header(name)` finds the first one by name, case-insensitively. The codec
writes Content-Length and Connection itself: headers of those names in a
Response are ignored by the encoder. Whether the connection stays open
(keep_alive) follows the request's version and Connection header; a Response
with keep_alive=False closes it after the response.
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple, Union

from ._ekiden import ffi, lib
from ._errors import check, error_from_code

__all__ = ["Request", "Response", "Headers", "to_msg", "from_msg"]

Headers = List[Tuple[str, str]]
HeadersLike = Optional[Sequence[Tuple[str, str]]]
_VERSIONS = {"HTTP/1.0": 10, "HTTP/1.1": 11}
_NAMES = {10: "HTTP/1.0", 11: "HTTP/1.1"}


def _find(headers: Headers, name: str) -> Optional[str]:
    key = name.lower()
    for k, v in headers:
        if k.lower() == key:
            return v
    return None


def _headers(headers: HeadersLike) -> Headers:
    out: Headers = []
    for item in headers or ():
        if not isinstance(item, tuple) or len(item) != 2 or not all(isinstance(x, str) for x in item):
            raise TypeError("headers are (name: str, value: str) pairs")
        out.append(item)
    return out


def _body(body: Union[bytes, bytearray, memoryview, str]) -> bytes:
    if isinstance(body, str):
        return body.encode()
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    raise TypeError(f"a body is bytes-like or str, not {type(body).__name__}")


def _version(version: str) -> int:
    v = _VERSIONS.get(version)
    if v is None:
        raise ValueError(f"version must be 'HTTP/1.0' or 'HTTP/1.1', not {version!r}")
    return v


class Request:
    """An HTTP request: method, target ("/path?query"), version ("HTTP/1.1"),
    headers, body; path and query split the target."""

    __slots__ = ("method", "target", "version", "headers", "body", "keep_alive")

    def __init__(self, method: str, target: str, *, headers: HeadersLike = None,
                 body: Union[bytes, bytearray, memoryview, str] = b"", version: str = "HTTP/1.1",
                 keep_alive: Optional[bool] = None) -> None:
        if not isinstance(method, str) or not method:
            raise TypeError("method must be a non-empty str")
        if not isinstance(target, str) or not target:
            raise TypeError("target must be a non-empty str")
        self.method = method
        self.target = target
        self.version = version
        _version(version)
        self.headers = _headers(headers)
        self.body = _body(body)
        self.keep_alive = (version == "HTTP/1.1") if keep_alive is None else bool(keep_alive)

    @property
    def path(self) -> str:
        """The target without its query."""
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        """What follows "?" in the target ("" if nothing)."""
        return self.target.partition("?")[2]

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The first header called `name` (case-insensitive), or default."""
        v = _find(self.headers, name)
        return default if v is None else v

    def __repr__(self) -> str:
        return f"<ekiden.http.Request {self.method} {self.target} {self.version}>"


class Response:
    """An HTTP response: status, body, headers; reason defaults to the
    standard phrase of the status."""

    __slots__ = ("status", "reason", "version", "headers", "body", "keep_alive")

    def __init__(self, status: int = 200, body: Union[bytes, bytearray, memoryview, str] = b"", *,
                 headers: HeadersLike = None, reason: Optional[str] = None,
                 version: str = "HTTP/1.1", keep_alive: bool = True) -> None:
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 999:
            raise ValueError(f"status must be an int in 100..999, not {status!r}")
        self.status = status
        self.body = _body(body)
        self.headers = _headers(headers)
        if reason is None:
            try:
                from http import HTTPStatus

                reason = HTTPStatus(status).phrase
            except ValueError:
                reason = ""
        self.reason = reason
        _version(version)
        self.version = version
        self.keep_alive = bool(keep_alive)

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The first header called `name` (case-insensitive), or default."""
        v = _find(self.headers, name)
        return default if v is None else v

    def __repr__(self) -> str:
        return f"<ekiden.http.Response {self.status} {self.reason}>"


def _lat(s: str) -> bytes:
    try:
        return s.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"not representable in an HTTP head (latin-1): {s!r}") from None


def to_msg(value: Any) -> Any:
    """A new HTTP ek_msg for a Request, a Response, or bytes/str (a 200
    response with that body); the caller owns it."""
    if isinstance(value, (bytes, bytearray, memoryview, str)):
        value = Response(200, value)
    out = ffi.new("ek_msg **")
    if isinstance(value, Response):
        reason = _lat(value.reason)
        check(lib.ek_msg_http_response(value.status, reason, len(reason), _version(value.version), out))
    elif isinstance(value, Request):
        method, target = _lat(value.method), _lat(value.target)
        check(lib.ek_msg_http_request(method, len(method), target, len(target),
                                      _version(value.version), out))
    else:
        raise TypeError(f"an HTTP message is an ekiden.http.Request or Response, not {type(value).__name__}")
    m = out[0]
    try:
        for name, val in value.headers:
            n, v = _lat(name), _lat(val)
            check(lib.ek_msg_http_add_header(m, n, len(n), v, len(v)))
        if value.body:
            check(lib.ek_msg_http_set_body_copy(m, value.body, len(value.body)))
        check(lib.ek_msg_http_set_keep_alive(m, 1 if value.keep_alive else 0))
    except BaseException:
        lib.ek_msg_free(m)
        raise
    return m


def _text(fn: Any, msg: Any) -> str:
    s = ffi.new("const char **")
    n = ffi.new("size_t *")
    check(fn(msg, s, n))
    return ffi.unpack(s[0], n[0]).decode("latin-1")  # type: ignore[no-any-return]


def _read_headers(msg: Any) -> Headers:
    count = check(lib.ek_msg_http_header_count(msg))
    name, value = ffi.new("const char **"), ffi.new("const char **")
    nlen, vlen = ffi.new("size_t *"), ffi.new("size_t *")
    out: Headers = []
    for i in range(count):
        check(lib.ek_msg_http_header(msg, i, name, nlen, value, vlen))
        out.append((ffi.unpack(name[0], nlen[0]).decode("latin-1"),
                    ffi.unpack(value[0], vlen[0]).decode("latin-1")))
    return out


def _read_body(msg: Any) -> bytes:
    data = ffi.new("const uint8_t **")
    size = ffi.new("size_t *")
    check(lib.ek_msg_data(msg, data, size))
    if size[0] == 0:
        return b""
    return ffi.unpack(ffi.cast("char *", data[0]), size[0])  # type: ignore[no-any-return]


def from_msg(msg: Any) -> Union[Request, Response]:
    """The Request or Response of an HTTP ek_msg (borrowed)."""
    kind = lib.ek_msg_kind(msg)
    version = _NAMES.get(check(lib.ek_msg_http_version(msg)), "HTTP/1.1")
    keep = check(lib.ek_msg_http_keep_alive(msg)) == 1
    if kind == lib.EK_MSG_HTTP_REQUEST:
        return Request(_text(lib.ek_msg_http_method, msg), _text(lib.ek_msg_http_target, msg),
                       headers=_read_headers(msg), body=_read_body(msg), version=version,
                       keep_alive=keep)
    if kind == lib.EK_MSG_HTTP_RESPONSE:
        return Response(check(lib.ek_msg_http_status(msg)), _read_body(msg), headers=_read_headers(msg),
                        reason=_text(lib.ek_msg_http_reason, msg),
                        version=version, keep_alive=keep)
    raise error_from_code(lib.EK_EKIND)
