"""Session tokens: open a session at login, rotate it on refresh, consume it on logout.

Every session and access token carries the user's credential epoch (see common/contracts/sessions.py):

- a login reads the epoch first, then confirms the password, active flag and roles it checked are still those of
  the row, and opens its session only if the epoch is still the same, so a login that raced a reset (or a
  deactivation, a role change) opens nothing;
- a refresh goes on only while the session carries the user's current epoch, and issues tokens of that epoch;
- the previous refresh token, presented within the grace period (a lost reply, two tabs racing), gets back the
  very tokens its rotation issued, sealed in the session under a key derived from that token: nothing new is
  minted, so two racing refreshes can never fork a family, and the grace use is a security event of its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

from auth_service.accounts import selectors
from auth_service.accounts.crypto import new_token, token_digest
from auth_service.accounts.models import User
from auth_service.accounts.policies import ACTION_DEACTIVATE, sorted_roles
from auth_service.accounts.services._common import agent_load, authorize
from auth_service.accounts.services.signing_keys import signing_key_for_signing
from auth_service.accounts.sessions import (
    Rotation,
    RotationResult,
    credential_epoch_get,
    session_store_create,
    session_store_delete,
    session_store_delete_all,
    session_store_get,
    session_store_rotate,
)
from auth_service.accounts.tokens import (
    DEFAULT_AMR,
    InvalidRefreshToken,
    RefreshClaims,
    access_token_encode,
    refresh_token_decode,
    refresh_token_encode,
)
from auth_service.audit.models import SecurityEvent
from auth_service.audit.services import failure_recorded, security_event_record
from common.contracts.errors import NotFound, Unauthorized

log = logging.getLogger(__name__)
Kind = SecurityEvent.Kind
FAILURE = SecurityEvent.Outcome.FAILURE

INVALID_REFRESH = "Invalid or expired refresh token"
MAX_REFRESH_GRACE_SECONDS = 30
_REPLAY_CONTEXT = b"authmesh.refresh.replay"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    refresh_expires_at: int
    session_id: str


def token_pair(
    *,
    user: User | selectors.TokenSubject,
    sid: str,
    check: str,
    expires_at: int,
    now: int,
    epoch: int,
    amr: Sequence[str] = DEFAULT_AMR,
) -> TokenPair:
    kid, key = signing_key_for_signing()
    user_id = str(user.id)
    roles = sorted_roles(user.roles)
    access = access_token_encode(kid=kid, key=key, user_id=user_id, sid=sid, roles=roles, now=now, epoch=epoch, amr=amr)
    refresh = refresh_token_encode(user_id=user_id, sid=sid, check=check, expires_at=expires_at, now=now, amr=amr)
    return TokenPair(access_token=access, refresh_token=refresh, refresh_expires_at=expires_at, session_id=sid)


def session_open(
    *,
    user: User,
    ip: str | None,
    user_agent: str | None,
    amr: Sequence[str] = DEFAULT_AMR,
    epoch: int | None = None,
) -> TokenPair | None:
    """A new session for a user whose credentials were just checked; None when they changed meanwhile.

    `epoch`: the one read when the first factor was checked (a login finished by a second factor): a change of the
    credentials between the two steps opens nothing."""
    epoch = credential_epoch_get(str(user.id)) if epoch is None else epoch
    # Read after the epoch: a change committed before this read is seen here, one committed after it bumps the
    # epoch before or after the session is created, and either way the session cannot outlive it.
    if not selectors.credentials_unchanged(user):
        return None
    now = int(time.time())
    expires_at = now + int(settings.REFRESH_TOKEN_TTL_SECONDS)
    check = new_token()
    sid = session_store_create(
        user_id=str(user.id),
        check_digest=token_digest(check),
        expires_at=expires_at,
        device=user_agent or "",
        ip=ip or "",
        epoch=epoch,
    )
    if sid is None:
        return None
    return token_pair(user=user, sid=sid, check=check, expires_at=expires_at, now=now, epoch=epoch, amr=amr)


def _replay_key(check: str) -> Fernet:
    # Derived from the presented token's secret, which the session stores only as a plain SHA-256 digest: whoever
    # reads Redis cannot open the sealed tokens, only the holder of the previous refresh token can.
    raw = hmac.new(check.encode(), _REPLAY_CONTEXT, hashlib.sha256).digest()
    return Fernet(base64.urlsafe_b64encode(raw))


def replay_seal(pair: TokenPair, *, check: str) -> str:
    body = json.dumps(
        {"a": pair.access_token, "r": pair.refresh_token, "e": pair.refresh_expires_at, "s": pair.session_id}
    )
    return _replay_key(check).encrypt(body.encode()).decode()


def replay_open(sealed: str, *, check: str) -> TokenPair | None:
    try:
        body = json.loads(_replay_key(check).decrypt(sealed.encode(), ttl=MAX_REFRESH_GRACE_SECONDS + 5))
        return TokenPair(
            access_token=body["a"], refresh_token=body["r"], refresh_expires_at=body["e"], session_id=body["s"]
        )
    except (InvalidToken, ValueError, KeyError, TypeError):
        return None


def _refresh_claims(refresh_token: str, *, kind: str) -> RefreshClaims:
    try:
        return refresh_token_decode(refresh_token)
    except InvalidRefreshToken:
        security_event_record(kind=kind, outcome=FAILURE, reason="invalid_token")
        raise Unauthorized(INVALID_REFRESH) from None


def _refresh_refused(kind: str, claims: RefreshClaims, *, user_id: str, reason: str) -> Unauthorized:
    security_event_record(kind=kind, outcome=FAILURE, user_id=user_id, reason=reason, detail={"sid": claims.sid})
    return Unauthorized(INVALID_REFRESH)


# What a rotation stores: the new check's digest and the sealed tokens it issues, for the epoch it is given.
Mint = Callable[[int], tuple[str, str]]


def _consume_refresh(claims: RefreshClaims, *, ip: str | None, kind: str, mint: Mint) -> RotationResult:
    """Rotate the session's check (or find the grace replay); refuse, and end the family where it is compromised."""
    grace = min(float(settings.REFRESH_REUSE_GRACE_SECONDS), MAX_REFRESH_GRACE_SECONDS)
    for _ in range(2):
        epoch = credential_epoch_get(claims.user_id)
        new_digest, replay = mint(epoch)
        result = session_store_rotate(
            sid=claims.sid,
            user_id=claims.user_id,
            presented_digest=token_digest(claims.check),
            new_digest=new_digest,
            grace_seconds=grace,
            ip=ip,
            epoch=epoch,
            replay=replay,
        )
        if result.outcome is not Rotation.MOVED:
            break
    outcome = result.outcome
    if outcome in (Rotation.ROTATED, Rotation.GRACE):
        return result
    if outcome is Rotation.MISSING:
        raise _refresh_refused(kind, claims, user_id=claims.user_id, reason="session_ended")
    if outcome is Rotation.MOVED:
        # The epoch moved twice during this refresh: the credentials are changing right now, try again later.
        raise _refresh_refused(kind, claims, user_id=result.user_id, reason="epoch_moving")
    session_store_delete(user_id=result.user_id, sid=claims.sid)
    if outcome is Rotation.REUSED:
        log.warning("refresh token reuse detected", extra={"sid": claims.sid, "target_user_id": result.user_id})
        raise _refresh_refused(Kind.REFRESH_REUSE, claims, user_id=result.user_id, reason=kind)
    if outcome is Rotation.MISMATCH:
        # Only possible with a forged token (leaked secret): end the session rather than trust either side.
        log.warning("refresh token subject does not match its session", extra={"sid": claims.sid})
        raise _refresh_refused(kind, claims, user_id=result.user_id, reason="subject_mismatch")
    # STALE: opened under an older credential epoch (a login that raced a reset, a deactivation...).
    log.warning("session of an older credential epoch refused", extra={"sid": claims.sid})
    raise _refresh_refused(kind, claims, user_id=result.user_id, reason="stale_epoch")


