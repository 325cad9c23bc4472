"""Fixtures of these tests: the test database is left droppable after bridges ran in threads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from devstack.testing.events import close_stray_database_sessions


@pytest.fixture(scope="session", autouse=True)
def _droppable_test_database(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    yield
    with django_db_blocker.unblock():
        close_stray_database_sessions()
