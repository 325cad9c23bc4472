"""CORS at the gateway (SPEC §2c): listed origins only, with credentials and the CSRF header; preflight included."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.http import HttpResponse
from django.test import Client, override_settings

from devstack.testing.stack import RunningStack
from gateway.api.csrf import csrf_cookie_name
from gateway.api.tests.e2e import Api, random_ip, seeded

ALLOWED = "https://app.example"
REFUSED = "https://evil.example"
CORS_HEADERS = (
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Credentials",
    "Access-Control-Allow-Headers",
    "Access-Control-Allow-Methods",
)


@pytest.fixture(autouse=True)
def allowed_origin() -> Iterator[None]:
    with override_settings(CORS_ALLOWED_ORIGINS=[ALLOWED]):
        yield


def preflight(path: str, origin: str, method: str = "POST") -> HttpResponse:
    return Client(REMOTE_ADDR=random_ip()).options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "content-type, authorization, x-csrf-token",
        },
    )


def test_an_allowed_origin_passes_the_preflight_with_credentials_and_the_csrf_header() -> None:
    for path, method in (("/api/user", "POST"), ("/api/auth/revalidate-credentials", "POST"), ("/api/user", "GET")):
        response = preflight(path, ALLOWED, method)

        assert response.status_code == 200, path
        assert response["Access-Control-Allow-Origin"] == ALLOWED
        assert response["Access-Control-Allow-Credentials"] == "true"
        assert {"content-type", "authorization", "x-csrf-token"} <= set(
            response["Access-Control-Allow-Headers"].split(", ")
        )
        assert method in response["Access-Control-Allow-Methods"].split(", ")
        assert "origin" in response["Vary"].lower()


def test_a_refused_origin_gets_no_cors_header_at_all() -> None:
    response = preflight("/api/user", REFUSED)

    assert not any(response.has_header(name) for name in CORS_HEADERS)


def test_no_origin_is_allowed_by_default() -> None:
    with override_settings(CORS_ALLOWED_ORIGINS=[]):
        response = preflight("/api/user", ALLOWED)

    assert not any(response.has_header(name) for name in CORS_HEADERS)


def test_an_actual_post_and_get_from_an_allowed_origin_carry_the_header(services: RunningStack) -> None:
    api = Api()
    account = seeded("user")
    login = api.post(
        "/api/login", {"slug": account.email, "password": account.password}, bearer=False, headers={"Origin": ALLOWED}
    )
    api.access_token = login.json()["accessToken"]
    users = api.get("/api/user?limit=1", headers={"Origin": ALLOWED})  # the lean path
    refused = api.get("/api/user?limit=1", headers={"Origin": REFUSED})

    for response in (login, users):
        assert response.status_code == 200
        assert response["Access-Control-Allow-Origin"] == ALLOWED
        assert response["Access-Control-Allow-Credentials"] == "true"
        assert response["Access-Control-Expose-Headers"] == "retry-after, x-request-id, x-csrf-token"
    assert refused.status_code == 200  # CORS is the browser's to enforce; the answer just lacks the grant
    assert not refused.has_header("Access-Control-Allow-Origin")


def test_the_health_probes_are_outside_cors() -> None:
    response = Client().get("/healthz", headers={"Origin": ALLOWED})

    assert response.status_code == 200
    assert not response.has_header("Access-Control-Allow-Origin")


def test_a_front_end_on_another_origin_refreshes_with_the_csrf_token_of_the_header(services: RunningStack) -> None:
    """It cannot read the gateway's CSRF cookie: login and refresh answer the token in `x-csrf-token` (exposed to
    listed origins only), and echoing it passes the CSRF check."""
    api = Api()
    account = seeded("user")
    login = api.post(
        "/api/login", {"slug": account.email, "password": account.password}, bearer=False, headers={"Origin": ALLOWED}
    )
    token = login["x-csrf-token"]
    cookie = api.client.cookies[csrf_cookie_name()].value

    def refresh(csrf: str) -> HttpResponse:
        return api.client.post(
            "/api/auth/revalidate-credentials",
            {},
            content_type="application/json",
            headers={"Origin": ALLOWED, "x-csrf-token": csrf},
        )

    forged = refresh("x.y.z")
    refreshed = refresh(token)

    assert token and token == cookie
    assert refreshed.status_code == 200, refreshed.content
    assert refreshed["x-csrf-token"] and refreshed["x-csrf-token"] != token  # a new session token, a new CSRF token
    assert forged.status_code == 403
