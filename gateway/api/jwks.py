"""Process-wide cache of the auth service's public signing keys (JWKS), fetched over NATS."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from nats.aio.msg import Msg

from common.contracts import subjects
from common.contracts.errors import ServiceError, ServiceUnavailable
from common.messaging.codec import loads
from common.per_process import PerProcess
from gateway.api.ops import BROADCAST_HANDLERS, ensure_log_level_listener

log = logging.getLogger(__name__)

Fetch = Callable[[], Mapping[str, Any]]

# Only these members are republished by the proxy: a private member (d, p, q, ...) sent by mistake never leaves.
PUBLIC_MEMBERS = ("kty", "kid", "use", "alg", "n", "e")
MIN_RSA_BITS = 2048


class KeySetUnavailable(ServiceUnavailable):
    """No key set has ever been fetched and the auth service does not answer: tokens cannot be checked."""

    code = "jwks_unavailable"
    default_message = "Signing keys are unavailable"


@dataclass(frozen=True)
class KeySet:
    """One fetched key set: parsed keys by kid, the public document, and when it was fetched."""

    keys: Mapping[str, RSAPublicKey]
    document: dict[str, Any]
    fetched_at: float


def parse_key_set(document: Mapping[str, Any]) -> tuple[dict[str, RSAPublicKey], dict[str, Any]]:
    """Parse the RS256 signing keys of a JWKS document; keys of any other kind are skipped with a warning."""
    raw_keys = document.get("keys")
    if not isinstance(raw_keys, list):
        raise ValueError("JWKS document has no 'keys' list")
    keys: dict[str, RSAPublicKey] = {}
    public: list[dict[str, Any]] = []
    for jwk in raw_keys:
        kid = jwk.get("kid") if isinstance(jwk, dict) else None
        if not isinstance(kid, str) or not kid:
            log.warning("jwks: skipping a key without kid")
            continue
        key = _rsa_signing_key(jwk)
        if key is None:
            continue
        keys[kid] = key
        public.append({name: jwk[name] for name in PUBLIC_MEMBERS if name in jwk})
    return keys, {"keys": public}


def _rsa_signing_key(jwk: dict[str, Any]) -> RSAPublicKey | None:
    kid = jwk.get("kid")
    if jwk.get("kty") != "RSA" or jwk.get("use", "sig") != "sig" or jwk.get("alg", "RS256") != "RS256":
        log.warning("jwks: skipping a key that is not an RS256 signing key", extra={"kid": kid})
        return None
    try:
        key = jwt.PyJWK(jwk, algorithm="RS256").key
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
        log.warning("jwks: skipping an unparseable key", extra={"kid": kid})
        return None
    if isinstance(key, RSAPrivateKey):
        key = key.public_key()
    if not isinstance(key, RSAPublicKey) or key.key_size < MIN_RSA_BITS:
        log.warning("jwks: skipping a weak or non-RSA key", extra={"kid": kid})
        return None
    return key


_REVOKED_MAX = 1024


def _without(key_set: KeySet, revoked: set[str]) -> KeySet:
    if not revoked.intersection(key_set.keys):
        return key_set
    keys = {kid: key for kid, key in key_set.keys.items() if kid not in revoked}
    document = {"keys": [jwk for jwk in key_set.document["keys"] if jwk.get("kid") not in revoked]}
    return KeySet(keys=keys, document=document, fetched_at=key_set.fetched_at)


@dataclass
class JwksCache:
    """The whole key set, cached for `ttl` seconds, with single-flight refetches.

    At most one fetch runs at a time and at most one starts per `refetch_interval` seconds (a forged kid cannot
    make the gateway hammer the auth service); callers that arrive during a fetch wait for it and use its
    result. A failed fetch keeps the last good set, so an auth-service outage does not log everybody out.
    """

    fetch: Fetch
    ttl: float = 300.0
    refetch_interval: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _current: KeySet | None = field(default=None, init=False, repr=False)
    _last_attempt: float | None = field(default=None, init=False, repr=False)
    _attempts: int = field(default=0, init=False, repr=False)
    # Kids revoked by broadcast (manage_auth.py revoke_key): never used again by this process, even if a refetch
    # that raced the revocation still lists them.
    _revoked: set[str] = field(default_factory=set, init=False, repr=False)

    def key(self, kid: str) -> RSAPublicKey | None:
        """The public key for `kid`, refetching once when it is unknown; None if the auth service does not know it."""
        if kid in self._revoked:
            return None
        attempts = self._attempts
        current = self._current
        if current is None or self._is_stale(current) or kid not in current.keys:
            current = self._refresh(seen_attempts=attempts)
        if current is None:
            raise KeySetUnavailable()
        return current.keys.get(kid)

    def document(self) -> dict[str, Any]:
        """The public JWKS document (for the /.well-known/jwks.json proxy)."""
        attempts = self._attempts
        current = self._current
        if current is None or self._is_stale(current):
            current = self._refresh(seen_attempts=attempts)
        if current is None:
            raise KeySetUnavailable()
        return current.document

    def current_document(self) -> dict[str, Any] | None:
        """The cached document while it is fresh, without fetching or logging anything (None otherwise)."""
        current = self._current
        if current is None or self._is_stale(current):
            return None
        return current.document

    def revoke(self, kid: str) -> bool:
        """Drop `kid` now and for good; True if it was cached. Lock-free: called from the NATS client's event loop,
        which a fetch holding the lock may be waiting on."""
        if len(self._revoked) >= _REVOKED_MAX:
            self._revoked.clear()
        self._revoked.add(kid)
        current = self._current
        if current is None or kid not in current.keys:
            return False
        self._current = _without(current, self._revoked)
        return True

    def _is_stale(self, current: KeySet) -> bool:
        return self.clock() - current.fetched_at >= self.ttl

    def _may_attempt(self) -> bool:
        if self._last_attempt is None:
            return True
        # With nothing cached every request fails anyway, so retry sooner than the forged-kid limit.
        interval = self.refetch_interval if self._current is not None else min(1.0, self.refetch_interval)
        return self.clock() - self._last_attempt >= interval

    def _refresh(self, *, seen_attempts: int) -> KeySet | None:
        # Fast refusal (no lock) for forged kids between refetches; but while a fetch is in flight, wait for it.
        if self._current is not None and not self._may_attempt() and not self._lock.locked():
            return self._current
        with self._lock:
            # Someone else fetched (or failed to) while we waited for the lock: use that result, do not fetch again.
            if self._attempts != seen_attempts or not self._may_attempt():
                return self._current
            self._attempts += 1
            self._last_attempt = self.clock()
            try:
                keys, document = parse_key_set(self.fetch())
            except (ServiceError, ValueError, TypeError, AttributeError) as exc:
                log.warning("jwks: fetch failed, keeping the last good key set", extra={"error": str(exc)[:200]})
                return self._current
            if not keys:
                log.warning("jwks: the auth service published no usable key, keeping the last good key set")
                return self._current
            self._current = _without(KeySet(keys=keys, document=document, fetched_at=self.clock()), self._revoked)
            return self._current


def fetch_over_nats() -> Mapping[str, Any]:
    """Ask the auth service for its key set (short timeout: a caller may be waiting on this)."""
    from django.conf import settings

    from common.messaging.client import get_client

    # A process that holds keys listens to their revocation (and to the log-level broadcast) from then on.
    ensure_log_level_listener()
    reply = get_client().request(subjects.AUTH_JWKS, None, timeout=settings.JWKS_FETCH_TIMEOUT_SECONDS)
    if not isinstance(reply, dict):
        raise ValueError("JWKS reply is not an object")
    return reply


def _new_cache() -> JwksCache:
    from django.conf import settings

    return JwksCache(
        fetch=fetch_over_nats,
        ttl=float(settings.JWKS_CACHE_SECONDS),
        refetch_interval=float(settings.JWKS_REFETCH_INTERVAL_SECONDS),
    )


_cache: PerProcess[JwksCache] = PerProcess(_new_cache)


def get_jwks() -> JwksCache:
    """The process-wide cache; a forked worker starts its own (a lock held at fork time would never be released)."""
    return _cache.get()


def reset_jwks() -> None:
    """Forget the cached key set (tests, or after pointing the gateway at another auth service)."""
    _cache.reset()


async def _on_key_revoked(msg: Msg) -> None:
    """`revoke_key` on the auth service: drop the key now, and keep refusing it."""
    try:
        body = loads(msg.data)
    except ValueError:
        body = None
    data = body.get("data") if isinstance(body, dict) else None
    kid = data.get("kid") if isinstance(data, dict) else None
    if not isinstance(kid, str) or not kid or len(kid) > 128:
        log.warning("malformed signing key revocation ignored")
        return
    dropped = get_jwks().revoke(kid)
    log.warning("signing key revoked by broadcast", extra={"kid": kid, "was_cached": dropped})


BROADCAST_HANDLERS[subjects.JWKS_KEY_REVOKED] = _on_key_revoked
