"""main_api test fixtures: every test gets its own event stream names, so none touches a running stack's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from devstack.testing.events import Sandbox, close_stray_database_sessions, event_stream_sandbox

# Short enough for redeliveries to happen within a test.
FAST_EVENTS = {
    "USER_EVENTS_MAX_DELIVER": 3,
    "USER_EVENTS_ACK_WAIT_SECONDS": 5.0,
    "USER_EVENTS_RETRY_BASE_SECONDS": 0.2,
    "USER_EVENTS_RETRY_MAX_SECONDS": 0.5,
    "USER_EVENTS_FETCH_TIMEOUT_SECONDS": 0.5,
}


@pytest.fixture(autouse=True)
def event_stream() -> Iterator[Sandbox]:
    with event_stream_sandbox(**FAST_EVENTS) as sandbox:
        yield sandbox


@pytest.fixture(scope="session", autouse=True)
def _droppable_test_database(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    yield
    with django_db_blocker.unblock():
        close_stray_database_sessions()
