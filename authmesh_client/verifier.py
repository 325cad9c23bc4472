"""Verification of authmesh access tokens: RS256 only, keys from the discovered JWKS, `iss`/`aud`/`typ`/`exp` checked."""

from __future__ import annotations

import logging
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from authmesh_client._http import HttpError, get_json
from authmesh_client.discovery import Clock, Discovery, DiscoveryError, Fetcher

log = logging.getLogger(__name__)

ALGORITHM = "RS256"
# RFC 9068 §2.1: "at+jwt", or the full media type.
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
MIN_RSA_BITS = 2048
_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.MissingRequiredClaimError, "a required claim is missing"),
)


class InvalidToken(Exception):
    """Not a valid access token for this audience: forged, tampered, expired, another issuer or audience. The
    message says why (for logs; answer callers with a plain 401)."""


class KeysUnavailable(Exception):
    """No key set could be fetched yet: tokens cannot be checked (a 503, not a 401)."""


class TokenVerifier(Fetcher):
    """Verifies access tokens issued by the authmesh found at `discovery_url`, for `audience`.

    The whole key set is cached for `ttl` seconds; a token signed by a key not in it (a rotation) makes one refetch,
    at most every `refetch_interval` seconds whatever the tokens presented, so forged `kid`s cannot flood the
    issuer. If a refetch fails the last good set is kept. `issuer` pins the expected `iss` (by default the
    document's `issuer`). Thread-safe; make one per process and keep it.
    """

    def __init__(
        self,
        discovery_url: str,
        audience: str,
        *,
        issuer: str | None = None,
        leeway: float = 5.0,
        ttl: float = 300.0,
        refetch_interval: float = 30.0,
        timeout: float = 5.0,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(timeout=timeout, clock=clock)
        self.discovery = Discovery(discovery_url, timeout=timeout, clock=clock)
        self.audience = audience
        self._issuer = issuer
        self.leeway = leeway
        self.ttl = ttl
        self.refetch_interval = refetch_interval
        self._keys: dict[str, RSAPublicKey] | None = None
        self._fetched_at = 0.0

    @property
    def issuer(self) -> str:
        try:
            return self._issuer or self.discovery.get("issuer")
        except DiscoveryError as exc:
            raise KeysUnavailable(str(exc)) from exc

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims once every check passed; InvalidToken otherwise, KeysUnavailable if no keys."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"malformed token: {exc}") from exc
        if header.get("alg") != ALGORITHM:
            raise InvalidToken(f"algorithm {header.get('alg')!r} is not {ALGORITHM}")
        if str(header.get("typ", "")).lower() not in ACCESS_TOKEN_TYPES:
            raise InvalidToken("not an access token (typ)")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("no kid")
        key = self.key(kid)
        if key is None:
            raise InvalidToken("signed by an unknown key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["iss", "aud", "sub", "exp", "iat"]},
            )
        except jwt.PyJWTError as exc:
            reason = next((text for kind, text in _REASONS if isinstance(exc, kind)), f"invalid: {exc}")
            raise InvalidToken(reason) from exc
        return claims

    def key(self, kid: str) -> RSAPublicKey | None:
        """The public key `kid`, refetching the set when stale, or once per interval when `kid` is unknown."""
        keys, age = self._keys, self._clock() - self._fetched_at
        if keys is not None and age < self.ttl and kid in keys:
            return keys[kid]
        with self._lock:
            keys, age = self._keys, self._clock() - self._fetched_at
            if keys is None or age >= self.ttl or (kid not in keys and age >= self.refetch_interval):
                keys = self._refetch()
        return keys.get(kid)

    def _refetch(self) -> dict[str, RSAPublicKey]:
        """Under the lock: fetch the set; keep the last good one if that fails."""
        try:
            document = get_json(self.discovery.get("jwks_uri"), timeout=self.timeout)
            keys = parse_key_set(document)
        except (HttpError, DiscoveryError, ValueError) as exc:
            self._fetched_at = self._clock()  # the next try waits an interval too
            if self._keys is None:
                raise KeysUnavailable(f"authmesh signing keys unavailable: {exc}") from exc
            log.warning("authmesh JWKS refetch failed; keeping the last key set", extra={"error": str(exc)})
            return self._keys
        self._keys, self._fetched_at = keys, self._clock()
        return keys


def parse_key_set(document: Any) -> dict[str, RSAPublicKey]:
    """The RS256 signing keys of a JWKS document by kid; any other key is left out."""
    raw = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(raw, list):
        raise ValueError("not a JWKS document (no keys list)")
    keys: dict[str, RSAPublicKey] = {}
    for jwk in raw:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
            continue
        if jwk.get("kty") != "RSA" or jwk.get("use", "sig") != "sig" or jwk.get("alg", ALGORITHM) != ALGORITHM:
            continue
        try:
            key = jwt.PyJWK(jwk, algorithm=ALGORITHM).key
        except (jwt.PyJWTError, ValueError, TypeError):
            continue
        if isinstance(key, RSAPrivateKey):
            key = key.public_key()
        if isinstance(key, RSAPublicKey) and key.key_size >= MIN_RSA_BITS:
            keys[jwk["kid"]] = key
    return keys
