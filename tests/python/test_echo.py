"""The README's Python echo server (examples/python/echo.py) as a user runs it,
driven by socat and by a plain-socket client."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest


def _sigint_default() -> None:
    """In the child before exec: SIGINT's default action, which Python turns into
    KeyboardInterrupt. A test command started as a background job (nohup, `&`
    in a script) has SIGINT ignored, and an ignored signal stays ignored across
    exec, so the child would never see the Ctrl-C this test sends."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


ROOT = Path(__file__).resolve().parents[2]
ECHO = ROOT / "examples" / "python" / "echo.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def echo_server() -> Iterator[int]:
    port = free_port()
    p = subprocess.Popen([sys.executable, str(ECHO), str(port)], stdout=subprocess.PIPE, text=True,
                         preexec_fn=_sigint_default)
    assert p.stdout is not None
    line = p.stdout.readline()
    assert line.startswith("listening on"), line
    yield port
    p.send_signal(signal.SIGINT)
    try:
        p.wait(30)
    except subprocess.TimeoutExpired:
        p.kill()
        raise
    assert p.returncode != 0  # KeyboardInterrupt ends it


def test_readme_shows_the_echo_example() -> None:
    readme = (ROOT / "README.md").read_text()
    assert ECHO.read_text().strip() in readme


def test_echo_with_socat(echo_server: int) -> None:
    if shutil.which("socat") is None:
        pytest.skip("socat is not installed")
    data = b"".join(b"line %d\n" % i for i in range(10000))
    res = subprocess.run(["socat", "-t", "10", "-", f"TCP:127.0.0.1:{echo_server}"], input=data,
                         stdout=subprocess.PIPE, timeout=60, check=True)
    assert res.stdout == data


def test_echo_with_plain_sockets(echo_server: int) -> None:
    socks = [socket.create_connection(("127.0.0.1", echo_server), timeout=30) for _ in range(20)]
    try:
        for rnd in range(5):
            for i, s in enumerate(socks):
                s.sendall(b"%d:%d " % (i, rnd) * 50)
            for i, s in enumerate(socks):
                want = b"%d:%d " % (i, rnd) * 50
                got = b""
                while len(got) < len(want):
                    chunk = s.recv(65536)
                    assert chunk
                    got += chunk
                assert got == want
        big = os.urandom(4 << 20)
        s = socks[0]
        s.sendall(big[:1 << 20])
        got = b""
        while len(got) < 1 << 20:
            got += s.recv(1 << 20)
        assert got == big[:1 << 20]
    finally:
        for s in socks:
            s.close()


def test_echo_survives_a_client_reset(echo_server: int) -> None:
    # A client that resets its connection (SO_LINGER 0: RST instead of FIN, with
    # echoes in flight) ends only its own connection, not the server's TaskGroup.
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", echo_server), timeout=30)
        s.sendall(b"x" * 100_000)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    with socket.create_connection(("127.0.0.1", echo_server), timeout=30) as s:
        s.sendall(b"still here")
        got = b""
        while len(got) < 10:
            chunk = s.recv(100)
            assert chunk
            got += chunk
        assert got == b"still here"
