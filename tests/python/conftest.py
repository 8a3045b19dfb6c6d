"""Shared helpers of the Python binding's tests."""
from __future__ import annotations

import os
from typing import Iterator

import pytest


def open_fds() -> int:
    """Descriptors open in this process now."""
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def no_fd_leak() -> Iterator[None]:
    """Fails the test if it leaves descriptors open once ekiden.run returned."""
    before = open_fds()
    yield
    after = open_fds()
    assert after == before, f"{after - before} descriptors leaked"
