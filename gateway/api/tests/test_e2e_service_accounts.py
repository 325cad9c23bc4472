"""Service accounts end to end (SPEC §2c): create_client, the token endpoint, client tokens on the user reads."""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass

import pytest
from django.conf import settings
from django.http import HttpResponse
from django.test import Client, override_settings

from authmesh_client import ServiceTokenClient, ServiceTokenError, TokenVerifier
from devstack.testing.stack import RunningStack
from gateway.api.tests.e2e import Api, random_ip
from gateway.api.tests.tokens import unverified_claims

pytestmark = pytest.mark.e2e

TOKEN_PATH = "/api/oauth/token"
FORM = "application/x-www-form-urlencoded"


@dataclass
class ServiceAccount:
    client_id: str
    secret: str


def create_client(stack: RunningStack, *scopes: str, name: str = "reporting") -> ServiceAccount:
    args = [arg for scope in scopes for arg in ("--scope", scope)]
    output = stack.manage("auth", "create_client", name, *args)
    client_id = re.search(r"^client_id: (\S+)$", output, re.M)
    secret = re.search(r"^client_secret: (\S+)$", output, re.M)
    assert client_id and secret, output
    return ServiceAccount(client_id.group(1), secret.group(1))


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def token_request(
    body: str, *, authorization: str | None = None, ip: str | None = None, content_type: str = FORM
) -> HttpResponse:
    headers = {"Authorization": authorization} if authorization else {}
    client = Client(REMOTE_ADDR=ip or random_ip())
    return client.generic("POST", TOKEN_PATH, data=body.encode(), content_type=content_type, headers=headers)


def token_for(account: ServiceAccount, scope: str | None = None) -> str:
    body = "grant_type=client_credentials" + (f"&scope={scope}" if scope else "")
    response = token_request(body, authorization=basic(account.client_id, account.secret))
    assert response.status_code == 200, response.content
    return str(response.json()["access_token"])


def client_api(token: str) -> Api:
    api = Api()
    api.access_token = token
    return api


def assert_oauth_error(response: HttpResponse, status: int, error: str) -> None:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "error_description"}, body
    assert body["error"] == error
    assert response["Cache-Control"] == "no-store"
    assert response["Pragma"] == "no-cache"
    if error == "invalid_client":
        assert response["WWW-Authenticate"].startswith("Basic")


@pytest.fixture
def reader(stack: RunningStack) -> ServiceAccount:
    return create_client(stack, "users:read")


def test_basic_auth_token_reads_users_and_nothing_else(reader: ServiceAccount, sys_admin: Api) -> None:
    response = token_request("grant_type=client_credentials", authorization=basic(reader.client_id, reader.secret))
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    assert response["Pragma"] == "no-cache"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("Bearer", 900, "users:read")
    claims = unverified_claims(body["access_token"])
    assert claims["sub"] == claims["client_id"] == reader.client_id
    assert claims["scope"] == "users:read"
    assert "sid" not in claims and "roles" not in claims
    assert {"iss", "aud", "jti", "iat", "exp", "cep"} <= set(claims)

    api = client_api(body["access_token"])
    page = api.get("/api/user")
    assert page.status_code == 200, page.content
    user_id = page.json()["results"][0]["id"]
    assert api.get(f"/api/user/{user_id}").status_code == 200
    # Refused everywhere no scope is named: a write, a user's own routes.
    created = api.post("/api/user", {"name": "x", "username": "x", "email": "x@example.com", "password": "y"})
    assert created.status_code == 403, created.content
    assert api.get("/api/auth/sessions").status_code == 403
    assert api.get("/api/admin/log-level?service=auth").status_code == 403
    # A user's token still works there, of course.
    assert sys_admin.get("/api/auth/sessions").status_code == 200


def test_body_auth_and_requested_scope(reader: ServiceAccount) -> None:
    response = token_request(
        f"grant_type=client_credentials&scope=users:read&client_id={reader.client_id}&client_secret={reader.secret}"
    )
    assert response.status_code == 200, response.content
    assert response.json()["scope"] == "users:read"
    assert client_api(response.json()["access_token"]).get("/api/user").status_code == 200


