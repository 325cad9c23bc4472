"""The passkey routes at the gateway: the browser's nested credential JSON is accepted and forwarded under its own
key, unknown top-level properties and oversized parts are refused before anything is forwarded, the passkey login
sets the tokens as the password login does, and the sign-in page (passkeys and TOTP) is served within the CSP."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.test import Client, override_settings

from common.contracts import subjects
from common.contracts.envelope import Request
from gateway.api import forwarding
from gateway.api.csrf import new_csrf_token
from gateway.api.passkeys import MAX_CREDENTIAL_PART_BYTES
from gateway.api.tests.tokens import TEST_SUBJECT, Signer

# The sign-in page's scripts, in their order: the API and its config first, the page's own script last.
PAGE_SCRIPTS = ("signin-api", "webauthn-json", "second-factors", "passkeys")
PASSKEY = {"id": str(uuid.uuid4()), "name": "Laptop", "createdAt": "2026-01-01T00:00:00.000Z", "lastUsedAt": None}
TOKENS = {
    "accessToken": "access.token.value",
    "refreshToken": "refresh.token.value",
    "refreshExpiresAt": "2099-01-01T00:00:00.000Z",
    "sessionId": "s" * 22,
}


def credential(**response: Any) -> dict[str, Any]:
    return {
        "id": "AAECAw",
        "rawId": "AAECAw",
        "type": "public-key",
        "response": {"clientDataJSON": "eyJ9", "attestationObject": "o2Nm", "transports": ["internal"], **response},
        "clientExtensionResults": {"credProps": {"rk": True}},
        "authenticatorAttachment": "platform",
    }


class Recorder:
    """The auth service as these tests need it: canned replies per subject, and the requests as a bridge would
    hand them to a handler. In-process, since the stack's own auth bridges (the e2e tests') serve the same subjects
    in the same queue group on the test NATS and would answer some of these requests themselves."""

    def __init__(self, replies: dict[str, Any]) -> None:
        self.replies = replies
        self.requests: list[Request] = []

    def request(self, subject: str, data: Any = None, *, agent: Any = None, **kwargs: Any) -> Any:
        self.requests.append(Request(subject=subject, data=data, agent=agent))
        return self.replies[subject]


@pytest.fixture
def received(monkeypatch: pytest.MonkeyPatch) -> list[Request]:
    recorder = Recorder(
        {
            subjects.AUTH_PASSKEY_REGISTER_VERIFY: PASSKEY,
            subjects.AUTH_PASSKEY_LOGIN_VERIFY: TOKENS,
            subjects.AUTH_PASSKEY_LOGIN_OPTIONS: {"challenge": "abc", "timeout": 300000},
        }
    )
    monkeypatch.setattr(forwarding, "get_client", lambda: recorder)
    return recorder.requests


@pytest.fixture
def caller(trusted: Signer, live_session: Callable[[], str]) -> tuple[Client, dict[str, str]]:
    client = Client()
    sid = live_session()
    csrf = new_csrf_token(sid)
    client.cookies["__Host-csrf"] = csrf
    token = trusted.token(sid=sid, sub=TEST_SUBJECT, roles=["user"])
    return client, {"Authorization": f"Bearer {token}", "x-csrf-token": csrf}


def test_registration_forwards_the_nested_credential_apart_from_its_name(
    received: list[Request], caller: tuple[Client, dict[str, str]]
) -> None:
    client, headers = caller
    body = {**credential(), "name": "Laptop"}

    response = client.post("/api/auth/passkeys/register/verify", body, content_type="application/json", headers=headers)

    assert response.status_code == 201, response.content
    assert response.json() == PASSKEY
    (request,) = received
    assert request.data == {"credential": credential(), "name": "Laptop"}
    assert request.agent is not None and request.agent.id == TEST_SUBJECT


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ({"extra": 1}, {"extra"}),
        ({"response": "not an object"}, {"response"}),
        ({"response": {"clientDataJSON": "x" * MAX_CREDENTIAL_PART_BYTES}}, {"response"}),
        ({"type": "password"}, {"type"}),
        ({"rawId": "not base64url!"}, {"rawId"}),
        ({"name": ""}, {"name"}),
    ],
)
def test_registration_refuses_a_malformed_body_before_forwarding(
    received: list[Request], caller: tuple[Client, dict[str, str]], change: dict[str, Any], fields: set[str]
) -> None:
    client, headers = caller
    body = {**credential(), "name": "Laptop", **change}

    response = client.post("/api/auth/passkeys/register/verify", body, content_type="application/json", headers=headers)

    assert response.status_code == 400
    assert set(response.json()["fields"]) == fields
    assert received == []


def test_registration_needs_a_bearer_token_and_the_csrf_header(
    received: list[Request], caller: tuple[Client, dict[str, str]]
) -> None:
    client, headers = caller
    body = {**credential(), "name": "Laptop"}
    path = "/api/auth/passkeys/register/verify"

    assert Client().post(path, body, content_type="application/json").status_code == 401
    no_csrf = {"Authorization": headers["Authorization"]}
    assert client.post(path, body, content_type="application/json", headers=no_csrf).status_code == 403
    assert received == []


def test_a_passkey_login_sets_the_tokens_as_a_password_login_does(received: list[Request]) -> None:
    body = {**credential(signature="c2ln", authenticatorData="YXV0aA"), "mfaToken": "pending-login-token"}

    response = Client().post("/api/login/passkey/verify", body, content_type="application/json")

    assert response.status_code == 200, response.content
    assert response.json() == {"accessToken": TOKENS["accessToken"]}
    assert response.cookies["Authentication"]["httponly"]
    assert response.cookies["__Host-csrf"].value
    (request,) = received
    assert request.data["mfaToken"] == "pending-login-token"
    assert "mfaToken" not in request.data["credential"]
    assert request.data["credential"]["response"]["signature"] == "c2ln"


@pytest.mark.parametrize(
    ("body", "forwarded"),
    [({}, {"slug": None}), ({"slug": "  "}, {"slug": None}), ({"slug": " ada "}, {"slug": "ada"})],
)
def test_login_options_forward_a_slug_only_when_one_is_given(
    received: list[Request], body: dict[str, Any], forwarded: dict[str, Any]
) -> None:
    response = Client().post("/api/login/passkey/options", body, content_type="application/json")

    assert response.status_code == 200, response.content
    assert received[0].data == forwarded


def test_the_passkeys_page_is_html_with_its_scripts_as_static_files() -> None:
    response = Client().get("/api/auth/passkeys/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in response["Content-Security-Policy"]
    html = response.content.decode()
    scripts = re.findall(r"<script([^>]*)>", html)
    sources = [f' src="/static/gateway_api/{name}.js"' for name in PAGE_SCRIPTS]
    assert scripts == [' id="passkeys-config" type="application/json"', *sources]
    assert all(finders.find(f"gateway_api/{name}.js") for name in PAGE_SCRIPTS)
    assert not re.search(r"\sstyle=", html)
    for control in (
        "register",
        "passkey-login",
        "totp-setup",
        "totp-confirm-form",
        "mfa-code-form",
        "mfa-recovery-form",
    ):
        assert f'id="{control}"' in html


def test_passkey_logins_share_the_login_throttle(received: list[Request]) -> None:
    client = Client(REMOTE_ADDR=f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.9")
    body = credential(signature="c2ln", authenticatorData="YXV0aA")

    with override_settings(THROTTLE_RATES={"login.ip": "2/10m"}):
        statuses = [
            client.post("/api/login/passkey/verify", body, content_type="application/json").status_code
            for _ in range(3)
        ]
        password_login = client.post("/api/login", {"slug": "a@b.c", "password": "x"}, content_type="application/json")

    assert statuses == [200, 200, 429]
    assert password_login.status_code == 429 and int(password_login["Retry-After"]) > 0
    assert len(received) == 2
