"""ekiden.serve(codec="http") / ekiden.connect(codec="http") with ekiden.http values,
driven by the standard library's HTTP clients (urllib.request, http.client)."""
from __future__ import annotations

import http.client
import threading
import urllib.error
import urllib.request
from typing import Any, List, Tuple

import pytest

import ekiden
from ekiden.http import Request, Response
from test_serve import in_thread


def app(calls: List[Tuple[str, str, int]]) -> Any:
    async def handle(req: Request) -> Any:
        calls.append((req.method, req.target, threading.get_ident()))
        if req.method == "GET" and req.path == "/":
            return Response(200, b"Hello, World!", headers=[("Content-Type", "text/plain")])
        if req.method == "POST" and req.path == "/echo":
            return Response(201, req.body, headers=[("X-Got", req.header("x-test", "none") or "")])
        if req.path == "/text":
            return "plain " + req.query  # str: a 200 response
        if req.path == "/sleep":
            await ekiden.sleep(0.01)
            return b"slept"
        if req.path == "/boom":
            raise ValueError("handler failed")
        return Response(404, b"no such page")

    return handle


def test_urllib_against_a_python_http_service() -> None:
    calls: List[Tuple[str, str, int]] = []

    async def main() -> None:
        server = await ekiden.serve("127.0.0.1:0", service=ekiden.Service(app(calls)), codec="http")
        base = f"http://127.0.0.1:{server.local_addr[1]}"

        def get(path: str) -> Tuple[int, bytes, Any]:
            with urllib.request.urlopen(base + path, timeout=30) as r:
                return r.status, r.read(), r.headers

        status, body, headers = await in_thread(lambda: get("/"))
        assert (status, body) == (200, b"Hello, World!")
        assert headers["Content-Type"] == "text/plain"
        assert headers["Content-Length"] == "13"
        assert headers["Date"]  # EK_HTTP_DATE
        assert (await in_thread(lambda: get("/text?a=1")))[:2] == (200, b"plain a=1")
        assert (await in_thread(lambda: get("/sleep")))[:2] == (200, b"slept")

        def post() -> Tuple[int, bytes, str]:
            req = urllib.request.Request(base + "/echo", data=b"x" * 100_000, method="POST",
                                         headers={"X-Test": "yes"})
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read(), r.headers["X-Got"]

        assert await in_thread(post) == (201, b"x" * 100_000, "yes")

        def missing() -> int:
            try:
                urllib.request.urlopen(base + "/nope", timeout=30)
            except urllib.error.HTTPError as e:
                assert e.read() == b"no such page"
                return e.code
            return 0

        assert await in_thread(missing) == 404
        await server.shutdown()

    ekiden.run(main(), workers=2)
    assert [c[:2] for c in calls] == [("GET", "/"), ("GET", "/text?a=1"), ("GET", "/sleep"),
                                     ("POST", "/echo"), ("GET", "/nope")]
    assert len({c[2] for c in calls}) == 1  # every call on the thread of run
    assert calls[0][2] == threading.get_ident()


def test_keep_alive_and_errors_with_http_client() -> None:
    calls: List[Tuple[str, str, int]] = []
    reported: List[BaseException] = []
    ekiden.set_exception_handler(lambda msg, exc: reported.append(exc))

    async def main() -> None:
        server = await ekiden.serve("127.0.0.1:0", service=ekiden.Service(app(calls)), codec="http")
        port = server.local_addr[1]

        def session() -> List[Tuple[int, bytes]]:
            # One connection, three requests (keep-alive), then one that fails.
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            out = []
            for path in ("/", "/text?x", "/"):
                c.request("GET", path)
                r = c.getresponse()
                out.append((r.status, r.read()))
            c.request("GET", "/boom")
            r = c.getresponse()
            out.append((r.status, r.read()))
            c.close()
            return out

        res = await in_thread(session)
        assert res[:3] == [(200, b"Hello, World!"), (200, b"plain x"), (200, b"Hello, World!")]
        assert res[3][0] >= 500  # the handler's exception: the server answers an error
        await server.shutdown()

    try:
        ekiden.run(main(), workers=2)
    finally:
        ekiden.set_exception_handler(None)
    assert any(isinstance(e, ValueError) for e in reported)


def test_http_client_against_the_python_server() -> None:
    calls: List[Tuple[str, str, int]] = []

    async def main() -> None:
        server = await ekiden.serve("127.0.0.1:0", service=ekiden.Service(app(calls)), codec="http")
        client = await ekiden.connect(server.local_addr, codec="http")
        r = await client(Request("GET", "/", headers=[("Host", "localhost")]))
        assert isinstance(r, Response)
        assert (r.status, r.reason, r.body) == (200, "OK", b"Hello, World!")
        assert r.header("content-type") == "text/plain"
        r = await client(Request("POST", "/echo", body=b"abc", headers=[("X-Test", "1")]))
        assert (r.status, r.reason, r.body, r.header("X-Got")) == (201, "Created", b"abc", "1")
        r = await client(Request("GET", "/missing"))
        assert (r.status, r.body) == (404, b"no such page")
        client.close()
        await server.shutdown()

    ekiden.run(main(), workers=2)


def test_http_values_check_their_arguments() -> None:
    with pytest.raises(ValueError):
        Response(99)
    with pytest.raises(ValueError):
        Response(200, version="HTTP/2")
    with pytest.raises(TypeError):
        Response(200, body=12)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Request("", "/")
    with pytest.raises(TypeError):
        Request("GET", "/", headers=[("a", 1)])  # type: ignore[list-item]
    r = Request("GET", "/a/b?c=d", version="HTTP/1.0")
    assert (r.path, r.query, r.keep_alive) == ("/a/b", "c=d", False)
    assert Response(404).reason == "Not Found"
    assert Response(599).reason == ""
    with pytest.raises(ValueError):
        ekiden.http.to_msg(Response(200, headers=[("X", "snow \u2603")]))  # not latin-1
