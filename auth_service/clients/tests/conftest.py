"""The accounts tests' fixtures (real bridge over real NATS, tasks inline), and Redis tidied of the clients' markers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django_redis import get_redis_connection

from auth_service.accounts.tests.conftest import _accounts_settings, auth  # noqa: F401 - fixtures
from auth_service.clients.models import ServiceClient
from common.contracts.oauth import client_key


@pytest.fixture
def forget_markers(transactional_db: None) -> Iterator[None]:
    yield
    keys = [client_key(client_id) for client_id in ServiceClient.objects.values_list("client_id", flat=True)]
    if keys:
        get_redis_connection("default").delete(*keys)
