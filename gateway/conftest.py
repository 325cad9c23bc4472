"""Gateway test fixtures: the whole stack as real processes (session-scoped) with this process pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.testing.stack import RunningStack, running_stack
from gateway.api.tests.e2e import gateway_pointed_at


@pytest.fixture(scope="session")
def services() -> Iterator[RunningStack]:
    """Fresh e2e_ databases, migrated and seeded; both bridges and Celery running; the gateway talks to them."""
    with running_stack() as stack, gateway_pointed_at(stack.nats_url):
        yield stack
