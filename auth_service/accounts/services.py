"""Identity writes: sign-up, verification, login and sessions, recovery, user management, signing keys, seed.

Every identity change runs in one transaction with its outbox event(s); mail and session clean-up happen after
commit. Client-visible failures are ServiceErrors; a failed write leaves nothing behind (no row, no event).
"""

from __future__ import annotations

import logging
import time
import uuid
import zlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from auth_service.accounts import selectors
from auth_service.accounts.crypto import (
    KeyMaterial,
    digests_equal,
    key_material_from_pem,
    new_rsa_key,
    new_token,
    new_verification_code,
    private_key,
    token_digest,
    verification_code_digest,
)
from auth_service.accounts.hashers import dummy_hash, dummy_verify
from auth_service.accounts.mail import (
    Mail,
    email_changed_mail,
    recovery_mail,
    seal,
    signup_notice_mail,
    verification_mail,
)
from auth_service.accounts.models import RecoveryToken, Role, SigningKey, User, VerificationCode
from auth_service.accounts.policies import (
    ACTION_CREATE,
    ACTION_DEACTIVATE,
    ACTION_DELETE,
    ACTION_DENY,
    ACTION_REACTIVATE,
    FIELD_ROLES,
    ROLE_ADMIN,
    ROLE_GUEST,
    ROLE_RANK,
    ROLE_SYS_ADMIN,
    ROLE_USER,
    can_write_user,
    normalize_email,
    profile_errors,
    sorted_roles,
)
from auth_service.accounts.sessions import (
    Rotation,
    session_store_create,
    session_store_delete,
    session_store_delete_all,
    session_store_get,
    session_store_rotate,
)
from auth_service.accounts.snapshots import user_snapshot
from auth_service.accounts.throttle import (
    login_failure_key,
    login_failure_record,
    login_failures_reset,
    login_retry_after,
)
from auth_service.accounts.tokens import (
    InvalidRefreshToken,
    RefreshClaims,
    access_token_encode,
    refresh_token_decode,
    refresh_token_encode,
)
from auth_service.audit.models import SecurityEvent
from auth_service.audit.services import failure_recorded, security_event_record, security_events_purge
from common.contracts import events
from common.contracts.errors import (
    BadRequest,
    Conflict,
    NotFound,
    ServiceError,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from common.outbox.services import outbox_append

log = logging.getLogger(__name__)
Kind = SecurityEvent.Kind
FAILURE = SecurityEvent.Outcome.FAILURE

INVALID_CREDENTIALS = "Invalid credentials"
NOT_VERIFIED = "Account not verified: enter the code sent to your e-mail address"
INVALID_CODE = "Invalid or expired verification code"
INVALID_REFRESH = "Invalid or expired refresh token"
INVALID_RECOVERY = "Invalid or expired recovery token"
TOO_MANY_LOGINS = "Too many failed login attempts, try again later"
MAX_REFRESH_GRACE_SECONDS = 30
# How long a process keeps signing with the key it last saw as active. Safe because a rotation only retires a
# key (still published) and promotes one that was already published as `next`.
ACTIVE_KEY_CACHE_SECONDS = 30.0
_SIGNING_KEYS_LOCK = zlib.crc32(b"authmesh.accounts.signing-keys")

SEED_ACCOUNTS = (
    ("sys-admin@test.com", "sysadmin", "System Admin", ROLE_SYS_ADMIN),
    ("admin@test.com", "adminuser", "Admin User", ROLE_ADMIN),
    ("user@test.com", "basicuser", "Basic User", ROLE_USER),
    ("guest@test.com", "guestuser", "Guest User", ROLE_GUEST),
)
ROLE_DESCRIPTIONS = {
    ROLE_GUEST: "Read-only access",
    ROLE_USER: "Manages their own account",
    ROLE_ADMIN: "Manages users who are neither admin nor sys_admin",
    ROLE_SYS_ADMIN: "Manages everyone and everything",
}


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    refresh_expires_at: int
    session_id: str


# -- helpers -------------------------------------------------------------------------------------------------


def _record_change(user: User, *, fields: Iterable[str], event_types: Sequence[str]) -> None:
    """Save the changed fields and append one event per kind of change, each carrying the next version."""
    base = user.version
    user.version = base + len(event_types)
    user.save(update_fields=[*dict.fromkeys(fields), "version", "updated_at"])
    snapshot = user_snapshot(user)
    for offset, event_type in enumerate(event_types, start=1):
        outbox_append(aggregate_id=user.id, event_type=event_type, payload={**snapshot, "version": base + offset})


def _send_mail_after_commit(mail: Mail) -> None:
    transaction.on_commit(partial(_enqueue_mail, mail))


def _enqueue_mail(mail: Mail) -> None:
    # The task module is the interface layer; imported here because it imports this one.
    from auth_service.tasks import send_mail

    try:
        # The body holds a code or token: sealed in the broker, and left out of the worker's log lines.
        send_mail.apply_async(
            kwargs={"to": mail.to, "subject": mail.subject, "sealed_body": seal(mail.body)},
            kwargsrepr=repr({"to": mail.to, "subject": mail.subject}),
        )
    except Exception:
        # The change is committed; failing the reply would only invite a retry that changes nothing. The user
        # can ask again (resend, recover), so log it loudly and answer normally.
        log.exception("could not enqueue mail", extra={"subject": mail.subject})


def _end_sessions_after_commit(user_id: uuid.UUID, *, keep_sid: str | None = None) -> None:
    transaction.on_commit(partial(session_store_delete_all, str(user_id), keep_sid=keep_sid))


def _password_errors(password: str, user: User) -> list[str]:
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        return list(exc.messages)
    return []


def _raise_if_errors(errors: Mapping[str, list[str]]) -> None:
    if errors:
        messages = [f"{field}: {message}" for field, items in errors.items() for message in items]
        raise ValidationFailed(messages, fields=dict(errors))


def _verification_code_issue(user: User) -> str:
    """A fresh code replaces every earlier one of the user (only the newest mail is valid)."""
    VerificationCode.objects.filter(user=user).delete()
    code = new_verification_code()
    VerificationCode.objects.create(
        user=user,
        code_hash=verification_code_digest(user_id=str(user.id), code=code),
        expires_at=timezone.now() + timedelta(seconds=int(settings.VERIFICATION_CODE_TTL_SECONDS)),
    )
    return code


def _lock_user(user_id: uuid.UUID | str) -> User | None:
    try:
        key = user_id if isinstance(user_id, uuid.UUID) else uuid.UUID(str(user_id))
    except ValueError:
        return None
    return User.objects.select_for_update().filter(pk=key).first()


def _agent_load(agent_id: str) -> User:
    """The caller's current state: roles and activity are never taken from the token for a write."""
    agent = selectors.user_get(agent_id)
    if agent is None:
        raise Unauthorized("Your account no longer exists")
    return agent


def _authorize(
    *,
    agent: User,
    target_id: str,
    target: User | None,
    change: Collection[str],
    new_roles: Collection[str] | None = None,
) -> User:
    """Apply the permission matrix; an unknown target is 404 only for a caller who could have acted on it."""
    can_write_user(
        agent_roles=agent.roles,
        agent_id=str(agent.id),
        agent_active=agent.is_active,
        target_id=str(target.id) if target is not None else target_id,
        target_roles=target.roles if target is not None else (),
        change=change,
        new_roles=new_roles,
    )
    if target is None:
        raise NotFound("User not found")
    return target


def _create_user_row(
    *, name: str, username: str, email: str, encoded_password: str, roles: Sequence[str], is_verified: bool
) -> User:
    """Insert the user with its registered event (and a mailed code when unverified). Runs inside a transaction."""
    user = User.objects.create(
        name=name,
        username=username,
        email=email,
        password=encoded_password,
        roles=sorted_roles(roles),
        is_verified=is_verified,
        version=1,
    )
    outbox_append(aggregate_id=user.id, event_type=events.USER_REGISTERED, payload=user_snapshot(user))
    if not is_verified:
        code = _verification_code_issue(user)
        _send_mail_after_commit(verification_mail(to=user.email, name=user.name, code=code))
    return user


# -- registration and verification -----------------------------------------------------------------------------


def user_register(*, name: str, username: str, email: str, password: str) -> None:
    """Self sign-up as an unverified `user`; a known e-mail answers the same (no enumeration) and warns its owner."""
    email = normalize_email(email)
    errors = profile_errors(name=name, username=username, email=email)
    if password_errors := _password_errors(password, User(name=name, username=username, email=email)):
        errors["password"] = password_errors
    _raise_if_errors(errors)

    existing = selectors.user_get_by_email(email)
    if existing is not None:
        # Same work and same answer as a real sign-up; only the owner of the address learns of the attempt.
        dummy_hash(password)
        _enqueue_mail(signup_notice_mail(to=existing.email, name=existing.name))
        log.info("sign-up with a registered e-mail", extra={"target_user_id": str(existing.id)})
        return
    if selectors.username_taken(username):
        raise Conflict("Username already taken", fields={"username": ["Username already taken"]})
    encoded = make_password(password)
    try:
        with transaction.atomic():
            user = _create_user_row(
                name=name,
                username=username,
                email=email,
                encoded_password=encoded,
                roles=[ROLE_USER],
                is_verified=False,
            )
    except IntegrityError:
        # A concurrent sign-up won the race: a username clash is a 409, an e-mail clash stays indistinguishable.
        if selectors.username_taken(username):
            raise Conflict("Username already taken", fields={"username": ["Username already taken"]}) from None
        log.info("concurrent sign-up with the same e-mail")
        return
    log.info("user registered", extra={"target_user_id": str(user.id)})


def user_verify(*, email: str, code: str) -> None:
    """Check a mailed code: single use, expiring, with a bounded number of attempts; verifies the account."""
    user = selectors.user_get_by_email(email)
    if user is None:
        raise BadRequest(INVALID_CODE)
    verified = False
    with transaction.atomic():
        # The user row is locked first everywhere, so concurrent guesses are serialised and counted.
        locked = _lock_user(user.id)
        record = (
            VerificationCode.objects.select_for_update().filter(user=user, used_at__isnull=True).first()
            if locked is not None
            else None
        )
        now = timezone.now()
        if locked is not None and record is not None and record.expires_at > now:
            expected = verification_code_digest(user_id=str(user.id), code=code)
            if digests_equal(record.code_hash, expected):
                record.used_at = now
                record.save(update_fields=["used_at"])
                if not locked.is_verified:
                    locked.is_verified = True
                    _record_change(locked, fields=["is_verified"], event_types=[events.USER_VERIFIED])
                verified = True
            else:
                record.attempts += 1
                if record.attempts >= int(settings.VERIFICATION_CODE_MAX_ATTEMPTS):
                    record.used_at = now  # burnt: a new code must be requested
                record.save(update_fields=["attempts", "used_at"])
    if not verified:
        raise BadRequest(INVALID_CODE)
    log.info("account verified", extra={"target_user_id": str(user.id)})


def verification_resend(*, email: str) -> bool:
    """Mail a new code to an unverified active account. The API says nothing about whether it exists; the admin
    console reports the returned flag (whether a code went out)."""
    user = selectors.user_get_by_email(email)
    if user is None or user.is_verified or not user.is_active:
        return False
    with transaction.atomic():
        locked = _lock_user(user.id)
        if locked is None or locked.is_verified or not locked.is_active:
            return False
        code = _verification_code_issue(locked)
        _send_mail_after_commit(verification_mail(to=locked.email, name=locked.name, code=code))
    return True


# -- login and sessions ----------------------------------------------------------------------------------------


def user_authenticate(*, slug: str, password: str, ip: str | None, user_agent: str | None) -> TokenPair:
    """Log in by e-mail or username: one generic 401 for every failure, a per-account failure budget, a new session."""
    user = selectors.user_get_by_slug(slug)
    throttle_key = login_failure_key(user_id=str(user.id) if user else None, slug=slug)
    retry_after = login_retry_after(throttle_key)
    if retry_after is not None:
        _login_failed(user=user, slug=slug, reason="throttled")
        raise TooManyRequests(TOO_MANY_LOGINS, headers={"Retry-After": str(retry_after)})
    if user is None:
        dummy_verify(password)
        is_correct = False
    else:
        is_correct = check_password(password, user.password, setter=partial(_password_rehash, user.pk))
    if user is None or not is_correct or not user.is_active:
        login_failure_record(throttle_key)
        log.info("login failed", extra={"target_user_id": str(user.id) if user else None})
        # Every branch writes one event, so the log adds no timing difference between them.
        reason = "unknown_account" if user is None else "bad_password" if not is_correct else "inactive"
        _login_failed(user=user, slug=slug, reason=reason)
        raise Unauthorized(INVALID_CREDENTIALS)
    if not user.is_verified:
        _login_failed(user=user, slug=slug, reason="unverified")
        raise BadRequest(NOT_VERIFIED)
    login_failures_reset(throttle_key)
    pair = _session_open(user=user, ip=ip, user_agent=user_agent)
    security_event_record(kind=Kind.LOGIN, user_id=user.id, detail={"sid": pair.session_id})
    log.info("login succeeded", extra={"sid": pair.session_id})
    return pair


def _login_failed(*, user: User | None, slug: str, reason: str, via: str | None = None) -> None:
    # An unknown account is kept only as a keyed hash of what was typed (it may be a mistyped password).
    security_event_record(
        kind=Kind.LOGIN,
        outcome=FAILURE,
        user_id=user.id if user else None,
        identifier=slug if user is None else None,
        reason=reason,
        detail={"via": via} if via else None,
    )


def admin_authenticate(*, email: str, password: str) -> User | None:
    """The admin console's login: the API login's per-account failure budget and security log, staff only.

    Returns None for every refusal (the admin shows one generic message); the log says which it was.
    """
    user = selectors.user_get_by_email(email)
    throttle_key = login_failure_key(user_id=str(user.id) if user else None, slug=email)
    if login_retry_after(throttle_key) is not None:
        _login_failed(user=user, slug=email, reason="throttled", via="admin")
        return None
    if user is None:
        dummy_verify(password)
        is_correct = False
    else:
        is_correct = check_password(password, user.password, setter=partial(_password_rehash, user.pk))
    if user is None:
        reason = "unknown_account"
    elif not is_correct:
        reason = "bad_password"
    elif not user.is_active:
        reason = "inactive"
    elif not user.is_staff:
        reason = "not_staff"
    else:
        reason = ""
    if user is None or reason:
        login_failure_record(throttle_key)
        _login_failed(user=user, slug=email, reason=reason, via="admin")
        return None
    login_failures_reset(throttle_key)
    security_event_record(kind=Kind.LOGIN, user_id=user.id, detail={"via": "admin"})
    log.info("admin login succeeded", extra={"target_user_id": str(user.id)})
    return user


def _password_rehash(user_id: uuid.UUID, raw_password: str) -> None:
    # Upgrades a legacy or weaker hash of the same password: not an identity change, so no version or event.
    User.objects.filter(pk=user_id).update(password=make_password(raw_password))


def _session_open(*, user: User, ip: str | None, user_agent: str | None) -> TokenPair:
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
    return _token_pair(user=user, sid=sid, check=check, expires_at=expires_at, now=now)


def _token_pair(*, user: User | selectors.TokenSubject, sid: str, check: str, expires_at: int, now: int) -> TokenPair:
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
    pair = _token_pair(user=user, sid=claims.sid, check=check, expires_at=expires_at, now=int(time.time()))
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
            _authorize(
                agent=_agent_load(agent_id),
                target_id=user_id,
                target=selectors.user_get(user_id),
                change={ACTION_DEACTIVATE},
            )
        ended = session_store_delete_all(user_id)
    security_event_record(
        kind=Kind.SESSION_ENDED, user_id=user_id, actor_id=agent_id, detail={"all": True, "ended": ended}
    )
    return ended


# -- recovery ---------------------------------------------------------------------------------------------------


def recovery_request(*, slug: str) -> None:
    """Mail a single-use reset token to an active account; the same answer in about the same time otherwise."""
    started = time.monotonic()
    try:
        user = selectors.user_get_by_slug(slug)
        issued = False
        if user is not None and user.is_active:
            with transaction.atomic():
                locked = _lock_user(user.id)
                if locked is not None and locked.is_active:
                    # Only the newest mailed token is valid.
                    RecoveryToken.objects.filter(user=locked, used_at__isnull=True).delete()
                    token = new_token()
                    RecoveryToken.objects.create(
                        user=locked,
                        token_hash=token_digest(token),
                        expires_at=timezone.now() + timedelta(seconds=int(settings.RECOVERY_TOKEN_TTL_SECONDS)),
                    )
                    _send_mail_after_commit(recovery_mail(to=locked.email, name=locked.name, token=token))
                    security_event_record(kind=Kind.PASSWORD_RESET_REQUESTED, user_id=locked.id)
                    issued = True
        if not issued:
            # Inside the timed section: both answers cost one insert, and the floor below hides the rest.
            security_event_record(
                kind=Kind.PASSWORD_RESET_REQUESTED,
                outcome=FAILURE,
                user_id=user.id if user else None,
                identifier=slug if user is None else None,
                reason="unknown_account" if user is None else "inactive",
            )
    finally:
        # A database write and a broker round trip are measurable; a floor on the duration hides them.
        remaining = float(settings.RECOVERY_MIN_DURATION_SECONDS) - (time.monotonic() - started)
        if remaining > 0:
            time.sleep(remaining)


def password_reset(*, recovery_token: str, password: str) -> None:
    """Set a new password with a mailed token: single use, expiring; ends every session of the user."""
    if not recovery_token or len(recovery_token) > 256:
        security_event_record(kind=Kind.PASSWORD_RESET, outcome=FAILURE, reason="invalid_token")
        raise BadRequest(INVALID_RECOVERY)
    digest = token_digest(recovery_token)
    record = RecoveryToken.objects.select_related("user").filter(token_hash=digest).first()
    if record is None or record.used_at is not None or record.expires_at <= timezone.now() or not record.user.is_active:
        security_event_record(
            kind=Kind.PASSWORD_RESET,
            outcome=FAILURE,
            user_id=record.user_id if record else None,
            reason="invalid_token" if record is None else "spent_token",
        )
        raise BadRequest(INVALID_RECOVERY)
    with failure_recorded(Kind.PASSWORD_RESET, user_id=record.user_id):
        # Checked before the token is consumed, so a weak password does not cost the user their token.
        _raise_if_errors({"password": errors} if (errors := _password_errors(password, record.user)) else {})
        encoded = make_password(password)
        with transaction.atomic():
            user = _lock_user(record.user_id)
            token = (
                RecoveryToken.objects.select_for_update()
                .filter(pk=record.pk, used_at__isnull=True, expires_at__gt=timezone.now())
                .first()
            )
            if user is None or token is None or not user.is_active:
                raise BadRequest(INVALID_RECOVERY)
            token.used_at = timezone.now()
            token.save(update_fields=["used_at"])
            RecoveryToken.objects.filter(user=user, used_at__isnull=True).delete()
            user.password = encoded
            _record_change(user, fields=["password"], event_types=[events.USER_PASSWORD_CHANGED])
            _end_sessions_after_commit(user.id)
            security_event_record(kind=Kind.PASSWORD_RESET, user_id=user.id)
    log.info("password reset", extra={"target_user_id": str(user.id)})


# -- user management --------------------------------------------------------------------------------------------


def user_provision(
    *,
    email: str,
    username: str,
    name: str,
    password: str | None,
    roles: Sequence[str],
    is_verified: bool,
) -> User:
    """Create a user for a trusted caller (seed, createsuperuser): no permission matrix, no password policy."""
    email = normalize_email(email)
    roles = sorted_roles(roles)
    _raise_if_errors(profile_errors(name=name, username=username, email=email, roles=roles))
    encoded = make_password(password)  # None gives an unusable password
    try:
        with transaction.atomic():
            return _create_user_row(
                name=name,
                username=username,
                email=email,
                encoded_password=encoded,
                roles=roles,
                is_verified=is_verified,
            )
    except IntegrityError:
        raise Conflict("A user with this e-mail or username already exists") from None


def user_create(*, agent_id: str, name: str, username: str, email: str, password: str, roles: Sequence[str]) -> User:
    """An admin creates an unverified account with chosen roles (never above what the matrix allows); a code is mailed."""
    agent = _agent_load(agent_id)
    roles = list(roles)
    can_write_user(
        agent_roles=agent.roles,
        agent_id=str(agent.id),
        agent_active=agent.is_active,
        target_id=None,
        target_roles=(),
        change={ACTION_CREATE},
        new_roles=roles,
    )
    email = normalize_email(email)
    errors = profile_errors(name=name, username=username, email=email, roles=roles)
    if password_errors := _password_errors(password, User(name=name, username=username, email=email)):
        errors["password"] = password_errors
    _raise_if_errors(errors)
    if selectors.email_taken(email):
        raise Conflict("Email already in use", fields={"email": ["Email already in use"]})
    if selectors.username_taken(username):
        raise Conflict("Username already taken", fields={"username": ["Username already taken"]})
    encoded = make_password(password)
    try:
        with transaction.atomic():
            user = _create_user_row(
                name=name, username=username, email=email, encoded_password=encoded, roles=roles, is_verified=False
            )
    except IntegrityError:
        raise Conflict("A user with this e-mail or username already exists") from None
    log.info("user created", extra={"target_user_id": str(user.id)})
    return user


def user_update(*, agent_id: str, user_id: str, changes: Mapping[str, Any], agent_sid: str | None = None) -> User:
    """Change name, username, email, roles or password under the permission matrix; one event per kind of change."""
    try:
        return _user_update(agent_id=agent_id, user_id=user_id, changes=changes, agent_sid=agent_sid)
    except ServiceError as exc:
        # A refused role or password change is what the security log is for; a refused rename is not.
        for field, kind in ((FIELD_ROLES, Kind.ROLES_CHANGED), ("password", Kind.PASSWORD_CHANGED)):
            if field in changes:
                security_event_record(kind=kind, outcome=FAILURE, user_id=user_id, actor_id=agent_id, reason=exc.code)
        raise


def _user_update(*, agent_id: str, user_id: str, changes: Mapping[str, Any], agent_sid: str | None) -> User:
    writable = {"name", "username", "email", "password", FIELD_ROLES}
    change = {key for key in changes if key in writable}
    if "oldPassword" in changes and "password" not in changes:
        _raise_if_errors({"oldPassword": ["oldPassword is only accepted together with password"]})
    if not change:
        _raise_if_errors({"changes": ["Give at least one field to change"]})
    new_roles = sorted_roles(changes[FIELD_ROLES]) if FIELD_ROLES in changes else None
    new_email = normalize_email(changes["email"]) if "email" in changes else None
    with transaction.atomic():
        agent = _agent_load(agent_id)
        target = _authorize(
            agent=agent, target_id=user_id, target=_lock_user(user_id), change=change, new_roles=new_roles
        )
        is_self = target.id == agent.id
        errors = profile_errors(
            name=changes.get("name"), username=changes.get("username"), email=new_email, roles=new_roles
        )
        encoded_password = _new_password(target, changes, is_self=is_self, errors=errors)
        _raise_if_errors(errors)
        if new_email is not None and selectors.email_taken(new_email, exclude_id=target.id):
            raise Conflict("Email already in use", fields={"email": ["Email already in use"]})
        if "username" in changes and selectors.username_taken(changes["username"], exclude_id=target.id):
            raise Conflict("Username already taken", fields={"username": ["Username already taken"]})

        updated: list[str] = []
        event_types: list[str] = []
        old_email = target.email
        old_roles = sorted_roles(target.roles)
        for field, value in (
            ("name", changes.get("name")),
            ("username", changes.get("username")),
            ("email", new_email),
        ):
            if value is not None and getattr(target, field) != value:
                setattr(target, field, value)
                updated.append(field)
        if "email" in updated:
            # The address is the recovery channel: a new one must be proven before the account is trusted again.
            target.is_verified = False
            updated.append("is_verified")
        if updated:
            event_types.append(events.USER_UPDATED)
        if new_roles is not None and new_roles != old_roles:
            target.roles = new_roles
            updated.append("roles")
            event_types.append(events.USER_ROLES_CHANGED)
        if encoded_password is not None:
            target.password = encoded_password
            updated.append("password")
            event_types.append(events.USER_PASSWORD_CHANGED)
            # Other sessions may belong to whoever learnt the old password; the caller's own one stays.
            _end_sessions_after_commit(target.id, keep_sid=agent_sid if is_self else None)
        if not event_types:
            return target
        try:
            with transaction.atomic():
                _record_change(target, fields=updated, event_types=event_types)
                if "roles" in updated:
                    security_event_record(
                        kind=Kind.ROLES_CHANGED,
                        user_id=target.id,
                        actor_id=agent.id,
                        detail={"from": old_roles, "to": new_roles},
                    )
                if encoded_password is not None:
                    security_event_record(kind=Kind.PASSWORD_CHANGED, user_id=target.id, actor_id=agent.id)
        except IntegrityError:
            raise Conflict("A user with this e-mail or username already exists") from None
        if "email" in updated:
            code = _verification_code_issue(target)
            _send_mail_after_commit(verification_mail(to=target.email, name=target.name, code=code))
            _send_mail_after_commit(email_changed_mail(to=old_email, name=target.name, new_email=target.email))
    log.info("user updated", extra={"target_user_id": str(target.id), "changed": sorted(set(updated) - {"password"})})
    return target


def _new_password(
    target: User, changes: Mapping[str, Any], *, is_self: bool, errors: dict[str, list[str]]
) -> str | None:
    """Validate a password change (own: old password required, new must differ) and return its hash."""
    if "password" not in changes:
        return None
    new = changes["password"]
    if is_self:
        old = changes.get("oldPassword")
        if not old:
            errors["oldPassword"] = ["oldPassword is required to change your password"]
            return None
        if not check_password(old, target.password):
            errors["oldPassword"] = ["Old password is incorrect"]
            return None
        if digests_equal(old, new):
            errors["password"] = ["The new password must differ from the old one"]
            return None
    elif "oldPassword" in changes:
        errors["oldPassword"] = ["oldPassword is only accepted when changing your own password"]
        return None
    if password_errors := _password_errors(new, target):
        errors["password"] = password_errors
        return None
    return make_password(new)


_ACTIVITY_KINDS = {
    ACTION_DEACTIVATE: Kind.USER_DEACTIVATED,
    ACTION_REACTIVATE: Kind.USER_REACTIVATED,
    ACTION_DENY: Kind.ACCESS_DENIED,
}


def _set_active(*, agent_id: str, user_id: str, action: str, active: bool) -> User:
    kind = _ACTIVITY_KINDS[action]
    with failure_recorded(kind, user_id=user_id, actor_id=agent_id), transaction.atomic():
        agent = _agent_load(agent_id)
        target = _authorize(agent=agent, target_id=user_id, target=_lock_user(user_id), change={action})
        if target.is_active != active:
            target.is_active = active
            event = events.USER_REACTIVATED if active else events.USER_DEACTIVATED
            _record_change(target, fields=["is_active"], event_types=[event])
        if not active:
            # Even when already inactive: whatever session exists must end now.
            _end_sessions_after_commit(target.id)
        security_event_record(kind=kind, user_id=target.id, actor_id=agent.id)
    log.info("user activity changed", extra={"target_user_id": str(target.id), "action": action})
    return target


def user_deactivate(*, agent_id: str, user_id: str) -> User:
    """Deactivate an account (self-service or by the matrix) and end all its sessions."""
    return _set_active(agent_id=agent_id, user_id=user_id, action=ACTION_DEACTIVATE, active=False)


def user_reactivate(*, agent_id: str, user_id: str) -> User:
    """Reactivate an account (admin console); its sessions stay ended, the user logs in again."""
    return _set_active(agent_id=agent_id, user_id=user_id, action=ACTION_REACTIVATE, active=True)


def access_deny(*, agent_id: str, user_id: str) -> None:
    """A sys_admin cuts a user off: deactivated and every session ended, effective on the next request."""
    _set_active(agent_id=agent_id, user_id=user_id, action=ACTION_DENY, active=False)


def user_delete(*, agent_id: str, user_id: str) -> None:
    """A sys_admin deletes an account: its row, codes and tokens go, its sessions end, main_api drops it."""
    with failure_recorded(Kind.USER_DELETED, user_id=user_id, actor_id=agent_id), transaction.atomic():
        agent = _agent_load(agent_id)
        target = _authorize(agent=agent, target_id=user_id, target=_lock_user(user_id), change={ACTION_DELETE})
        target_id = target.id
        outbox_append(
            aggregate_id=target_id,
            event_type=events.USER_DELETED,
            payload={"id": str(target_id), "version": target.version + 1},
        )
        target.delete()
        _end_sessions_after_commit(target_id)
        security_event_record(kind=Kind.USER_DELETED, user_id=target_id, actor_id=agent.id)
    log.info("user deleted", extra={"target_user_id": str(target_id)})


# -- signing keys -----------------------------------------------------------------------------------------------

_active_key_cache: tuple[float, str, rsa.RSAPrivateKey] | None = None


def signing_key_for_signing() -> tuple[str, rsa.RSAPrivateKey]:
    """The active key's kid and parsed private key, cached briefly; creates the first key if there is none."""
    global _active_key_cache
    cached = _active_key_cache
    if cached is not None and cached[0] > time.monotonic():
        return cached[1], cached[2]
    active = selectors.signing_key_active() or signing_key_ensure_active()
    key = private_key(kid=active.kid, private_pem=active.private_pem)
    _active_key_cache = (time.monotonic() + ACTIVE_KEY_CACHE_SECONDS, active.kid, key)
    return active.kid, key


def _forget_active_key() -> None:
    global _active_key_cache
    _active_key_cache = None


def _lock_signing_keys() -> None:
    # One transaction-scoped advisory lock serialises every key-state change across processes.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_SIGNING_KEYS_LOCK])


def _key_create(material: KeyMaterial, *, state: str, now: datetime) -> SigningKey:
    return SigningKey.objects.create(
        kid=material.kid,
        private_pem=material.private_pem,
        public_jwk=material.public_jwk,
        state=state,
        activated_at=now if state == SigningKey.State.ACTIVE else None,
    )


def _ensure_next_key(now: datetime) -> None:
    if not SigningKey.objects.filter(state=SigningKey.State.NEXT).exists():
        _key_create(new_rsa_key(), state=SigningKey.State.NEXT, now=now)


def _retired_keys_delete(now: datetime) -> int:
    # A token signed just before retirement (or by a process whose key cache is not yet refreshed) lives one
    # access-token lifetime more; the key stays published for twice that.
    retention = timedelta(seconds=2 * int(settings.ACCESS_TOKEN_TTL_SECONDS) + ACTIVE_KEY_CACHE_SECONDS)
    deleted, _ = SigningKey.objects.filter(state=SigningKey.State.RETIRED, retired_at__lt=now - retention).delete()
    return deleted


def _configured_pem() -> KeyMaterial | None:
    private_path, public_path = settings.SIGNING_KEY_PEM_PRIVATE, settings.SIGNING_KEY_PEM_PUBLIC
    if not private_path:
        return None
    public_pem = Path(public_path).read_text() if public_path else None
    return key_material_from_pem(private_pem=Path(private_path).read_text(), public_pem=public_pem)


def signing_key_ensure_active() -> SigningKey:
    """Create the first active key (from the configured PEM files, if any) and its successor, once across processes."""
    with transaction.atomic():
        _lock_signing_keys()
        active = SigningKey.objects.filter(state=SigningKey.State.ACTIVE).first()
        if active is None:
            now = timezone.now()
            successor = SigningKey.objects.filter(state=SigningKey.State.NEXT).first()
            material = _configured_pem()
            if material is None and successor is not None:
                successor.state = SigningKey.State.ACTIVE
                successor.activated_at = now
                successor.save(update_fields=["state", "activated_at"])
                active = successor
            else:
                active = _key_create(material or new_rsa_key(), state=SigningKey.State.ACTIVE, now=now)
            _ensure_next_key(now)
            security_event_record(kind=Kind.KEY_ROTATED, reason="first_key", detail={"kid": active.kid})
            log.info("signing key activated", extra={"kid": active.kid})
        return active


def signing_key_rotate(*, min_age: timedelta | None = None, agent_id: str | None = None) -> SigningKey:
    """Promote `next` to active, retire the old active, publish a fresh `next`, drop long-retired keys."""
    # With `min_age` (the daily scheduled task) only an active key at least that old is rotated.
    with transaction.atomic():
        _lock_signing_keys()
        now = timezone.now()
        active = SigningKey.objects.filter(state=SigningKey.State.ACTIVE).first()
        if (
            min_age is not None
            and active is not None
            and active.activated_at is not None
            and active.activated_at > now - min_age
        ):
            _retired_keys_delete(now)
            return active
        successor = SigningKey.objects.filter(state=SigningKey.State.NEXT).first()
        if active is not None:
            # Demote first: the partial unique index allows one active key at any instant.
            active.state = SigningKey.State.RETIRED
            active.retired_at = now
            active.save(update_fields=["state", "retired_at"])
        if successor is None:
            successor = _key_create(new_rsa_key(), state=SigningKey.State.ACTIVE, now=now)
        else:
            successor.state = SigningKey.State.ACTIVE
            successor.activated_at = now
            successor.save(update_fields=["state", "activated_at"])
        _ensure_next_key(now)
        _retired_keys_delete(now)
        transaction.on_commit(_forget_active_key)
        security_event_record(
            kind=Kind.KEY_ROTATED,
            actor_id=agent_id,
            reason="rotated",
            detail={"kid": successor.kid, "retired_kid": active.kid if active else None},
        )
    log.info("signing keys rotated", extra={"kid": successor.kid, "retired_kid": active.kid if active else None})
    return successor


def signing_key_import_pem(*, private_pem: str, public_pem: str | None = None) -> SigningKey:
    """Make a key from PEM files (the original's certs) the active one; importing the same key again changes nothing."""
    try:
        material = key_material_from_pem(private_pem=private_pem, public_pem=public_pem)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    with transaction.atomic():
        _lock_signing_keys()
        now = timezone.now()
        existing = SigningKey.objects.filter(kid=material.kid).first()
        if existing is not None and existing.state == SigningKey.State.ACTIVE:
            return existing
        SigningKey.objects.filter(state=SigningKey.State.ACTIVE).update(state=SigningKey.State.RETIRED, retired_at=now)
        if existing is not None:
            existing.state = SigningKey.State.ACTIVE
            existing.activated_at = now
            existing.retired_at = None
            existing.save(update_fields=["state", "activated_at", "retired_at"])
            imported = existing
        else:
            imported = _key_create(material, state=SigningKey.State.ACTIVE, now=now)
        _ensure_next_key(now)
        transaction.on_commit(_forget_active_key)
        security_event_record(kind=Kind.KEY_ROTATED, reason="imported", detail={"kid": imported.kid})
    log.info("signing key imported", extra={"kid": imported.kid})
    return imported


def jwks_get() -> dict[str, Any]:
    """The published key set; makes sure a key exists, so verifiers can fetch it before the first login."""
    if selectors.signing_key_active() is None:
        signing_key_ensure_active()
    return {"keys": selectors.jwks_keys()}


# -- housekeeping and seed ---------------------------------------------------------------------------------------


def expired_records_purge() -> dict[str, int]:
    """Delete spent or expired codes and tokens, keys retired beyond their publication window, old security events."""
    now = timezone.now()
    codes, _ = VerificationCode.objects.filter(expires_at__lt=now).delete()
    used_codes, _ = VerificationCode.objects.filter(used_at__isnull=False).delete()
    tokens, _ = RecoveryToken.objects.filter(expires_at__lt=now).delete()
    used_tokens, _ = RecoveryToken.objects.filter(used_at__isnull=False).delete()
    keys = _retired_keys_delete(now)
    return {
        "verification_codes": codes + used_codes,
        "recovery_tokens": tokens + used_tokens,
        "signing_keys": keys,
        "security_events": security_events_purge(now=now),
    }


def roles_ensure() -> int:
    """Insert the four roles if missing; existing rows are left as they are."""
    created = 0
    for role, rank in ROLE_RANK.items():
        _, was_created = Role.objects.get_or_create(
            name=role, defaults={"rank": rank, "description": ROLE_DESCRIPTIONS[role]}
        )
        created += int(was_created)
    return created


def seed() -> list[str]:
    """Idempotent and never destructive: roles, a signing key and the four test accounts when they are missing.

    The accounts only with an initial password (SEED_PASSWORD): production settings have no default one.
    """
    roles_ensure()
    if selectors.signing_key_active() is None:
        signing_key_ensure_active()
    created: list[str] = []
    if not settings.SEED_PASSWORD:
        log.warning("seed accounts not created: no SEED_PASSWORD")
        return created
    for email, username, name, role in SEED_ACCOUNTS:
        if selectors.email_taken(email):
            continue
        if selectors.username_taken(username):
            log.warning("seed account skipped: username taken by another account", extra={"username": username})
            continue
        try:
            user_provision(
                email=email,
                username=username,
                name=name,
                password=settings.SEED_PASSWORD,
                roles=[role],
                is_verified=True,
            )
        except Conflict:
            continue  # a concurrent seed created it
        created.append(email)
    if created:
        log.info("seeded accounts", extra={"seeded": created})
    return created