def test_errors_are_rfc6749_bodies(reader: ServiceAccount) -> None:
    good = basic(reader.client_id, reader.secret)
    assert_oauth_error(
        token_request("grant_type=client_credentials", authorization=basic(reader.client_id, "wrong")),
        401,
        "invalid_client",
    )
    unknown = token_request("grant_type=client_credentials", authorization=basic(uuid.uuid4().hex, reader.secret))
    assert_oauth_error(unknown, 401, "invalid_client")
    assert_oauth_error(token_request("grant_type=client_credentials"), 401, "invalid_client")
    assert_oauth_error(
        token_request("grant_type=client_credentials&scope=users:write", authorization=good), 400, "invalid_scope"
    )
    assert_oauth_error(token_request("grant_type=password", authorization=good), 400, "unsupported_grant_type")
    assert_oauth_error(token_request("scope=users:read", authorization=good), 400, "invalid_request")
    both = token_request(f"grant_type=client_credentials&client_secret={reader.secret}", authorization=good)
    assert_oauth_error(both, 400, "invalid_request")
    repeated = token_request("grant_type=client_credentials&grant_type=client_credentials", authorization=good)
    assert_oauth_error(repeated, 400, "invalid_request")
    as_json = token_request('{"grant_type": "client_credentials"}', authorization=good, content_type="application/json")
    assert_oauth_error(as_json, 400, "invalid_request")


def test_disabling_ends_the_tokens_at_once(stack: RunningStack, reader: ServiceAccount) -> None:
    api = client_api(token_for(reader))
    assert api.get("/api/user").status_code == 200
    assert "disabled" in stack.manage("auth", "disable_client", reader.client_id)
    refused = api.get("/api/user")
    assert refused.status_code == 401, refused.content
    assert refused.json()["statusCode"] == 401
    good = basic(reader.client_id, reader.secret)
    assert_oauth_error(token_request("grant_type=client_credentials", authorization=good), 401, "invalid_client")
    # Enabled again: new tokens work, the ones issued before the disabling stay refused.
    assert "enabled" in stack.manage("auth", "disable_client", reader.client_id, "--enable")
    assert client_api(token_for(reader)).get("/api/user").status_code == 200
    assert api.get("/api/user").status_code == 401


def test_rotation_refuses_the_old_secret_and_its_tokens(stack: RunningStack, reader: ServiceAccount) -> None:
    old_token = token_for(reader)
    output = stack.manage("auth", "rotate_client_secret", reader.client_id)
    match = re.search(r"^client_secret: (\S+)$", output, re.M)
    assert match
    new_secret = match.group(1)
    assert new_secret != reader.secret
    assert client_api(old_token).get("/api/user").status_code == 401
    old = token_request("grant_type=client_credentials", authorization=basic(reader.client_id, reader.secret))
    assert_oauth_error(old, 401, "invalid_client")
    rotated = ServiceAccount(reader.client_id, new_secret)
    assert client_api(token_for(rotated)).get("/api/user").status_code == 200


def test_token_requests_are_throttled_per_client_and_per_ip(reader: ServiceAccount) -> None:
    rates = {"oauth-token.ip": "3/10m", "oauth-token.account": "2/10m"}
    from django.conf import settings

    with override_settings(THROTTLE_RATES={**settings.THROTTLE_RATES, **rates}):
        good = basic(reader.client_id, reader.secret)
        for _ in range(2):
            assert token_request("grant_type=client_credentials", authorization=good).status_code == 200
        throttled = token_request("grant_type=client_credentials", authorization=good)
        assert throttled.status_code == 429, throttled.content
        assert throttled.json()["error"] == "slow_down"
        assert int(throttled["Retry-After"]) > 0
        # Per IP: one address trying many client ids is stopped as well.
        ip = random_ip()
        for _ in range(3):
            response = token_request("grant_type=client_credentials", authorization=basic(uuid.uuid4().hex, "x"), ip=ip)
            assert response.status_code == 401
        assert token_request("grant_type=client_credentials", ip=ip).status_code == 429


def test_a_users_service_obtains_a_token_and_verifies_it_with_authmesh_client(
    stack: RunningStack, live_gateway: str
) -> None:
    """What another service of the user's does: a client-credentials token from the discovered token endpoint
    (cached), verified from the discovered key set, used on a user read."""
    account = create_client(stack, "users:read", name="billing")
    with override_settings(GATEWAY_PUBLIC_URL=live_gateway):
        discovery = f"{live_gateway}/.well-known/openid-configuration"
        tokens = ServiceTokenClient(discovery, account.client_id, account.secret, scope="users:read")
        verifier = TokenVerifier(discovery, audience=settings.JWT_AUDIENCE)

        token = tokens.token()
        claims = verifier.verify(token)
        again = tokens.token()
        with pytest.raises(ServiceTokenError) as refused:
            ServiceTokenClient(discovery, account.client_id, "not-the-secret").token()

    assert again == token  # cached until shortly before it expires
    assert (claims["sub"], claims["client_id"], claims["scope"]) == (account.client_id, account.client_id, "users:read")
    assert "sid" not in claims and "roles" not in claims
    assert client_api(token).get("/api/user").status_code == 200
    assert refused.value.error == "invalid_client"
