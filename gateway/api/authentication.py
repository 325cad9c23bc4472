"""Bearer access tokens: RS256 checked locally against the JWKS, then one Redis round trip that the session is live,
is the token subject's, and is of the user's current credential epoch."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from django.conf import settings
from django.http import HttpRequest
from redis import Redis
from redis.commands.core import Script
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from rest_framework import HTTP_HEADER_ENCODING
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request

from common.conf.context import user_id_var
from common.contracts.errors import ServiceUnavailable
from common.contracts.events import ROLES
from common.contracts.sessions import session_key, user_epoch_key
from gateway.api.client_tokens import ClientCaller, authenticate_client_token
from gateway.api.cookies import ACCESS_COOKIE
from gateway.api.csrf import CsrfProtected, request_passes_csrf
from gateway.api.jwks import get_jwks

log = logging.getLogger(__name__)

ALGORITHM = "RS256"
# RFC 9068 names the type "at+jwt"; media types are case-insensitive and may carry the "application/" prefix.
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
REQUIRED_CLAIMS = ("iss", "aud", "sub", "sid", "roles", "jti", "iat", "exp")
# A token is a few hundred bytes; refusing huge headers early keeps parsing cost bounded.
MAX_TOKEN_LENGTH = 8192
REFUSED = "Invalid or expired access token"
BEARER_CHALLENGE = 'Bearer realm="api"'

KeyLookup = Callable[[str], RSAPublicKey | None]
# The gateway's clock for exp/iat; a module attribute so tests can move time instead of waiting for it.
clock: Callable[[], float] = time.time


class InvalidAccessToken(Exception):
    """The token is not one of ours, or no longer valid; the reason is for logs only, never for the client."""


@dataclass(frozen=True)
class GatewayUser:
    """Who the access token says is calling: enough to authorise coarsely and to build the NATS agent."""

    id: str
    roles: tuple[str, ...]
    sid: str
    epoch: int = 0  # the user's credential epoch when the token was issued (`ep`; absent in older tokens: 0)

    is_authenticated = True
    is_anonymous = False

    @property
    def pk(self) -> str:
        return self.id


def decode_access_token(
    token: str,
    *,
    key_for: KeyLookup,
    issuer: str,
    audience: str,
    now: float,
    leeway: float = 0,
) -> dict[str, Any]:
    """Verify an access token at time `now` and return its claims, or raise InvalidAccessToken."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidAccessToken("empty or oversized token")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise InvalidAccessToken("malformed header") from exc
    # Checked before any key is looked up: "none", HS256-with-the-public-key and friends stop here.
    if header.get("alg") != ALGORITHM:
        raise InvalidAccessToken("algorithm not allowed")
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
        raise InvalidAccessToken("not an access token")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidAccessToken("no kid")
    key = key_for(kid)
    if key is None:
        raise InvalidAccessToken("unknown kid")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            # exp and iat are checked below against `now` (PyJWT reads the wall clock itself).
            options={"require": list(REQUIRED_CLAIMS), "verify_exp": False, "verify_iat": False},
        )
    except jwt.InvalidTokenError as exc:
        raise InvalidAccessToken(type(exc).__name__) from exc
    _check_claims(claims, now=now, leeway=leeway)
    return claims


# Verified tokens, so a client's repeated requests pay for the RS256 signature check once. What is remembered
# is bound to the exact key object, issuer and audience it was verified with (a refetched or withdrawn key, or
# other settings, mean a full check again); exp/iat are checked against the clock and the session's liveness is
# looked up on every request. Bounded; cleared whole when full.
_VERIFIED_MAX = 4096
_verified: dict[str, tuple[RSAPublicKey, str, str, str, dict[str, Any]]] = {}


