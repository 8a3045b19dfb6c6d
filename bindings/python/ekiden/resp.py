"""RESP values (redis's protocol) as Python values, for services behind the RESP
codec (ekiden.serve(codec="resp")) and RESP clients.

RESP -> Python: bulk string -> bytes (a null one -> None), simple string ->
Simple (a str), error and bulk error -> Error (a str), integer -> int, big number
-> int, double -> float, boolean -> bool, null -> None, array -> list (a null one
-> None), set -> Set (a list), push -> Push (a list), map -> dict, verbatim ->
str.

Python -> RESP: bytes-like and str -> bulk string, Simple -> simple string,
Error -> error, bool -> boolean, int -> integer (big number beyond 64 bits),
float -> double, None -> null, list and tuple -> array, Set/set/frozenset -> set,
Push -> push, dict -> map. The RESP2 encoder writes RESP3 types as redis does
(null as $-1, boolean as 1/0, map as an array...).
"""
from __future__ import annotations

import threading
from typing import Any, Dict, List

from ._ekiden import ffi, lib
from ._errors import check, error_from_code

__all__ = ["Simple", "Error", "Set", "Push", "to_msg", "from_msg"]


class Simple(str):
    """A RESP simple string ("+OK")."""

    def __repr__(self) -> str:
        return f"resp.Simple({str.__repr__(self)})"


class Error(str):
    """A RESP error value ("-ERR unknown command"): a value a service returns or a
    client receives, not an exception."""

    def __repr__(self) -> str:
        return f"resp.Error({str.__repr__(self)})"


class Set(list):  # type: ignore[type-arg]
    """A RESP3 set (as a list: its members need not be hashable)."""


class Push(list):  # type: ignore[type-arg]
    """A RESP3 push (out-of-band data such as pub/sub messages)."""


def _string(kind: int, data: Any) -> Any:
    out = ffi.new("ek_msg **")
    src = ffi.from_buffer(data)
    check(lib.ek_msg_resp_string(kind, src, len(src), out))
    return out[0]


_resp_string = lib.ekpy_io_resp_string
_NULL = ffi.NULL
_BULK = lib.EK_RESP_BULK
_SIMPLE = lib.EK_RESP_SIMPLE


def _fast_msg(m: Any) -> Any:
    if m == _NULL:
        raise MemoryError("ekiden: out of memory making a RESP message")
    return m


def to_msg(value: Any) -> Any:
    """A new RESP ek_msg for a Python value (the caller owns it)."""
    # The commonest replies first, one C call each (ekpy_io_resp_*).
    t = type(value)
    if t is bytes:
        return _fast_msg(_resp_string(_BULK, value, len(value)))
    if value is None:
        return _fast_msg(lib.ekpy_io_resp_null())
    if t is Simple:
        b = value.encode()
        return _fast_msg(_resp_string(_SIMPLE, b, len(b)))
    out = ffi.new("ek_msg **")
    if isinstance(value, Simple):
        return _string(lib.EK_RESP_SIMPLE, value.encode())
    if isinstance(value, Error):
        return _string(lib.EK_RESP_ERROR, value.encode())
    if isinstance(value, str):
        return _string(lib.EK_RESP_BULK, value.encode())
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _string(lib.EK_RESP_BULK, value)
    if value is None:
        check(lib.ek_msg_resp_null(lib.EK_RESP_NULL, out))
        return out[0]
    if isinstance(value, bool):
        check(lib.ek_msg_resp_boolean(1 if value else 0, out))
        return out[0]
    if isinstance(value, int):
        if -(2**63) <= value < 2**63:
            check(lib.ek_msg_resp_integer(value, out))
            return out[0]
        return _string(lib.EK_RESP_BIG_NUMBER, str(value).encode())
    if isinstance(value, float):
        check(lib.ek_msg_resp_double(value, out))
        return out[0]
    if isinstance(value, dict):
        check(lib.ek_msg_resp_aggregate(lib.EK_RESP_MAP, 2 * len(value), out))
        agg = out[0]
        try:
            for k, v in value.items():
                check(lib.ek_msg_resp_append(agg, to_msg(k)))
                check(lib.ek_msg_resp_append(agg, to_msg(v)))
        except BaseException:
            lib.ek_msg_free(agg)
            raise
        return agg
    if isinstance(value, (list, tuple, set, frozenset)):
        kind = lib.EK_RESP_ARRAY
        if isinstance(value, Push):
            kind = lib.EK_RESP_PUSH
        elif isinstance(value, (Set, set, frozenset)):
            kind = lib.EK_RESP_SET
        check(lib.ek_msg_resp_aggregate(kind, len(value), out))
        agg = out[0]
        try:
            for item in value:
                check(lib.ek_msg_resp_append(agg, to_msg(item)))
        except BaseException:
            lib.ek_msg_free(agg)
            raise
        return agg
    raise TypeError(f"no RESP value for {type(value).__name__}")


