"""Shared helpers of the Python binding's tests."""
from __future__ import annotations

import gc
import os
from typing import Iterator

import pytest


def open_fds() -> int:
    """Descriptors open in this process now."""
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def no_fd_leak() -> Iterator[None]:
    """Fails the test if it leaves descriptors open once ekiden.run returned.
    Garbage of earlier tests is collected first: a socket or pipe of theirs
    that only a cycle kept open would otherwise close in the middle of this
    one (when the collector happens to run) and count as -1."""
    gc.collect()
    before = open_fds()
    yield
    after = open_fds()
    assert after == before, f"{after - before} descriptors leaked"
