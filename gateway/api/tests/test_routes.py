"""Routing, the error envelope, CSRF ordering, docs and the JWKS proxy, without the services running."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal

import jwt
import pytest
from django.test import Client, override_settings
from django.utils.functional import lazy

from common.contracts.errors import GatewayTimeout, ServiceUnavailable, TooManyRequests
from devstack.testing.envelopes import envelope
from gateway.api import forwarding, jwks
from gateway.api.csrf import new_csrf_token
from gateway.api.jwks import JwksCache
from gateway.api.renderers import OrjsonRenderer
from gateway.api.tests.tokens import Signer


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_unknown_route_is_404_envelope() -> None:
    response = Client().get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json() == envelope(404, "Cannot GET /api/nothing-here", "not_found")


def test_wrong_method_is_405_envelope() -> None:
    response = Client().put("/api/signup", data={}, content_type="application/json")
    assert response.status_code == 405
    assert response.json()["error"] == "Method Not Allowed"


def test_malformed_json_is_400_envelope() -> None:
    response = Client().post("/api/login", data="{nope", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["statusCode"] == 400


def test_non_json_body_is_415() -> None:
    response = Client().post("/api/login", data="slug=a&password=b", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415


def test_validation_error_envelope_lists_fields() -> None:
    response = Client().post("/api/login", data={"slug": "ada", "pass": "x"}, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {
        "statusCode": 400,
        "error": "Bad Request",
        "message": ["password: This field is required.", "pass: property pass should not exist"],
        "code": "validation_failed",
        "fields": {"password": ["This field is required."], "pass": ["property pass should not exist"]},
    }


def test_invalid_user_id_is_400(trusted: Signer, live_session: Callable[[], str]) -> None:
    token = trusted.token(sid=live_session())
    response = Client().get("/api/user/not-a-uuid", headers=bearer(token))
    assert response.status_code == 400
    assert response.json()["fields"] == {"id": ["Must be a valid UUID."]}


def test_csrf_comes_after_authentication_and_is_403(trusted: Signer, live_session: Callable[[], str]) -> None:
    body = {"service": "gateway", "level": "INFO"}
    assert Client().post("/api/admin/log-level", data=body, content_type="application/json").status_code == 401
    client = Client()
    sid = live_session()
    token = trusted.token(sid=sid, roles=["sys_admin"])
    missing = client.post("/api/admin/log-level", data=body, content_type="application/json", headers=bearer(token))
    assert missing.status_code == 403
    assert missing.json()["message"] == "Invalid or missing CSRF token"
    assert missing.json()["code"] == "csrf_failed"
    client.cookies["__Host-csrf"] = new_csrf_token(sid)
    wrong = client.post(
        "/api/admin/log-level",
        data=body,
        content_type="application/json",
        headers={**bearer(token), "x-csrf-token": new_csrf_token(sid)},
    )
    assert wrong.status_code == 403


def test_refresh_routes_check_the_cookie_before_csrf() -> None:
    client = Client()
    assert client.post("/api/auth/revalidate-credentials").status_code == 401
    client.cookies["Authentication"] = "forged:value"
    response = client.post("/api/auth/revalidate-credentials")
    assert response.status_code == 401
    assert response.json()["message"] == "Invalid refresh token"
    # The broken cookie is cleared, with the flags it was set with.
    assert response.cookies["Authentication"]["max-age"] == 0
    assert response.cookies["Authentication"]["path"] == "/api/auth"


def test_refresh_route_without_csrf_is_403() -> None:
    from django.http import HttpResponse

    from gateway.api.cookies import set_auth_cookies

    issued = HttpResponse()
    refresh_token = jwt.encode(
        {"sid": str(uuid.uuid4()), "typ": "refresh"}, "not-the-refresh-secret-of-the-auth-service", algorithm="HS256"
    )
    set_auth_cookies(issued, refresh_token=refresh_token, expires_at=None)
    client = Client()
    client.cookies["Authentication"] = issued.cookies["Authentication"].value
    response = client.post("/api/auth/logout")
    assert response.status_code == 403
    assert response.json()["code"] == "csrf_failed"


@override_settings(SEED_OVER_HTTP=False)
def test_seed_is_404_when_disabled() -> None:
    response = Client().get("/api/seed")
    assert response.status_code == 404
    assert response.json()["message"] == "Cannot GET /api/seed"


def test_openapi_document_and_docs_are_public() -> None:
    schema = Client().get("/api/schema/", headers={"Accept": "application/json", **bearer("stale")})
    assert schema.status_code == 200
    document = schema.json()
    assert document["openapi"].startswith("3.")
    assert set(document["components"]["securitySchemes"]) == {"bearerAuth", "refreshCookie", "csrfHeader"}
    assert document["paths"]["/api/user"]["post"]["security"] == [{"bearerAuth": [], "csrfHeader": []}]
    assert document["paths"]["/api/auth/logout"]["post"]["security"] == [{"refreshCookie": [], "csrfHeader": []}]
    assert "security" not in document["paths"]["/api/login"]["post"]
    assert set(document["paths"]["/api/login"]["post"]["responses"]) == {"200", "400", "401", "429", "503", "504"}
    assert Client().get("/api/docs/").status_code == 200


def test_jwks_proxy_is_cacheable(monkeypatch: pytest.MonkeyPatch, signer: Signer) -> None:
    signer.trusted_by(jwks, monkeypatch)
    response = Client().get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response["Cache-Control"] == "public, max-age=300"
    assert response.json()["keys"][0]["kid"] == signer.kid


def test_jwks_proxy_without_any_key_set_is_503(monkeypatch: pytest.MonkeyPatch) -> None:
    from common.contracts.errors import ServiceUnavailable

    def down() -> dict[str, object]:
        raise ServiceUnavailable("No service is answering auth.jwks.get")

    cache = JwksCache(fetch=down)
    monkeypatch.setattr(jwks, "get_jwks", lambda: cache)
    response = Client().get("/.well-known/jwks.json")
    assert response.status_code == 503
    assert response.json()["code"] == "jwks_unavailable"


def test_orjson_renderer() -> None:
    renderer = OrjsonRenderer()
    lazy_text = lazy(lambda: "lazy", str)()
    assert renderer.render(None) == b""
    assert renderer.render({"a": Decimal("1.50"), "b": lazy_text, 1: [True]}) == b'{"a":1.5,"b":"lazy","1":[true]}'


class _FailingClient:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def request(self, *args: object, **kwargs: object) -> object:
        raise self.error


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (GatewayTimeout(), 504),
        (ServiceUnavailable("No service is answering auth.signup.user"), 503),
        (TooManyRequests("Too many failed login attempts", headers={"Retry-After": "42"}), 429),
    ],
)
def test_service_errors_keep_their_status_and_headers(
    monkeypatch: pytest.MonkeyPatch, error: Exception, status: int
) -> None:
    monkeypatch.setattr(forwarding, "get_client", lambda: _FailingClient(error))
    monkeypatch.setattr(forwarding, "ensure_log_level_listener", lambda: None)
    body = {"slug": "ada@example.com", "password": "whatever"}
    response = Client(REMOTE_ADDR="10.55.0.1").post("/api/login", data=body, content_type="application/json")
    assert response.status_code == status
    assert response.json()["statusCode"] == status
    if status == 429:
        assert response["Retry-After"] == "42"


def test_healthz_is_alive_without_a_database() -> None:
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "service": "gateway"}
