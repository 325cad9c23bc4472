"""The browsable API: HTML only on request, the `access` cookie after a browsable login, and its CSRF and expiry rules."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from django.test import Client, override_settings
from django_redis import get_redis_connection

from common.contracts import subjects
from common.contracts.sessions import session_key
from devstack.testing.envelopes import envelope
from gateway.api import forwarding
from gateway.api.cookies import ACCESS_COOKIE, clear_auth_cookies
from gateway.api.csrf import new_csrf_token
from gateway.api.tests.tokens import Signer

HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"  # what a browser sends on navigation
PAGE = {"limit": 10, "offset": 0, "total": 0, "results": []}


class FakeServices:
    """Stands in for NATS request/reply: canned replies per subject, and what was sent."""

    def __init__(self, replies: dict[str, Any]) -> None:
        self.replies = replies
        self.sent: list[tuple[str, Any]] = []

    def request(self, subject: str, data: Any = None, **kwargs: Any) -> Any:
        self.sent.append((subject, data))
        return self.replies[subject]


@pytest.fixture
def fake_services(monkeypatch: pytest.MonkeyPatch, trusted: Signer) -> Iterator[FakeServices]:
    fake = FakeServices(
        {
            subjects.USER_FIND_ALL: PAGE,
            subjects.AUTH_LOGIN: {
                "accessToken": trusted.token(),
                "refreshToken": "refresh.token.value",
                "refreshExpiresAt": "2099-01-01T00:00:00Z",
                "sessionId": "sid",
            },
        }
    )
    monkeypatch.setattr(forwarding, "get_client", lambda: fake)
    monkeypatch.setattr(forwarding, "ensure_log_level_listener", lambda: None)
    yield fake


def cookie_client(token: str) -> Client:
    client = Client()
    client.cookies[ACCESS_COOKIE] = token
    return client


def login(accept: str | None) -> Any:
    headers = {"Accept": accept} if accept else {}
    body = {"slug": "ada@example.com", "password": "Whatever-Pass-1"}
    return Client(REMOTE_ADDR="10.77.0.1").post(
        "/api/login", data=body, content_type="application/json", headers=headers
    )


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "application/json, text/html;q=0.5"])
def test_json_stays_the_default_answer(
    fake_services: FakeServices, trusted: Signer, live_session: Callable[[], str], accept: str | None
) -> None:
    headers = {"Authorization": f"Bearer {trusted.token(sid=live_session())}"}
    if accept:
        headers["Accept"] = accept

    response = Client().get("/api/user", headers=headers)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert orjson.loads(response.content) == PAGE


def test_a_browser_gets_the_browsable_page_with_the_gateways_csrf_script(
    fake_services: FakeServices, trusted: Signer, live_session: Callable[[], str]
) -> None:
    token = trusted.token(sid=live_session(), roles=["admin"])

    response = Client().get("/api/user", headers={"Authorization": f"Bearer {token}", "Accept": HTML})

    page = response.content.decode()
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert "<title>User Collection \u2013 Authmesh API</title>" in page
    assert "\n  &quot;total&quot;: 0," in page  # the JSON, indented for a person
    assert (
        '<script id="gateway-csrf" type="application/json">{"cookie": "__Host-csrf", "header": "x-csrf-token"}' in page
    )
    assert "/static/gateway_api/csrf-header.js" in page
    assert "Signed in (admin)" in page
    # The create form is shown to an admin, although this navigation carried no CSRF header (its submit will).
    assert 'id="post-generic-content-form"' in page
    assert "&quot;roles&quot;: []" in page  # the form's JSON template lists the body's fields


def test_the_create_form_is_hidden_from_who_may_not_create(
    fake_services: FakeServices, trusted: Signer, live_session: Callable[[], str]
) -> None:
    token = trusted.token(sid=live_session(), roles=["user"])

    page = Client().get("/api/user", headers={"Authorization": f"Bearer {token}", "Accept": HTML}).content.decode()

    assert 'id="post-generic-content-form"' not in page


def test_a_login_from_the_browsable_api_also_sets_the_access_cookie(fake_services: FakeServices) -> None:
    response = login(HTML)

    assert response.status_code == 200
    access = response.cookies[ACCESS_COOKIE]
    assert access.value == fake_services.replies[subjects.AUTH_LOGIN]["accessToken"]
    assert (access["httponly"], access["secure"], access["samesite"], access["path"]) == (True, True, "Strict", "/api")
    assert int(access["max-age"]) == 900
    assert {"Authentication", "__Host-csrf"} <= set(response.cookies)


@pytest.mark.parametrize("accept", [None, "application/json"])
def test_a_json_login_sets_no_access_cookie(fake_services: FakeServices, accept: str | None) -> None:
    response = login(accept)

    assert response.status_code == 200
    assert ACCESS_COOKIE not in response.cookies
    assert set(orjson.loads(response.content)) == {"accessToken"}


@override_settings(COOKIE_SECURE=False)
def test_the_access_cookie_follows_cookie_secure(fake_services: FakeServices) -> None:
    assert login(HTML).cookies[ACCESS_COOKIE]["secure"] == ""


@override_settings(BROWSABLE_API=False)
def test_without_the_browsable_api_a_browser_login_sets_no_access_cookie(fake_services: FakeServices) -> None:
    response = login(HTML)

    assert ACCESS_COOKIE not in response.cookies
    assert response.status_code == 200


def test_the_access_cookie_authenticates_reads(
    fake_services: FakeServices, trusted: Signer, live_session: Callable[[], str]
) -> None:
    response = cookie_client(trusted.token(sid=live_session())).get("/api/user")

    assert response.status_code == 200
    assert fake_services.sent == [
        (subjects.USER_FIND_ALL, {"limit": 10, "offset": 0, "active": None, "verified": None})
    ]


def test_an_ended_session_or_an_expired_token_in_the_cookie_is_still_401(
    fake_services: FakeServices, trusted: Signer, live_session: Callable[[], str]
) -> None:
    sid = live_session()
    client = cookie_client(trusted.token(sid=sid))
    assert client.get("/api/user").status_code == 200
    get_redis_connection("default").delete(session_key(sid))
    ended = client.get("/api/user")
    now = int(time.time())
    expired = cookie_client(trusted.token(sid=live_session(), iat=now - 1000, exp=now - 100)).get("/api/user")
    forged = cookie_client(trusted.token(sid=live_session()) + "x").get("/api/user")

    for response in (ended, expired, forged):
        assert response.status_code == 401
        assert response.json()["message"] == "Invalid or expired access token"
    assert fake_services.sent == [
        (subjects.USER_FIND_ALL, {"limit": 10, "offset": 0, "active": None, "verified": None})
    ]


def test_an_authorization_header_always_wins_over_the_cookie(
    fake_services: FakeServices, trusted: Signer, live_session: Callable[[], str]
) -> None:
    client = cookie_client(trusted.token(sid=live_session()))

    assert client.get("/api/user", headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    # Not a bearer scheme: anonymous, as before; the cookie is not a second chance.
    assert client.get("/api/user", headers={"Authorization": "Basic YTpi"}).status_code == 401
    assert fake_services.sent == []


@override_settings(BROWSABLE_API=False)
def test_without_the_browsable_api_the_cookie_is_ignored(
    fake_services: FakeServices, trusted: Signer, live_session: Callable[[], str]
) -> None:
    assert cookie_client(trusted.token(sid=live_session())).get("/api/user").status_code == 401


def test_an_unsafe_request_with_the_cookie_needs_the_csrf_header(
    fake_services: FakeServices, trusted: Signer, live_session: Callable[[], str]
) -> None:
    sid = live_session()
    client = cookie_client(trusted.token(sid=sid, roles=["sys_admin"]))
    csrf = new_csrf_token(sid)
    client.cookies["__Host-csrf"] = csrf
    body = {"service": "gateway", "level": "INFO"}

    missing = client.post("/api/admin/log-level", data=body, content_type="application/json")
    wrong = client.post(
        "/api/admin/log-level",
        data=body,
        content_type="application/json",
        headers={"x-csrf-token": new_csrf_token(sid)},
    )
    right = client.post(
        "/api/admin/log-level", data=body, content_type="application/json", headers={"x-csrf-token": csrf}
    )

    for response in (missing, wrong):
        assert response.status_code == 403
        assert response.json() == envelope(403, "Invalid or missing CSRF token", "csrf_failed")
    assert right.status_code == 200, right.content
    assert right.json() == {"service": "gateway", "level": "INFO"}


def test_logging_out_clears_the_access_cookie_with_its_flags() -> None:
    from django.http import HttpResponse

    response = HttpResponse()
    clear_auth_cookies(response)

    access = response.cookies[ACCESS_COOKIE]
    assert (access.value, access["max-age"], access["path"]) == ("", 0, "/api")
    assert (access["httponly"], access["secure"], access["samesite"]) == (True, True, "Strict")
