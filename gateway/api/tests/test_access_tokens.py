"""decode_access_token against forged and broken tokens: every one is refused, only the genuine one passes."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from django.conf import settings

from gateway.api.authentication import InvalidAccessToken, decode_access_token
from gateway.api.jwks import JwksCache
from gateway.api.tests.tokens import (
    Signer,
    access_claims,
    hs256_token,
    public_pem_from_jwk,
    unsigned_token,
    with_payload,
)


@pytest.fixture(scope="module")
def genuine() -> Signer:
    return Signer()


def decode(token: str, genuine: Signer, *, now: float | None = None) -> dict[str, Any]:
    cache = JwksCache(fetch=lambda: {"keys": [genuine.jwk()]})
    return decode_access_token(
        token,
        key_for=cache.key,
        issuer=settings.JWT_ISSUER,
        audience=settings.JWT_AUDIENCE,
        now=time.time() if now is None else now,
        leeway=5,
    )


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
    with pytest.raises(InvalidAccessToken):
        decode(forged[case], genuine)


def test_expiry_allows_only_the_configured_leeway(genuine: Signer) -> None:
    now = time.time()
    token = genuine.token(iat=int(now) - 100, exp=int(now) - 3)
    assert decode(token, genuine, now=now)
    with pytest.raises(InvalidAccessToken):
        decode(token, genuine, now=now + 3)