def _bytes_of(msg: Any) -> bytes:
    data = ffi.new("const uint8_t **")
    size = ffi.new("size_t *")
    check(lib.ek_msg_data(msg, data, size))
    return ffi.unpack(ffi.cast("char *", data[0]), size[0])  # type: ignore[no-any-return]


class _Flat(threading.local):
    """Where ekpy_io_resp_bulks copies a request (one per thread)."""

    def __init__(self) -> None:
        self.buf = ffi.new("char[]", 65536)
        self.flat = ffi.new("ekpy_flat *")
        self.flat.buf = self.buf
        self.flat.cap = 65536
        self.lens = self.flat.lens
        self.mv = memoryview(ffi.buffer(self.buf))


_flat = _Flat()
_resp_bulks = lib.ekpy_io_resp_bulks


def from_msg(msg: Any) -> Any:
    """The Python value of a RESP ek_msg (borrowed)."""
    # A request as clients send it (an array of bulk strings), in one C call.
    f = _flat
    n = _resp_bulks(msg, f.flat)
    if n >= 0:
        return _bulk_items(f, n)
    return _from_msg(msg)


def _bulk_items(f: _Flat, n: int) -> List[bytes]:
    # The n elements ekpy_io_resp_bulks left in f, as bytes.
    lens, mv = f.lens, f.mv
    items: List[bytes] = []
    off = 0
    for i in range(n):
        end = off + lens[i]
        items.append(mv[off:end].tobytes())
        off = end
    return items


def _from_msg(msg: Any) -> Any:
    t = check(lib.ek_msg_resp_type(msg))
    c = chr(t)
    if c in "$*" and check(lib.ek_msg_resp_is_null(msg)) == 1:
        return None
    if c == "$":
        return _bytes_of(msg)
    if c == "+":
        return Simple(_bytes_of(msg).decode("utf-8", "surrogateescape"))
    if c in "-!":
        return Error(_bytes_of(msg).decode("utf-8", "surrogateescape"))
    if c == ":":
        v = ffi.new("int64_t *")
        check(lib.ek_msg_resp_get_integer(msg, v))
        return int(v[0])
    if c == "(":
        return int(_bytes_of(msg))
    if c == ",":
        dp = ffi.new("double *")
        check(lib.ek_msg_resp_get_double(msg, dp))
        return float(dp[0])
    if c == "#":
        b = ffi.new("int *")
        check(lib.ek_msg_resp_get_boolean(msg, b))
        return bool(b[0])
    if c == "_":
        return None
    if c == "=":
        return _bytes_of(msg).decode("utf-8", "surrogateescape")
    if c in "*~>%|":
        n = check(lib.ek_msg_resp_len(msg))
        child = ffi.new("ek_msg **")
        items: List[Any] = []
        for i in range(n):
            check(lib.ek_msg_resp_child(msg, i, child))
            items.append(from_msg(child[0]))  # (a nested array of bulks: the fast path)
        if c in "%|":
            d: Dict[Any, Any] = {}
            for i in range(0, len(items) - 1, 2):
                k = items[i]
                d[tuple(k) if isinstance(k, list) else k] = items[i + 1]
            return d
        if c == "~":
            return Set(items)
        if c == ">":
            return Push(items)
        return items
    raise error_from_code(lib.EK_EKIND)
