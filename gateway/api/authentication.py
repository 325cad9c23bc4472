"""Bearer access tokens: simplejwt's stateless authentication with RS256 checked locally against the JWKS
(access_tokens.py), then one Redis round trip that the session is live, is the token subject's, and is of the
user's current credential epoch."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from redis import Redis
from redis.commands.core import Script
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from rest_framework import HTTP_HEADER_ENCODING
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework_simplejwt import settings as simple_jwt
from rest_framework_simplejwt.authentication import JWTStatelessUserAuthentication
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import Token

from common.conf.context import user_id_var
from common.contracts.errors import ServiceUnavailable
from common.contracts.events import ROLES
from common.contracts.sessions import session_key, user_epoch_key
from gateway.api import access_tokens
from gateway.api.access_tokens import AccessToken, refusal_reason
from gateway.api.client_tokens import ClientCaller, authenticate_client_token
from gateway.api.cookies import ACCESS_COOKIE
from gateway.api.csrf import CsrfProtected, request_passes_csrf

log = logging.getLogger(__name__)

REFUSED = "Invalid or expired access token"


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
    """The Authorization header as bytes (b"" without one), read from META directly: DRF's `request.headers`
    re-spells the name of every header the request has, once per request, for one."""
    header = request.META.get("HTTP_AUTHORIZATION", b"")
    if isinstance(header, str):
        header = header.encode(HTTP_HEADER_ENCODING)  # the test client's str
    return header  # type: ignore[no-any-return]


def is_bearer(header: bytes) -> bool:
    """Whether an Authorization header names the Bearer scheme (case-insensitive, as RFC 9110 has it)."""
    parts = header.split(None, 1)
    return bool(parts) and parts[0].lower() == b"bearer"


def _text(raw_token: bytes) -> str:
    try:
        return raw_token.decode("ascii")
    except UnicodeDecodeError:
        log.info("access token refused", extra={"reason": "not ascii"})
        raise AuthenticationFailed(REFUSED, code="invalid_token") from None


class AccessTokenAuthentication(JWTStatelessUserAuthentication):
    """simplejwt's stateless authentication: `Authorization: Bearer <access token>` verified by the AUTH_TOKEN_CLASSES
    of SIMPLE_JWT (gateway/api/access_tokens.py), then one Redis round trip that the session is live.

    No header means anonymous; a bad token, or one of an ended session, means 401 with one message whatever the
    reason (logged). Without any Authorization header, the browsable API's `access` cookie (BROWSABLE_API) is read
    instead and passes exactly the same checks; a cookie-authenticated unsafe request must also pass the CSRF check,
    here. Takes a Django request or DRF's wrapper of one: the DRF views and the lean routes (fastlane.py) both call it.
    """

    www_authenticate_realm = "api"

    def __init__(self) -> None:
        # Not JWTAuthentication's: it looks up the user model, and the gateway has no user table (stateless user).
        pass

    def authenticate(  # type: ignore[override]
        self, request: Request | HttpRequest
    ) -> tuple[GatewayUser, AccessToken] | tuple[ClientCaller, dict[str, Any]] | None:
        header = self.get_header(request)
        if not header:
            return self._authenticate_cookie(request) if settings.BROWSABLE_API else None
        raw_token = self.get_raw_token(header)
        if raw_token is None:
            return None
        # A service account's token (client credentials, no session) has a path of its own (client_tokens.py).
        client = authenticate_client_token(_text(raw_token), now=access_tokens.clock())
        return client or self._authenticate_token(raw_token)

    def get_header(self, request: Request | HttpRequest) -> bytes:  # type: ignore[override]
        return authorization_header(request)

    def get_raw_token(self, header: bytes) -> bytes | None:
        if not is_bearer(header):
            return None
        parts = header.split()
        if len(parts) != 2:
            raise AuthenticationFailed(REFUSED, code="invalid_token")
        return parts[1]

    def get_validated_token(self, raw_token: bytes) -> AccessToken:  # type: ignore[override]
        token = _text(raw_token)
        reasons = []
        for token_class in simple_jwt.api_settings.AUTH_TOKEN_CLASSES:
            try:
                return token_class(token)  # type: ignore[no-any-return]
            except TokenError as exc:
                reasons.append(refusal_reason(exc))
        log.info("access token refused", extra={"reason": "; ".join(reasons)})
        raise AuthenticationFailed(REFUSED, code="invalid_token")

    def get_user(self, validated_token: Token) -> GatewayUser:  # type: ignore[override]
        return user_from_claims(validated_token.payload)

    def _authenticate_token(self, raw_token: bytes) -> tuple[GatewayUser, AccessToken]:
        token = self.get_validated_token(raw_token)
        user = self.get_user(token)
        liveness = session_liveness(user)
        if liveness != LIVE:
            log.info("access token refused", extra={"reason": liveness, "user_id": user.id})
            raise AuthenticationFailed(REFUSED, code="invalid_token")
        user_id_var.set(user.id)
        return user, token

    def _authenticate_cookie(self, request: Request | HttpRequest) -> tuple[GatewayUser, AccessToken] | None:
        token = request.COOKIES.get(ACCESS_COOKIE)
        if not token:
            return None
        # A refused or revoked token in the cookie is a 401, as in a header (never a quiet fall back to anonymous).
        authenticated = self._authenticate_token(token.encode())
        # A browser attaches the cookie to whatever it sends, so an unsafe request must also prove it comes from
        # our own page (double submit): enforced here for every view, not only for those listing CsrfProtected.
        if request.method not in SAFE_METHODS and not request_passes_csrf(request, sid=authenticated[0].sid):  # type: ignore[arg-type]
            raise PermissionDenied(CsrfProtected.message, code=CsrfProtected.code)
        return authenticated