def verify_access_token(
    token: str,
    *,
    key_for: KeyLookup,
    issuer: str,
    audience: str,
    now: float,
    leeway: float = 0,
) -> dict[str, Any]:
    """`decode_access_token`, remembering tokens whose signature was already verified."""
    hit = _verified.get(token)
    if hit is not None:
        key, kid, hit_issuer, hit_audience, claims = hit
        if key_for(kid) is key and hit_issuer == issuer and hit_audience == audience:
            _check_claims(claims, now=now, leeway=leeway)
            return claims
        _verified.pop(token, None)
    claims = decode_access_token(token, key_for=key_for, issuer=issuer, audience=audience, now=now, leeway=leeway)
    verified_kid = str(jwt.get_unverified_header(token)["kid"])
    verified_key = key_for(verified_kid)
    if verified_key is not None:
        if len(_verified) >= _VERIFIED_MAX:
            _verified.clear()
        _verified[token] = (verified_key, verified_kid, issuer, audience, claims)
    return claims


def _timestamp(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _check_claims(claims: Mapping[str, Any], *, now: float, leeway: float) -> None:
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


def user_from_claims(claims: Mapping[str, Any]) -> GatewayUser:
    # Role names the gateway does not know grant nothing here; they are dropped rather than trusted.
    roles = tuple(role for role in claims["roles"] if role in ROLES)
    return GatewayUser(id=claims["sub"], roles=roles, sid=claims["sid"], epoch=claims.get("ep", 0))


# Whether an access token's session is live, in one round trip: the session exists, belongs to the token's
# subject (a token naming one user and another user's live session is refused), carries the user's current
# credential epoch, and accepts tokens of the token's epoch. KEYS: the session, the subject's epoch. ARGV: the
# subject, the token's epoch. Answers "live" or why not (for the logs).
_LIVENESS = """
local s = redis.call('HMGET', KEYS[1], 'uid', 'ep', 'tmin')
if not s[1] then return 'session ended' end
if s[1] ~= ARGV[1] then return 'session of another user' end
if tonumber(s[2] or '0') ~= tonumber(redis.call('GET', KEYS[2]) or '0') then return 'credentials changed' end
if tonumber(ARGV[2]) < tonumber(s[3] or '0') then return 'token of an older epoch' end
return 'live'
"""
LIVE = "live"


def session_liveness(user: GatewayUser) -> str:
    """One EVALSHA: ending a session (logout, deny-access, reset...) or a credential change (a role change ends the
    tokens issued before it) invalidates the access token at once. "live", or the reason it is not."""
    keys = [session_key(user.sid), user_epoch_key(user.id)]
    args: list[str | int] = [user.id, user.epoch]
    try:
        store, liveness = _session_store()
        try:
            reply = liveness(keys=keys, args=args, client=store)
        except RedisConnectionError:
            # A connection the server closed (a restart, an idle timeout) fails once, and is replaced: the same
            # one reconnect the pool makes when it finds a lent connection closed.
            reply = liveness(keys=keys, args=args, client=store)
    except RedisError as exc:
        # Fail closed: without the session store a revoked token could not be told from a live one.
        log.error("session store unavailable", extra={"error": type(exc).__name__})
        raise ServiceUnavailable("Session store unavailable") from exc
    return reply.decode() if isinstance(reply, bytes) else str(reply)


_store = threading.local()


def _session_store() -> tuple[Redis, Script]:
    """This thread's client for the liveness check: one connection of the shared pool, kept for the thread.

    Every authenticated request makes this call. Through the pool, each one also pays the pool's check that a
    borrowed connection has no unread data and is still open (a non-blocking read and two mode switches, each
    a system call that hands the GIL to the process's other threads). A connection only this thread uses, only
    for this command, cannot hold unread data (a failed or timed-out command disconnects it), and one the
    server closed is replaced by session_liveness. Rebuilt for another pool (settings changed) and after a
    fork, as the pool itself is.
    """
    from django_redis import get_redis_connection

    pool = get_redis_connection("default").connection_pool
    pid = os.getpid()
    client: Redis | None = getattr(_store, "client", None)
    if client is None or _store.pool is not pool or _store.pid != pid:
        client = Redis(connection_pool=pool, single_connection_client=True)
        _store.client, _store.pool, _store.pid = client, pool, pid
        _store.liveness = client.register_script(_LIVENESS)
    return client, _store.liveness


def authorization_header(request: HttpRequest | Request) -> bytes:
    """The Authorization header as bytes, as DRF's get_authorization_header gives it, read from META directly:
    its `request.headers` re-spells the name of every header the request has, once per request, for one."""
    header = request.META.get("HTTP_AUTHORIZATION", b"")
    if isinstance(header, str):
        header = header.encode(HTTP_HEADER_ENCODING)  # the test client's str
    return header  # type: ignore[no-any-return]


def authenticate_request(request: HttpRequest) -> tuple[GatewayUser | ClientCaller, dict[str, Any]] | None:
    """`Authorization: Bearer <access token>`; no header means anonymous, a bad token means 401.

    Without any Authorization header, the browsable API's `access` cookie (BROWSABLE_API) is read instead and
    passes exactly the same checks; a cookie-authenticated unsafe request must also pass the CSRF check, here.
    Takes a Django request or DRF's wrapper of one: the DRF views and the lean routes (fastlane.py) both call it.
    """
    header = authorization_header(request)
    if not header:
        return _authenticate_cookie(request) if settings.BROWSABLE_API else None
    parts = header.split()
    if not parts or parts[0].lower() != b"bearer":
        return None
    if len(parts) != 2:
        raise AuthenticationFailed(REFUSED, code="invalid_token")
    try:
        token = parts[1].decode("ascii")
    except UnicodeDecodeError:
        log.info("access token refused", extra={"reason": "not ascii"})
        raise AuthenticationFailed(REFUSED, code="invalid_token") from None
    # A service account's token (client credentials, no session) has a path of its own.
    return authenticate_client_token(token, now=clock()) or _authenticate_token(token)


def _authenticate_token(token: str) -> tuple[GatewayUser, dict[str, Any]]:
    try:
        claims = verify_access_token(
            token,
            key_for=get_jwks().key,
            issuer=settings.JWT_ISSUER,
            audience=settings.JWT_AUDIENCE,
            now=clock(),
            leeway=settings.JWT_LEEWAY_SECONDS,
        )
    except InvalidAccessToken as exc:
        log.info("access token refused", extra={"reason": str(exc)})
        raise AuthenticationFailed(REFUSED, code="invalid_token") from None
    user = user_from_claims(claims)
    liveness = session_liveness(user)
    if liveness != LIVE:
        log.info("access token refused", extra={"reason": liveness, "user_id": user.id})
        raise AuthenticationFailed(REFUSED, code="invalid_token")
    user_id_var.set(user.id)
    return user, claims


def _authenticate_cookie(request: HttpRequest) -> tuple[GatewayUser, dict[str, Any]] | None:
    token = request.COOKIES.get(ACCESS_COOKIE)
    if not token:
        return None
    # A refused or revoked token in the cookie is a 401, as in a header (never a quiet fall back to anonymous).
    authenticated = _authenticate_token(token)
    # A browser attaches the cookie to whatever it sends, so an unsafe request must also prove it comes from
    # our own page (double submit): enforced here for every view, not only for those listing CsrfProtected.
    if request.method not in SAFE_METHODS and not request_passes_csrf(request, sid=authenticated[0].sid):
        raise PermissionDenied(CsrfProtected.message, code=CsrfProtected.code)
    return authenticated


class AccessTokenAuthentication(BaseAuthentication):
    """DRF's face of `authenticate_request`."""

    def authenticate(self, request: Request) -> tuple[GatewayUser | ClientCaller, dict[str, Any]] | None:
        return authenticate_request(request)  # type: ignore[arg-type]  # a Request proxies its HttpRequest

    def authenticate_header(self, request: Request | None) -> str:
        return BEARER_CHALLENGE
