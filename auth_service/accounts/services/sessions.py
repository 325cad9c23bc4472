"""Refresh sessions: opening one, rotating its refresh token, logout, ending sessions."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.conf import settings

from auth_service.accounts import selectors
from auth_service.accounts.crypto import new_token, token_digest
from auth_service.accounts.models import User
from auth_service.accounts.policies import ACTION_DEACTIVATE, sorted_roles
from auth_service.accounts.services._common import FAILURE, Kind, agent_load, authorize
from auth_service.accounts.services.signing_keys import signing_key_for_signing
from auth_service.accounts.sessions import (
    Rotation,
    session_store_create,
    session_store_delete,
    session_store_delete_all,
    session_store_get,
    session_store_rotate,
)
from auth_service.accounts.tokens import (
    InvalidRefreshToken,
    RefreshClaims,
    access_token_encode,
    refresh_token_decode,
    refresh_token_encode,
)
from auth_service.audit.services import failure_recorded, security_event_record
from common.contracts.errors import NotFound, Unauthorized

log = logging.getLogger(__name__)

INVALID_REFRESH = "Invalid or expired refresh token"

MAX_REFRESH_GRACE_SECONDS = 30


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    refresh_expires_at: int
    session_id: str


def session_open(*, user: User, ip: str | None, user_agent: str | None) -> TokenPair:
    now = int(time.time())
    expires_at = now + int(settings.REFRESH_TOKEN_TTL_SECONDS)
    check = new_token()
    sid = session_store_create(
        user_id=str(user.id),
        check_digest=token_digest(check),
        expires_at=expires_at,
        device=user_agent or "",
        ip=ip or "",
    )
    return token_pair(user=user, sid=sid, check=check, expires_at=expires_at, now=now)


def token_pair(*, user: User | selectors.TokenSubject, sid: str, check: str, expires_at: int, now: int) -> TokenPair:
    kid, key = signing_key_for_signing()
    user_id = str(user.id)
    access = access_token_encode(kid=kid, key=key, user_id=user_id, sid=sid, roles=sorted_roles(user.roles), now=now)
    refresh = refresh_token_encode(user_id=user_id, sid=sid, check=check, expires_at=expires_at, now=now)
    return TokenPair(access_token=access, refresh_token=refresh, refresh_expires_at=expires_at, session_id=sid)


def _refresh_claims(refresh_token: str, *, kind: str) -> RefreshClaims:
    try:
        return refresh_token_decode(refresh_token)
    except InvalidRefreshToken:
        security_event_record(kind=kind, outcome=FAILURE, reason="invalid_token")
        raise Unauthorized(INVALID_REFRESH) from None


def _refresh_refused(kind: str, claims: RefreshClaims, *, user_id: str, reason: str) -> Unauthorized:
    security_event_record(kind=kind, outcome=FAILURE, user_id=user_id, reason=reason, detail={"sid": claims.sid})
    return Unauthorized(INVALID_REFRESH)


def _consume_refresh(claims: RefreshClaims, *, new_digest: str, ip: str | None, kind: str) -> tuple[str, int]:
    """Rotate the session's check; on reuse of an older token end the whole family. Returns (user id, family exp)."""
    grace = min(float(settings.REFRESH_REUSE_GRACE_SECONDS), MAX_REFRESH_GRACE_SECONDS)
    result = session_store_rotate(
        sid=claims.sid, presented_digest=token_digest(claims.check), new_digest=new_digest, grace_seconds=grace, ip=ip
    )
    if result.outcome is Rotation.REUSED:
        session_store_delete(user_id=result.user_id, sid=claims.sid)
        log.warning("refresh token reuse detected", extra={"sid": claims.sid, "target_user_id": result.user_id})
        raise _refresh_refused(Kind.REFRESH_REUSE, claims, user_id=result.user_id, reason=kind)
    if result.outcome is Rotation.MISSING:
        raise _refresh_refused(kind, claims, user_id=claims.user_id, reason="session_ended")
    if result.user_id != claims.user_id:
        # Only possible with a forged token (leaked secret): end the session rather than trust either side.
        session_store_delete(user_id=result.user_id, sid=claims.sid)
        log.warning("refresh token subject does not match its session", extra={"sid": claims.sid})
        raise _refresh_refused(kind, claims, user_id=result.user_id, reason="subject_mismatch")
    return result.user_id, result.expires_at


def session_rotate(*, refresh_token: str, ip: str | None, user_agent: str | None) -> TokenPair:
    """Exchange a refresh token for a new pair in the same family (same absolute expiry); reuse ends the family."""
    claims = _refresh_claims(refresh_token, kind=Kind.REFRESH)
    check = new_token()
    user_id, expires_at = _consume_refresh(claims, new_digest=token_digest(check), ip=ip, kind=Kind.REFRESH)
    user = selectors.token_subject_get(user_id)
    # Verification gates a new login only: a user who changed their e-mail keeps their sessions meanwhile.
    if user is None or not user.is_active:
        session_store_delete(user_id=user_id, sid=claims.sid)
        raise _refresh_refused(Kind.REFRESH, claims, user_id=user_id, reason="inactive")
    pair = token_pair(user=user, sid=claims.sid, check=check, expires_at=expires_at, now=int(time.time()))
    security_event_record(kind=Kind.REFRESH, user_id=user.id, detail={"sid": claims.sid})
    return pair


def session_logout(*, refresh_token: str, all_sessions: bool) -> None:
    """End the token's session, or every session of its user; a reused token still ends its family, with a 401."""
    claims = _refresh_claims(refresh_token, kind=Kind.LOGOUT)
    # Consuming the token (a rotation nobody receives) applies the same current/grace/reuse rules as a refresh.
    user_id, _ = _consume_refresh(claims, new_digest=token_digest(new_token()), ip=None, kind=Kind.LOGOUT)
    if all_sessions:
        session_store_delete_all(user_id)
    else:
        session_store_delete(user_id=user_id, sid=claims.sid)
    security_event_record(kind=Kind.LOGOUT, user_id=user_id, detail={"sid": claims.sid, "all": all_sessions})


def session_end(*, user_id: str, sid: str) -> None:
    """End one of the caller's own sessions (another user's sid is indistinguishable from an unknown one)."""
    detail = {"sid": sid[:128]}
    with failure_recorded(Kind.SESSION_ENDED, user_id=user_id, actor_id=user_id, detail=detail):
        info = session_store_get(sid)
        if info is None or info.user_id != user_id:
            raise NotFound("Session not found")
        session_store_delete(user_id=user_id, sid=sid)
    security_event_record(kind=Kind.SESSION_ENDED, user_id=user_id, actor_id=user_id, detail=detail)


def session_end_all(*, user_id: str, agent_id: str | None = None) -> int:
    """End every session of a user; an agent (admin console) needs the matrix's leave to deactivate that user."""
    with failure_recorded(Kind.SESSION_ENDED, user_id=user_id, actor_id=agent_id, detail={"all": True}):
        if agent_id is not None:
            authorize(
                agent=agent_load(agent_id),
                target_id=user_id,
                target=selectors.user_get(user_id),
                change={ACTION_DEACTIVATE},
            )
        ended = session_store_delete_all(user_id)
    security_event_record(
        kind=Kind.SESSION_ENDED, user_id=user_id, actor_id=agent_id, detail={"all": True, "ended": ended}
    )
    return ended
