"""Service accounts' access tokens (OAuth 2.0 client credentials, SPEC §2c) at the gateway.

A client token is an RS256 access token of ours with `client_id` and `scope` and no session (`sid`) nor roles. It
is checked as strictly as a user's, by the same simplejwt token backend (pinned algorithm, `typ`, `kid` from the
JWKS, `iss`, `aud`; access_tokens.py), then its own claims (`exp`, `iat`, `client_id`, `scope`, `cep`) and
then, in one Redis round trip, against the client's liveness marker written by the auth service: disabling the
client or rotating its secret refuses its tokens at once. A route admits such a caller only if it names a scope
the token holds (`Route.scope`, checked by the permissions); every other route answers 403.

`authenticate_client_token` is called for every bearer token before the user path and answers None at once for
anything that is not a client token, so a user's token pays one small base64 and JSON decode here.
"""

from __future__ import annotations

import binascii
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
import orjson
from django_redis import get_redis_connection
from redis.exceptions import RedisError
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.exceptions import TokenBackendError

from common.contracts.errors import ServiceUnavailable
from common.contracts.oauth import client_key
from gateway.api.access_tokens import MAX_TOKEN_LENGTH, refusal_reason, token_backend

log = logging.getLogger(__name__)

REQUIRED_CLAIMS = ("iss", "aud", "sub", "client_id", "scope", "cep", "jti", "iat", "exp")
_REQUIRED = frozenset(REQUIRED_CLAIMS)
REFUSED = "Invalid or expired access token"


@dataclass(frozen=True)
class ClientCaller:
    """A service account calling with its token: no roles, no session; what it may call is its scopes."""

    client_id: str
    scopes: frozenset[str]
    epoch: int

    is_authenticated = True
    is_anonymous = False

    @property
    def pk(self) -> str:
        return self.client_id


def _is_client_token(token: str) -> bool:
    """Whether the (unverified) payload names a client: a cheap look, the verification follows."""
    parts = token.split(".")
    if len(parts) != 3 or len(token) > MAX_TOKEN_LENGTH:
        return False
    try:
        payload = orjson.loads(jwt.utils.base64url_decode(parts[1]))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        return False
    return isinstance(payload, dict) and "client_id" in payload and "sid" not in payload


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _verified_claims(token: str, *, now: float) -> dict[str, Any]:
    """The token's claims once signature, header and claims check out; AuthenticationFailed otherwise."""
    backend = token_backend()
    try:
        # simplejwt's backend of the SIMPLE_JWT settings, as for a user's token: pinned algorithm, `typ`, `kid`
        # from the JWKS, signature, `iss`, `aud`, `exp` (and its memo of verified tokens).
        claims = backend.decode(token)
        missing = _REQUIRED - claims.keys()
        if missing:
            raise jwt.InvalidTokenError(f"missing {', '.join(sorted(missing))}")
        _check_claims(claims, now=now, leeway=backend.leeway_seconds)
    except TokenBackendError as exc:
        log.info("client token refused", extra={"reason": refusal_reason(exc)})
        raise AuthenticationFailed(REFUSED, code="invalid_token") from None
    except jwt.InvalidTokenError as exc:
        log.info("client token refused", extra={"reason": str(exc) or type(exc).__name__})
        raise AuthenticationFailed(REFUSED, code="invalid_token") from None
    return claims


def _check_claims(claims: Mapping[str, Any], *, now: float, leeway: float) -> None:
    exp, iat, cep = _int(claims.get("exp")), _int(claims.get("iat")), _int(claims.get("cep"))
    if exp is None or exp <= now - leeway:
        raise jwt.InvalidTokenError("expired")
    if iat is None or iat > now + leeway:
        raise jwt.InvalidTokenError("issued in the future")
    if cep is None or not 0 <= cep < 2**53:
        raise jwt.InvalidTokenError("bad cep")
    client_id, scope = claims.get("client_id"), claims.get("scope")
    if not isinstance(client_id, str) or not client_id or len(client_id) > 128 or claims.get("sub") != client_id:
        raise jwt.InvalidTokenError("bad client_id")
    if not isinstance(scope, str) or len(scope) > 1024 or "sid" in claims or "roles" in claims:
        raise jwt.InvalidTokenError("bad scope")


def client_is_live(client_id: str, epoch: int) -> bool:
    """One GET: the client is enabled and its secret has not been rotated since the token was issued."""
    try:
        marker = get_redis_connection("default").get(client_key(client_id))
    except RedisError as exc:
        # Fail closed, as the session check does.
        log.error("session store unavailable", extra={"error": type(exc).__name__})
        raise ServiceUnavailable("Session store unavailable") from exc
    return marker is not None and marker.decode() == str(epoch)


def authenticate_client_token(token: str, *, now: float) -> tuple[ClientCaller, dict[str, Any]] | None:
    """The client calling with `token`; None when it is not a client token (the user path then checks it)."""
    if not _is_client_token(token):
        return None
    claims = _verified_claims(token, now=now)
    caller = ClientCaller(
        client_id=claims["client_id"], scopes=frozenset(claims["scope"].split()), epoch=int(claims["cep"])
    )
    if not client_is_live(caller.client_id, caller.epoch):
        log.info("client token refused", extra={"reason": "client disabled or rotated", "client_id": caller.client_id})
        raise AuthenticationFailed(REFUSED, code="invalid_token")
    return caller, claims


def client_admitted(request: Any, view: Any) -> bool:
    """The caller is a client whose token holds the scope the requested route names."""
    caller = getattr(request, "user", None)
    if not isinstance(caller, ClientCaller):
        return False
    route_for = getattr(view, "route_for", None)
    route = route_for(request.method or "") if route_for is not None else None
    scope = getattr(route, "scope", None)
    return scope is not None and scope in caller.scopes
