"""simplejwt's token class of the gateway against forged and broken tokens: every one is refused, only the genuine
one passes; and the SIMPLE_JWT settings it is built from."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from rest_framework_simplejwt.exceptions import TokenError

from gateway.api import access_tokens
from gateway.api.access_tokens import AccessToken, JwksTokenBackend, token_backend
from gateway.api.jwks import JwksCache
from gateway.api.tests.tokens import (
    Signer,
    access_claims,
    hs256_token,
    public_pem_from_jwk,
    simple_jwt,
    unsigned_token,
    with_payload,
)


@pytest.fixture(scope="module")
def genuine() -> Signer:
    return Signer()


def decode(token: str, genuine: Signer, *, now: float | None = None) -> dict[str, Any]:
    cache = JwksCache(fetch=lambda: {"keys": [genuine.jwk()]})
    backend = JwksTokenBackend(issuer=settings.JWT_ISSUER, audience=settings.JWT_AUDIENCE, leeway=5, key_for=cache.key)
    token_class = type("TrustingGenuine", (AccessToken,), {"_token_backend": backend})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(access_tokens, "clock", (lambda: now) if now is not None else time.time)
        return token_class(token).payload


def test_genuine_token_passes(genuine: Signer) -> None:
    claims = decode(genuine.token(sub="user-1", sid="sid-1", roles=["admin"]), genuine)
    assert (claims["sub"], claims["sid"], claims["roles"]) == ("user-1", "sid-1", ["admin"])


def test_rfc9068_media_type_spelling_is_accepted(genuine: Signer) -> None:
    assert decode(genuine.token(headers={"typ": "application/AT+JWT"}), genuine)["sub"]


@pytest.fixture(scope="module")
def forged(genuine: Signer) -> dict[str, str]:
    foreign = Signer()
    pem = public_pem_from_jwk(genuine.jwk())
    now = int(time.time())
    refresh_claims = {
        "iss": settings.JWT_ISSUER,
        "sub": "u",
        "sid": "s",
        "check": "c",
        "typ": "refresh",
        "iat": now,
        "exp": now + 600,
    }
    return {
        "not a jwt": "not-a-token",
        "two segments": "abc.def",
        "garbage segments": "a.b.c",
        "empty": "",
        "alg none": unsigned_token(access_claims(), kid=genuine.kid),
        "alg none, signature kept": unsigned_token(access_claims(), kid=genuine.kid) + genuine.token().split(".")[2],
        "HS256 signed with the public key PEM": hs256_token(access_claims(), secret=pem, kid=genuine.kid),
        "unknown kid": foreign.token(),
        "no kid": jwt.encode(access_claims(), genuine.key, algorithm="RS256", headers={"typ": "at+jwt"}),
        "foreign key, genuine kid": foreign.token(kid=genuine.kid),
        "expired": genuine.token(iat=now - 1000, exp=now - 60),
        "issued in the future": genuine.token(iat=now + 600, exp=now + 1200),
        "wrong issuer": genuine.token(iss="https://evil.example"),
        "wrong audience": genuine.token(aud="another-api"),
        "no typ": genuine.token(headers={"typ": None}),
        "refresh typ": genuine.token(headers={"typ": "refresh"}),
        "refresh token (HS256)": jwt.encode(refresh_claims, "refresh-secret-of-at-least-32-bytes!", algorithm="HS256"),
        "tampered payload": with_payload(genuine.token(roles=["user"]), roles=["sys_admin"]),
        "missing sid": genuine.token(sid=None),
        "missing jti": genuine.token(jti=None),
        "missing exp": genuine.token(exp=None),
        "roles not a list": genuine.token(roles="sys_admin"),
        "sub not a string": genuine.token(sub=42),
        "oversized": genuine.token(sub="x" * 9000),
    }


@pytest.mark.parametrize(
    "case",
    [
        "not a jwt", "two segments", "garbage segments", "empty", "alg none", "alg none, signature kept",
        "HS256 signed with the public key PEM", "unknown kid", "no kid", "foreign key, genuine kid", "expired",
        "issued in the future", "wrong issuer", "wrong audience", "no typ", "refresh typ", "refresh token (HS256)",
        "tampered payload", "missing sid", "missing jti", "missing exp", "roles not a list", "sub not a string",
        "oversized",
    ],
)  # fmt: skip
def test_forged_or_broken_token_is_refused(genuine: Signer, forged: dict[str, str], case: str) -> None:
    with pytest.raises(TokenError):
        decode(forged[case], genuine)


def test_expiry_allows_only_the_configured_leeway(genuine: Signer) -> None:
    now = time.time()
    token = genuine.token(iat=int(now) - 100, exp=int(now) - 3)
    assert decode(token, genuine, now=now)
    with pytest.raises(TokenError):
        decode(token, genuine, now=now + 3)


def test_the_backend_follows_the_simple_jwt_settings() -> None:
    backend = token_backend()
    assert token_backend() is backend  # built once: its verified tokens and key lookups are kept
    assert (backend.algorithm, backend.issuer, backend.audience) == (
        "RS256",
        settings.JWT_ISSUER,
        settings.JWT_AUDIENCE,
    )
    assert backend.leeway_seconds == settings.JWT_LEEWAY_SECONDS
    with simple_jwt(ISSUER="https://issuer.example", LEEWAY=1):
        other = token_backend()
        assert (other.issuer, other.leeway_seconds) == ("https://issuer.example", 1)
    assert token_backend() is not other


@pytest.mark.parametrize(
    "changes",
    [
        {"ALGORITHM": "HS256"},
        {"ALGORITHM": "RS512"},
        {"JWK_URL": "https://auth.example/jwks.json"},
        {"VERIFYING_KEY": "-----BEGIN PUBLIC KEY-----"},
        {"USER_ID_CLAIM": "user_id"},
        {"TOKEN_TYPE_CLAIM": "token_type"},
        {"ISSUER": None},
        {"AUDIENCE": ""},
    ],
)
def test_settings_that_would_weaken_or_bypass_the_checks_are_refused(changes: dict[str, Any]) -> None:
    with simple_jwt(**changes), pytest.raises(ImproperlyConfigured):
        token_backend()


def test_a_verified_token_is_verified_again_when_its_key_changes(genuine: Signer) -> None:
    keys = {"current": JwksCache(fetch=lambda: {"keys": [genuine.jwk()]})}
    backend = JwksTokenBackend(
        issuer=settings.JWT_ISSUER,
        audience=settings.JWT_AUDIENCE,
        leeway=5,
        key_for=lambda kid: keys["current"].key(kid),
    )
    token = genuine.token()
    assert backend.decode(token) is backend.decode(token)  # the second answer is the remembered one
    # The same kid now names another key (a forged set would, too): the remembered answer is not used.
    keys["current"] = JwksCache(fetch=lambda: {"keys": [Signer(kid=genuine.kid).jwk()]})
    with pytest.raises(Exception, match="Token is invalid"):
        backend.decode(token)
