"""Operations through the gateway: JWKS proxy, seed, log levels, readiness."""

from __future__ import annotations

import pytest
from django.test import override_settings

from common.conf.logging import current_log_level, set_service_log_level
from devstack.testing.stack import RunningStack
from gateway.api.tests.e2e import Account, Api

pytestmark = pytest.mark.e2e


def test_jwks_proxy_publishes_the_signing_key(stack: RunningStack, sys_admin: Api) -> None:
    import jwt

    response = Api().get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response["Cache-Control"] == "public, max-age=300"
    keys = response.json()["keys"]
    kid = jwt.get_unverified_header(sys_admin.access_token or "")["kid"]
    assert kid in {key["kid"] for key in keys}
    for key in keys:
        assert key["kty"] == "RSA"
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)


def test_seed_is_idempotent_over_http(stack: RunningStack) -> None:
    for _ in range(2):
        response = Api().get("/api/seed")
        assert response.status_code == 200, response.content
        assert response.json() == {"ok": True}
    assert Api().post("/api/login", {"slug": "sys-admin@test.com", "password": "Password123!"}).status_code == 200


def test_seed_is_404_when_disabled(stack: RunningStack) -> None:
    with override_settings(SEED_OVER_HTTP=False):
        assert Api().get("/api/seed").status_code == 404


@pytest.mark.parametrize("service", ["gateway", "auth", "main"])
def test_log_level_of_each_service(sys_admin: Api, service: str) -> None:
    response = sys_admin.get(f"/api/admin/log-level?service={service}")
    assert response.status_code == 200, response.content
    assert response.json()["service"] == service
    assert response.json()["level"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


@pytest.mark.parametrize("service", ["auth", "main"])
def test_setting_a_services_log_level_reaches_it(sys_admin: Api, service: str) -> None:
    try:
        response = sys_admin.post("/api/admin/log-level", {"service": service, "level": "debug"})
        assert response.status_code == 200, response.content
        assert response.json() == {"service": service, "level": "DEBUG"}
        assert sys_admin.get(f"/api/admin/log-level?service={service}").json()["level"] == "DEBUG"
    finally:
        sys_admin.post("/api/admin/log-level", {"service": service, "level": "INFO"})


def test_setting_the_gateways_log_level_applies_here(sys_admin: Api) -> None:
    try:
        response = sys_admin.post("/api/admin/log-level", {"service": "gateway", "level": "WARNING"})
        assert response.status_code == 200, response.content
        assert response.json() == {"service": "gateway", "level": "WARNING"}
        assert current_log_level() == "WARNING"
    finally:
        set_service_log_level("INFO")


def test_log_level_is_for_sys_admins_with_csrf(sys_admin: Api, admin: Api, member: tuple[Api, Account]) -> None:
    user_api, _ = member
    assert admin.get("/api/admin/log-level?service=auth").status_code == 403
    assert user_api.get("/api/admin/log-level?service=auth").status_code == 403
    assert sys_admin.post("/api/admin/log-level", {"service": "auth", "level": "INFO"}, csrf=False).status_code == 403
    assert sys_admin.post("/api/admin/log-level", {"service": "auth", "level": "LOUD"}).status_code == 400
    assert sys_admin.get("/api/admin/log-level?service=billing").status_code == 400
    assert sys_admin.get("/api/admin/log-level").status_code == 400


def test_readiness_sees_both_services(stack: RunningStack) -> None:
    response = Api().get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"]["auth"] == "ok"
    assert response.json()["checks"]["main"] == "ok"


def test_every_gateway_process_follows_the_log_level_broadcast(stack: RunningStack) -> None:
    from common.contracts import subjects
    from common.contracts.envelope import request_body
    from common.messaging.client import NatsClient
    from gateway.api.ops import ensure_log_level_listener
    from gateway.api.tests.e2e import eventually

    ensure_log_level_listener()
    other_instance = NatsClient(stack.nats_url, name="another-gateway")
    try:
        other_instance.publish(subjects.log_level_set("gateway"), request_body({"level": "ERROR"}))

        def applied() -> None:
            assert current_log_level() == "ERROR"

        eventually(applied, timeout=5)
    finally:
        other_instance.close()
        set_service_log_level("INFO")
