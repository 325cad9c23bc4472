"""Token forging for tests: RS256 tokens from local keys, and the hand-made forgeries PyJWT refuses to produce."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from django.conf import settings
from django.test import override_settings

from gateway.api.jwks import JwksCache

# CACHES for a session store that cannot be reached (a port nobody listens on): tokens checked against it must
# be refused with 503, never let through.
UNREACHABLE_REDIS = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient", "SOCKET_CONNECT_TIMEOUT": 0.5},
    }
}


def simple_jwt(**changes: Any) -> override_settings:
    """The gateway's SIMPLE_JWT settings with some values changed (e.g. another ISSUER or AUDIENCE)."""
    return override_settings(SIMPLE_JWT={**settings.SIMPLE_JWT, **changes})


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64url_json(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def new_rsa_key(bits: int = 2048) -> RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def public_jwk(key: RSAPublicKey, kid: str) -> dict[str, Any]:
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key, as_dict=True)
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


def public_pem_from_jwk(jwk: dict[str, Any]) -> bytes:
    key = jwt.algorithms.RSAAlgorithm.from_jwk(jwk)
    assert isinstance(key, RSAPublicKey)
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


# The subject of tokens made here unless a test names another: the owner of conftest's `live_session` sessions.
TEST_SUBJECT = "5e55a7e5-0000-4000-8000-000000000001"


def access_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.JWT_ISSUER,
        "aud": settings.JWT_AUDIENCE,
        "sub": TEST_SUBJECT,
        "sid": uuid.uuid4().hex,
        "roles": ["user"],
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + 900,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


@dataclass
class Signer:
    """A local RS256 key posing as (or competing with) the auth service's signing key."""

    kid: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex[:8]}")
    key: RSAPrivateKey = field(default_factory=new_rsa_key)

    def jwk(self) -> dict[str, Any]:
        return public_jwk(self.key.public_key(), self.kid)

    def token(self, *, headers: dict[str, Any] | None = None, kid: str | None = None, **claims: Any) -> str:
        header = {"kid": kid or self.kid, "typ": "at+jwt", **(headers or {})}
        return jwt.encode(access_claims(**claims), self.key, algorithm="RS256", headers=header)

    def trusted_by(self, module: Any, monkeypatch: pytest.MonkeyPatch) -> Signer:
        """`module.get_jwks` (the gateway's key set, as `module` looks it up) answers this key, as if the auth
        service published it."""
        cache = JwksCache(fetch=lambda: {"keys": [self.jwk()]})
        monkeypatch.setattr(module, "get_jwks", lambda: cache)
        return self


def unsigned_token(claims: dict[str, Any], *, kid: str) -> str:
    """alg "none": no signature at all."""
    return f"{b64url_json({'alg': 'none', 'typ': 'at+jwt', 'kid': kid})}.{b64url_json(claims)}."


def hs256_token(claims: dict[str, Any], *, secret: bytes, kid: str, typ: str = "at+jwt") -> str:
    """HS256 with an arbitrary secret, e.g. the RSA public key's PEM (the classic algorithm-confusion attack)."""
    signing_input = f"{b64url_json({'alg': 'HS256', 'typ': typ, 'kid': kid})}.{b64url_json(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def with_payload(token: str, **changes: Any) -> str:
    """The same header and signature over a different payload (a tampered token)."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    return f"{header}.{b64url_json(claims)}.{signature}"


def unverified_claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})
