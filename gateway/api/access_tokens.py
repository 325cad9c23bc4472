"""Access tokens on djangorestframework-simplejwt: its TokenBackend fed with our JWKS cache, and its Token class
holding SPEC §3's checks. SIMPLE_JWT (gateway settings) names the algorithm, issuer, audience, leeway and claims."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from rest_framework_simplejwt import settings as simple_jwt
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.exceptions import TokenBackendError, TokenError
from rest_framework_simplejwt.tokens import Token

from gateway.api.jwks import get_jwks

ALGORITHM = "RS256"
# RFC 9068 names the type "at+jwt", in the header; media types are case-insensitive and may carry "application/".
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
REQUIRED_CLAIMS = ("iss", "aud", "sub", "sid", "roles", "jti", "iat", "exp")
_REQUIRED = frozenset(REQUIRED_CLAIMS)
# A token is a few hundred bytes; refusing huge ones early keeps parsing cost bounded.
MAX_TOKEN_LENGTH = 8192

_VERIFIED_MAX = 4096

KeyLookup = Callable[[str], RSAPublicKey | None]
# The gateway's clock for exp/iat; a module attribute so tests can move time instead of waiting for it.
clock: Callable[[], float] = time.time


class InvalidAccessToken(TokenError):
    """The token's claims are not acceptable; the reason is for logs only, never for the client."""


class JwksTokenBackend(TokenBackend):
    """simplejwt's TokenBackend verifying RS256 with the key the JWKS cache holds for the token's `kid`.

    Not simplejwt's JWK_URL: its PyJWKClient fetches over HTTP with a cache of its own, where the gateway needs
    the auth service's set over NATS with single-flight refetches, the last good set kept and revocations
    (gateway/api/jwks.py). The header is checked before any key is looked up: the algorithm is pinned ("none",
    HS256-with-the-public-key and friends stop there) and the type must be an access token's.
    """

    def __init__(self, *, issuer: str, audience: str, leeway: float | timedelta, key_for: KeyLookup | None = None):
        if not issuer or not audience:
            raise ImproperlyConfigured("SIMPLE_JWT needs ISSUER and AUDIENCE: every access token names both")
        super().__init__(ALGORITHM, audience=audience, issuer=issuer, leeway=leeway)
        self._key_for = key_for
        self.leeway_seconds = self.get_leeway().total_seconds()
        # Tokens whose signature this backend verified, so a client's repeated requests pay for the RS256 check
        # once. Each is bound to the exact key object it was verified with: a refetched or withdrawn key means a
        # full check again; a backend of other settings starts empty. exp/iat are checked against the clock and
        # the session's liveness is looked up on every request. Bounded; cleared whole when full.
        self._verified: dict[str, tuple[RSAPublicKey, str, dict[str, Any]]] = {}

    def key_for(self, kid: str) -> RSAPublicKey | None:
        return self._key_for(kid) if self._key_for is not None else get_jwks().key(kid)

    def get_verifying_key(self, token: Any) -> RSAPublicKey:
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise TokenBackendError("empty or oversized token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise TokenBackendError("malformed header") from exc
        if header.get("alg") != ALGORITHM:
            raise TokenBackendError("algorithm not allowed")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
            raise TokenBackendError("not an access token")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenBackendError("no kid")
        key = self.key_for(kid)
        if key is None:
            raise TokenBackendError("unknown kid")
        return key

    def decode(self, token: Any, verify: bool = True) -> dict[str, Any]:
        """simplejwt's decode (signature, alg, iss, aud, exp), remembering the tokens it already verified."""
        if not verify:
            return super().decode(token, verify=False)
        hit = self._verified.get(token)
        if hit is not None:
            verified_with, verified_kid, verified = hit
            if self.key_for(verified_kid) is verified_with:
                return verified
            self._verified.pop(token, None)
        claims = super().decode(token)
        kid = str(jwt.get_unverified_header(token)["kid"])
        key = self.key_for(kid)
        if key is not None:
            if len(self._verified) >= _VERIFIED_MAX:
                self._verified.clear()
            self._verified[token] = (key, kid, claims)
        return claims


class AccessToken(Token):
    """An access token of the auth service (SPEC §3), as simplejwt's AUTH_TOKEN_CLASSES entry.

    `verify` replaces simplejwt's own (exp by its own clock, jti, a token-type claim): the type is the header's
    `typ` (checked by the backend, so TOKEN_TYPE_CLAIM is None) and every claim is checked here, once, against
    the gateway's clock.
    """

    token_type = "at+jwt"  # noqa: S105 - a media type, not a secret
    # simplejwt's Token wants one; the gateway never issues tokens.
    lifetime = timedelta(minutes=15)

    @property
    def token_backend(self) -> JwksTokenBackend:  # type: ignore[override]
        return self._token_backend if isinstance(self._token_backend, JwksTokenBackend) else token_backend()

    def verify(self) -> None:
        if not self.payload.keys() >= _REQUIRED:
            raise InvalidAccessToken(f"missing {', '.join(sorted(_REQUIRED - self.payload.keys()))}")
        check_claims(self.payload, now=clock(), leeway=self.token_backend.leeway_seconds)


def _timestamp(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def check_claims(claims: Mapping[str, Any], *, now: float, leeway: float) -> None:
    exp, iat = _timestamp(claims.get("exp")), _timestamp(claims.get("iat"))
    if exp is None or exp <= now - leeway:
        raise InvalidAccessToken("expired")
    if iat is None or iat > now + leeway:
        raise InvalidAccessToken("issued in the future")
    for name in ("sub", "sid", "jti"):
        value = claims.get(name)
        if not isinstance(value, str) or not value or len(value) > 128:
            raise InvalidAccessToken(f"bad {name}")
    roles = claims.get("roles")
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise InvalidAccessToken("bad roles")
    epoch = claims.get("ep", 0)
    if not isinstance(epoch, int) or isinstance(epoch, bool) or not 0 <= epoch < 2**53:
        raise InvalidAccessToken("bad ep")


def refusal_reason(exc: BaseException) -> str:
    """Why a token was refused, for the logs: the first cause simplejwt wrapped ("Token is invalid")."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return type(exc).__name__ if isinstance(exc, jwt.InvalidTokenError) else str(exc)


_backend: JwksTokenBackend | None = None


def token_backend() -> JwksTokenBackend:
    """The backend of the SIMPLE_JWT settings, built once (and again when the settings change)."""
    global _backend
    backend = _backend
    if backend is None:
        config = simple_jwt.api_settings  # read through the module: simplejwt replaces it when settings change
        if config.ALGORITHM != ALGORITHM:
            raise ImproperlyConfigured(f"SIMPLE_JWT['ALGORITHM'] must be {ALGORITHM}: access tokens are RS256")
        if config.JWK_URL or config.VERIFYING_KEY:
            raise ImproperlyConfigured("SIMPLE_JWT: keys come from the JWKS cache, not JWK_URL or VERIFYING_KEY")
        # The session check compares the session's owner with `sub`; the type is the header's `typ` (RFC 9068).
        if config.USER_ID_CLAIM != "sub" or config.TOKEN_TYPE_CLAIM is not None:
            raise ImproperlyConfigured("SIMPLE_JWT needs USER_ID_CLAIM 'sub' and TOKEN_TYPE_CLAIM None")
        backend = _backend = JwksTokenBackend(issuer=config.ISSUER, audience=config.AUDIENCE, leeway=config.LEEWAY)
    return backend


@receiver(setting_changed)
def _forget_backend(*, setting: str, **kwargs: Any) -> None:
    global _backend
    if setting == "SIMPLE_JWT":
        _backend = None
