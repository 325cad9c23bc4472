"""Every forged, stale or misused credential is refused with 401 by the gateway in front of the real services."""

from __future__ import annotations

import time

import jwt
import pytest

from devstack.testing.stack import RunningStack
from gateway.api import access_tokens
from gateway.api.tests.e2e import CSRF_COOKIE, REFRESH_COOKIE, Account, Api
from gateway.api.tests.tokens import (
    Signer,
    hs256_token,
    public_pem_from_jwk,
    simple_jwt,
    unsigned_token,
    unverified_claims,
    with_payload,
)

pytestmark = pytest.mark.e2e

PROTECTED = "/api/user"


def status_with(token: str) -> int:
    return Api().get(PROTECTED, headers={"Authorization": f"Bearer {token}"}).status_code


@pytest.fixture
def victim(member: tuple[Api, Account]) -> Api:
    api, _ = member
    assert api.get(PROTECTED).status_code == 200
    return api


@pytest.fixture
def published_jwk(stack: RunningStack) -> dict[str, object]:
    keys = Api().get("/.well-known/jwks.json").json()["keys"]
    assert keys
    return dict(keys[0])


def test_no_token(stack: RunningStack) -> None:
    response = Api().get(PROTECTED)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize("value", ["Bearer", "Bearer not-a-jwt", "Bearer a.b.c", "Bearer a b", "Bearer ...."])
def test_malformed_tokens(stack: RunningStack, value: str) -> None:
    assert Api().get(PROTECTED, headers={"Authorization": value}).status_code == 401


def test_alg_none(victim: Api) -> None:
    claims = unverified_claims(victim.access_token or "")
    kid = jwt.get_unverified_header(victim.access_token or "")["kid"]
    assert status_with(unsigned_token({**claims, "roles": ["sys_admin"]}, kid=kid)) == 401


def test_hs256_signed_with_the_public_key(victim: Api, published_jwk: dict[str, object]) -> None:
    claims = unverified_claims(victim.access_token or "")
    pem = public_pem_from_jwk(published_jwk)
    token = hs256_token({**claims, "roles": ["sys_admin"]}, secret=pem, kid=str(published_jwk["kid"]))
    assert status_with(token) == 401


def test_unknown_kid(victim: Api) -> None:
    claims = unverified_claims(victim.access_token or "")
    assert status_with(Signer().token(**claims)) == 401


def test_foreign_rs256_key_with_the_real_kid(victim: Api, published_jwk: dict[str, object]) -> None:
    claims = unverified_claims(victim.access_token or "")
    assert status_with(Signer().token(kid=str(published_jwk["kid"]), **claims)) == 401


def test_expired(victim: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    exp = unverified_claims(victim.access_token or "")["exp"]
    monkeypatch.setattr(access_tokens, "clock", lambda: exp + 60.0)
    assert victim.get(PROTECTED).status_code == 401
    monkeypatch.setattr(access_tokens, "clock", time.time)
    assert victim.get(PROTECTED).status_code == 200


def test_wrong_issuer(victim: Api) -> None:
    with simple_jwt(ISSUER="https://issuer.example"):
        assert victim.get(PROTECTED).status_code == 401


def test_wrong_audience(victim: Api) -> None:
    with simple_jwt(AUDIENCE="another-api"):
        assert victim.get(PROTECTED).status_code == 401


def test_refresh_token_used_as_access_token(victim: Api) -> None:
    assert status_with(victim.refresh_token) == 401


def test_tampered_payload(victim: Api, sys_admin: Api) -> None:
    token = victim.access_token or ""
    assert status_with(with_payload(token, roles=["sys_admin"])) == 401
    assert status_with(with_payload(token, sub=sys_admin.user_id)) == 401
    assert status_with(with_payload(token, exp=int(time.time()) + 86400)) == 401


def test_token_of_an_ended_session(victim: Api) -> None:
    assert victim.post("/api/auth/logout", bearer=False).status_code == 200
    assert victim.get(PROTECTED).status_code == 401


def test_tampered_refresh_cookie(victim: Api) -> None:
    forged = Api()
    value = victim.cookie(REFRESH_COOKIE) or ""
    forged.client.cookies[REFRESH_COOKIE] = value.replace(".", "!", 1)
    forged.client.cookies[CSRF_COOKIE] = victim.csrf_cookie or ""
    assert forged.post("/api/auth/revalidate-credentials").status_code == 401
    forged.client.cookies[REFRESH_COOKIE] = victim.refresh_token  # the bare token, without our signature
    assert forged.post("/api/auth/revalidate-credentials").status_code == 401
    assert victim.refresh().status_code == 200


def test_csrf_token_of_another_browser_still_needs_to_match_the_cookie(victim: Api, sys_admin: Api) -> None:
    # The victim's cookie jar with the attacker's (valid-looking) header: refused.
    response = victim.patch(
        f"/api/user/{victim.user_id}",
        {"name": "Csrf Victim"},
        csrf=False,
        headers={"x-csrf-token": sys_admin.csrf_cookie or ""},
    )
    assert response.status_code == 403
