"""main_api's admin login form has the same per-client limit as the auth service's (it had none)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.test import Client
from django_redis import get_redis_connection


@pytest.mark.django_db
def test_the_admin_login_form_is_limited_per_client(settings: Any) -> None:
    settings.ADMIN_LOGIN_RATE = "2/10m"
    address = f"198.51.100.{uuid.uuid4().int % 250 + 1}"
    client = Client(REMOTE_ADDR=address)

    statuses = [client.post("/admin/login/", {"username": "nobody", "password": "x"}) for _ in range(3)]

    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert 1 <= int(statuses[-1]["Retry-After"]) <= 600
    assert (
        Client(REMOTE_ADDR="198.51.100.254").post("/admin/login/", {"username": "a", "password": "b"}).status_code
        == 200
    )
    redis = get_redis_connection("default")
    for key in redis.scan_iter(match="main:admin-login:*"):
        redis.delete(key)
