"""pytest fixtures shared by the projects: a real bridge in a thread, and a NATS client."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from importlib import import_module
from typing import Any

import pytest

from common.messaging.bridge import BackgroundTask, Bridge, Handler
from common.messaging.client import NatsClient


@contextmanager
def bridge_in_thread(
    *,
    service: str,
    handlers: Mapping[str, Handler] | None = None,
    background: list[BackgroundTask] | None = None,
    workers: int = 4,
    grace_seconds: float = 20.0,
) -> Iterator[Bridge]:
    """Run a real Bridge on its own loop thread for the duration of the block; stops it gracefully."""
    from django.conf import settings

    if handlers is None:
        module = import_module(settings.NATS_HANDLERS_MODULE)
        handlers = getattr(module, "HANDLERS", {})
        if background is None:
            background = list(getattr(module, "BACKGROUND", ()))
    loop = asyncio.new_event_loop()
    holder: dict[str, Any] = {}

    def runner() -> None:
        asyncio.set_event_loop(loop)
        bridge = Bridge(
            service=service,
            nats_url=settings.NATS_URL,
            handlers=handlers or {},
            queue=service,
            workers=workers,
            background=background or (),
            grace_seconds=grace_seconds,
        )
        holder["bridge"] = bridge
        try:
            loop.run_until_complete(bridge.run())
        except BaseException as exc:  # noqa: BLE001 - surfaced to the test through holder
            holder["error"] = exc
        finally:
            holder["done"] = True

    thread = threading.Thread(target=runner, name=f"bridge-{service}", daemon=True)
    thread.start()
    deadline = 10.0
    waited = 0.0
    while waited < deadline:
        bridge = holder.get("bridge")
        if holder.get("error"):
            raise holder["error"]
        if bridge is not None and bridge.ready_event.is_set():
            break
        threading.Event().wait(0.02)
        waited += 0.02
    else:
        raise TimeoutError("bridge did not become ready")
    bridge = holder["bridge"]
    try:
        yield bridge
    finally:
        loop.call_soon_threadsafe(bridge.stop)
        thread.join(timeout=30)


@pytest.fixture
def nats_client() -> Iterator[NatsClient]:
    from django.conf import settings

    client = NatsClient(settings.NATS_URL, name="pytest")
    yield client
    client.close()


@pytest.fixture
def service_bridge() -> Iterator[Callable[..., Any]]:
    """Factory fixture: `with service_bridge(): ...` runs this project's handlers on a real bridge."""
    yield bridge_in_thread
