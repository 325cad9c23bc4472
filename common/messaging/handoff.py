"""Items posted by any thread for one coroutine on an asyncio loop, one wake-up of the loop for many items.

Both ends of request/reply cross threads: the bridge's handler threads post replies, the client's calling
threads post requests, and in each case one coroutine on the connection's loop publishes them. Waking the loop
(`call_soon_threadsafe`: a write to its self-pipe and a pass of the selector) costs more than publishing, so a
thread wakes it only when no wake-up is already due; the consumer takes everything queued by then.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

T = TypeVar("T")


class LoopHandoff(Generic[T]):
    """`post()` from any thread; `async for item in handoff.items()` on `loop`, in the order posted."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: deque[T] = deque()
        self._ready = asyncio.Event()
        self._lock = threading.Lock()
        self._wake_pending = False

    def post(self, item: T) -> None:
        self._items.append(item)
        with self._lock:
            if self._wake_pending:
                return  # the consumer is already due to run and will find this item
            self._wake_pending = True
        self._loop.call_soon_threadsafe(self._ready.set)

    async def items(self) -> AsyncIterator[T]:
        """Every posted item, forever (cancel the consuming task to stop)."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            with self._lock:
                # Cleared before draining: an item posted from now on wakes the consumer again.
                self._wake_pending = False
            while self._items:
                yield self._items.popleft()