def session_rotate(*, refresh_token: str, ip: str | None, user_agent: str | None) -> TokenPair:
    """Exchange a refresh token for a new pair in the same family (same absolute expiry); reuse ends the family.

    The previous token within the grace period gets the pair its rotation issued, again.
    """
    claims = _refresh_claims(refresh_token, kind=Kind.REFRESH)
    user = selectors.token_subject_get(claims.user_id)
    # Verification gates a new login only: a user who changed their e-mail keeps their sessions meanwhile.
    if user is None or not user.is_active:
        info = session_store_get(claims.sid)
        if info is not None and info.user_id == claims.user_id:
            session_store_delete(user_id=claims.user_id, sid=claims.sid)
        raise _refresh_refused(Kind.REFRESH, claims, user_id=claims.user_id, reason="inactive")
    issued: list[TokenPair] = []

    def mint(epoch: int) -> tuple[str, str]:
        check = new_token()
        pair = token_pair(
            user=user,
            sid=claims.sid,
            check=check,
            expires_at=claims.expires_at,
            now=int(time.time()),
            epoch=epoch,
            amr=claims.amr,
        )
        issued.append(pair)
        return token_digest(check), replay_seal(pair, check=claims.check)

    result = _consume_refresh(claims, ip=ip, kind=Kind.REFRESH, mint=mint)
    if result.outcome is Rotation.GRACE:
        replayed = replay_open(result.replay, check=claims.check)
        if replayed is None:
            raise _refresh_refused(Kind.REFRESH_GRACE, claims, user_id=result.user_id, reason="nothing_to_replay")
        log.warning("refresh token grace replay", extra={"sid": claims.sid, "target_user_id": result.user_id})
        security_event_record(kind=Kind.REFRESH_GRACE, user_id=user.id, detail={"sid": claims.sid})
        return replayed
    security_event_record(kind=Kind.REFRESH, user_id=user.id, detail={"sid": claims.sid})
    return issued[-1]


def session_logout(*, refresh_token: str, all_sessions: bool) -> None:
    """End the token's session, or every session of its user; a reused token still ends its family, with a 401."""
    claims = _refresh_claims(refresh_token, kind=Kind.LOGOUT)
    # Consuming the token (a rotation nobody receives) applies the same current/grace/reuse rules as a refresh.
    result = _consume_refresh(claims, ip=None, kind=Kind.LOGOUT, mint=lambda epoch: (token_digest(new_token()), ""))
    user_id = result.user_id
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
