"""Liveness and readiness, with a real dependency taken away."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

pytestmark = pytest.mark.django_db(transaction=True)


def test_healthz_is_alive() -> None:
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_readyz_ok_when_database_redis_and_nats_answer() -> None:
    response = Client().get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"] == {"database": "ok", "redis": "ok", "nats": "ok"}


def test_readyz_names_the_failing_dependency(monkeypatch: pytest.MonkeyPatch) -> None:
    # Point NATS at a port where nothing listens: a real connection failure, not a mock.
    import common.messaging.client as client_module

    monkeypatch.setattr(client_module, "_client", None)
    with override_settings(NATS_URL="nats://127.0.0.1:1"):
        response = Client().get("/readyz")
    monkeypatch.setattr(client_module, "_client", None)
    assert response.status_code == 503
    body = response.json()
    assert body["statusCode"] == 503
    assert body["message"] == "not ready: nats"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["nats"].startswith("fail")


def test_unknown_path_is_404_in_the_envelope() -> None:
    response = Client().get("/no/such/thing")
    assert response.status_code == 404
    assert response.json()["statusCode"] == 404
