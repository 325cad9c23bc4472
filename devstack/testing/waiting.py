"""Waiting in tests for what happens asynchronously (a consumer catching up, a process printing)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(condition: Callable[[], bool], *, timeout: float = 10.0, interval: float = 0.02) -> float:
    """Poll `condition` until it holds; the seconds it took. AssertionError when `timeout` passes first."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met in {timeout} s")
        time.sleep(interval)
    return time.monotonic() - started
