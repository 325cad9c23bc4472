"""pytest fixtures shared by the projects: a real bridge in a thread, and a NATS client."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest

from common.conf.nats_trust import OPERATOR, inbox_prefix, seed_file
from common.conf.processes import BY_NAME
from common.messaging.bridge import BackgroundTask, Bridge, Handler
from common.messaging.client import Credentials, NatsClient, process_credentials
from devstack.trust import CREDENTIALS_ENV


def identity_credentials(identity: str, *, required: bool = False) -> Credentials:
    """One identity of the embedded NATS server (common/conf/nats_trust.py): its seed and its service's inbox.

    On an external NATS_URL there are no devstack credentials: the test process's own (whatever the environment
    gives) stand in, unless `required` (a test of the server's permissions needs the real identities).
    """
    directory = os.environ.get(CREDENTIALS_ENV)
    if not directory:
        if required:
            raise RuntimeError(f"{CREDENTIALS_ENV} is not set: run the tests under `python -m devstack exec`")
        return process_credentials()
    service = BY_NAME[identity].service.name if identity in BY_NAME else OPERATOR
    return Credentials(seed=seed_file(Path(directory), identity).read_text(), inbox_prefix=inbox_prefix(service))


@contextmanager
def bridge_in_thread(
    *,
    service: str,
    handlers: Mapping[str, Handler] | None = None,
    background: list[BackgroundTask] | None = None,
    workers: int = 4,
    grace_seconds: float = 20.0,
    identity: str | None = None,
) -> Iterator[Bridge]:
    """Run a real Bridge on its own loop thread for the duration of the block; stops it gracefully.

    `identity` connects it as that process of the stack (`auth-bridge`, `main-bridge`), within that identity's
    permissions; by default it connects as the test process does (the operator), for test subjects and streams.
    """
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
            credentials=identity_credentials(identity) if identity else None,
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
def gateway_client() -> Iterator[NatsClient]:
    """A client with the gateway's identity: what the gateway may send, and nothing more."""
    from django.conf import settings

    client = NatsClient(settings.NATS_URL, name="pytest-gateway", credentials=identity_credentials("gateway"))
    yield client
    client.close()


@pytest.fixture
def service_bridge() -> Iterator[Callable[..., Any]]:
    """Factory fixture: `with service_bridge(): ...` runs this project's handlers on a real bridge."""
    yield bridge_in_thread
