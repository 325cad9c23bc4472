"""The bearer path through HTTP with a trusted local key: live session, ended session, roles, Redis down."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from django.test import Client, override_settings

from common.conf.logging import set_service_log_level
from devstack.testing.envelopes import envelope
from gateway.api import access_tokens, authentication
from gateway.api.tests.tokens import UNREACHABLE_REDIS, Signer, simple_jwt

LOG_LEVEL = "/api/admin/log-level?service=gateway"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(autouse=True)
def _restore_log_level() -> None:
    set_service_log_level("INFO")


def test_token_with_a_live_session_is_accepted(trusted: Signer, live_session: Callable[[], str]) -> None:
    token = trusted.token(sid=live_session(), roles=["sys_admin"])
    response = Client().get(LOG_LEVEL, headers=bearer(token))
    assert response.status_code == 200, response.content
    assert response.json() == {"service": "gateway", "level": "INFO"}
    assert response["Cache-Control"] == "no-store"


def test_ended_session_makes_the_token_useless_at_once(trusted: Signer, live_session: Callable[[], str]) -> None:
    from django_redis import get_redis_connection

    from common.contracts.sessions import session_key

    sid = live_session()
    token = trusted.token(sid=sid, roles=["sys_admin"])
    assert Client().get(LOG_LEVEL, headers=bearer(token)).status_code == 200
    get_redis_connection("default").delete(session_key(sid))
    response = Client().get(LOG_LEVEL, headers=bearer(token))
    assert response.status_code == 401
    assert response.json() == envelope(401, "Invalid or expired access token", "invalid_token")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_missing_token_is_401_with_a_challenge() -> None:
    response = Client().get(LOG_LEVEL)
    assert response.status_code == 401
    assert response.json()["statusCode"] == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize("header", ["Bearer", "Bearer a b", "Bearer \u00e9t\u00e9", "Bearer abc.def.ghi"])
def test_malformed_authorization_is_401(header: str, trusted: Signer) -> None:
    response = Client().get(LOG_LEVEL, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["message"] == "Invalid or expired access token"


def test_wrong_role_is_403_not_401(trusted: Signer, live_session: Callable[[], str]) -> None:
    token = trusted.token(sid=live_session(), roles=["admin"])
    response = Client().get(LOG_LEVEL, headers=bearer(token))
    assert response.status_code == 403
    assert response.json()["message"] == "Forbidden resource"


def test_unknown_roles_grant_nothing(trusted: Signer, live_session: Callable[[], str]) -> None:
    token = trusted.token(sid=live_session(), roles=["root", "SYS_ADMIN"])
    assert Client().get(LOG_LEVEL, headers=bearer(token)).status_code == 403


def test_token_expires_by_the_gateway_clock(
    trusted: Signer, live_session: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = trusted.token(sid=live_session(), roles=["sys_admin"])
    monkeypatch.setattr(access_tokens, "clock", lambda: time.time() + 1000)
    assert Client().get(LOG_LEVEL, headers=bearer(token)).status_code == 401


def test_wrong_issuer_or_audience_configured_is_401(trusted: Signer, live_session: Callable[[], str]) -> None:
    token = trusted.token(sid=live_session(), roles=["sys_admin"])
    with simple_jwt(ISSUER="someone-else"):
        assert Client().get(LOG_LEVEL, headers=bearer(token)).status_code == 401
    with simple_jwt(AUDIENCE="another-api"):
        assert Client().get(LOG_LEVEL, headers=bearer(token)).status_code == 401


def test_session_store_down_fails_closed_with_503(trusted: Signer, live_session: Callable[[], str]) -> None:
    token = trusted.token(sid=live_session(), roles=["sys_admin"])
    with override_settings(CACHES=UNREACHABLE_REDIS):
        response = Client().get(LOG_LEVEL, headers=bearer(token))
    assert response.status_code == 503
    assert response.json()["message"] == "Session store unavailable"


def test_liveness_check_survives_the_store_dropping_its_connection(
    trusted: Signer, live_session: Callable[[], str]
) -> None:
    from django_redis import get_redis_connection

    token = trusted.token(sid=live_session(), roles=["sys_admin"])
    assert Client().get(LOG_LEVEL, headers=bearer(token)).status_code == 200
    # The connection this thread's checks go through, closed by the server (a restart, an idle timeout).
    killed = get_redis_connection("default").client_kill_filter(_id=authentication._session_store()[0].client_id())
    assert killed == 1
    response = Client().get(LOG_LEVEL, headers=bearer(token))
    assert response.status_code == 200, response.content


def test_public_routes_ignore_a_stale_bearer_header() -> None:
    # A client that still sends an old token must be able to log in again (the body is invalid: 400, not 401).
    response = Client().post("/api/login", data={}, content_type="application/json", headers=bearer("stale"))
    assert response.status_code == 400
