"""Gateway test fixtures: the whole stack as real processes (session-scoped) with this process pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import override_settings

from common.testing.stack import RunningStack, running_stack
from gateway.api.jwks import reset_jwks


def _forget_nats_client() -> None:
    # The process-wide client was made for the old NATS_URL; the next get_client() makes one for the new.
    import common.messaging.client as client_module

    if client_module._client is not None:
        client_module._client.close()
    client_module._client = None


@pytest.fixture(scope="session")
def services() -> Iterator[RunningStack]:
    """Fresh e2e_ databases, migrated and seeded; both bridges and Celery running; the gateway talks to them."""
    with running_stack() as stack:
        pointed = override_settings(NATS_URL=stack.nats_url)
        pointed.enable()
        _forget_nats_client()
        reset_jwks()
        try:
            yield stack
        finally:
            _forget_nats_client()
            reset_jwks()
            pointed.disable()
