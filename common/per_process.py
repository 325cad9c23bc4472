"""One shared object per process (a client, a cache), made on first use; a forked child makes its own."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerProcess(Generic[T]):
    """The object `make` returns, made once per process under a lock. A child forked from a process that had one
    makes its own: a thread or a lock it inherited (an event-loop thread, a held cache lock) does not survive fork."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._value: T | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        pid = os.getpid()
        value = self._value
        if value is None or self._pid != pid:
            with self._lock:
                if self._value is None or self._pid != pid:
                    self._value, self._pid = self._make(), pid
                value = self._value
        return value

    def reset(self, close: Callable[[T], None] | None = None) -> None:
        """Forget the object (after `close(it)`, if given): the next `get` makes a new one."""
        with self._lock:
            if self._value is not None and close is not None:
                close(self._value)
            self._value = None
