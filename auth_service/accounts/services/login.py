"""Logins: the API login (a new session, or a second step when the user has a second factor), its second step,
and the admin console login."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import NoReturn

from django.contrib.auth.hashers import check_password, make_password

from auth_service.accounts import selectors
from auth_service.accounts.hashers import dummy_verify
from auth_service.accounts.mfa_tokens import (
    AMR_OTP,
    METHOD_RECOVERY_CODE,
    METHOD_TOTP,
    MfaTokenState,
    mfa_token_consume,
    mfa_token_failure,
    mfa_token_issue,
    mfa_token_restore,
)
from auth_service.accounts.models import User
from auth_service.accounts.services._common import FAILURE, Kind
from auth_service.accounts.services.mfa import (
    notify_failed_second_factor,
    recovery_code_use,
    second_factor_accept,
    totp_accept,
)
from auth_service.accounts.services.sessions import TokenPair, session_open
from auth_service.accounts.sessions import credential_epoch_get
from auth_service.accounts.throttle import login_attempt_refund, login_attempt_reserve
from auth_service.audit.services import security_event_record
from common.contracts.errors import BadRequest, TooManyRequests, Unauthorized

log = logging.getLogger(__name__)

INVALID_CREDENTIALS = "Invalid credentials"
NOT_VERIFIED = "Account not verified: enter the code sent to your e-mail address"

TOO_MANY_LOGINS = "Too many failed login attempts, try again later"
INVALID_MFA = "Invalid or expired second-factor code or token"


@dataclass(frozen=True)
class MfaChallenge:
    """The password was right, and the user has a second factor: finish with the token and one of `methods`."""

    mfa_token: str
    methods: tuple[str, ...]


def user_authenticate(*, slug: str, password: str, ip: str | None, user_agent: str | None) -> TokenPair | MfaChallenge:
    """Log in by e-mail or username: one generic 401 for every failure, a failure budget per account and source
    reserved before the password is checked, a new session (or, with a second factor, a challenge)."""
    user = selectors.user_get_by_slug(slug)
    attempt = login_attempt_reserve(user_id=str(user.id) if user else None, slug=slug, ip=ip)
    if attempt.retry_after is not None:
        _login_failed(user=user, slug=slug, reason="throttled")
        raise TooManyRequests(TOO_MANY_LOGINS, headers={"Retry-After": str(attempt.retry_after)})
    if user is None:
        dummy_verify(password)
        is_correct = False
    else:
        is_correct = check_password(password, user.password, setter=partial(_password_rehash, user))
    if user is None or not is_correct or not user.is_active:
        log.info("login failed", extra={"target_user_id": str(user.id) if user else None})
        # Every branch writes one event, so the log adds no timing difference between them.
        reason = "unknown_account" if user is None else "bad_password" if not is_correct else "inactive"
        _login_failed(user=user, slug=slug, reason=reason)
        raise Unauthorized(INVALID_CREDENTIALS)
    methods = selectors.mfa_methods(user.id) if user.is_verified else []
    if not methods:
        login_attempt_refund(attempt)
    if not user.is_verified:
        _login_failed(user=user, slug=slug, reason="unverified")
        raise BadRequest(NOT_VERIFIED)
    if methods:
        # The attempt stays counted until the second factor is right: a source that knows the password gets no
        # fresh budget for guessing codes by logging in again (mfa_authenticate gives it back).
        return _mfa_challenge(user=user, slug=slug, methods=methods, ip=ip, user_agent=user_agent)
    pair = session_open(user=user, ip=ip, user_agent=user_agent)
    if pair is None:  # the password, roles or active flag changed while this login was checking them
        _login_failed(user=user, slug=slug, reason="credentials_changed")
        raise Unauthorized(INVALID_CREDENTIALS)
    security_event_record(kind=Kind.LOGIN, user_id=user.id, detail={"sid": pair.session_id})
    log.info("login succeeded", extra={"sid": pair.session_id})
    return pair


def _mfa_challenge(
    *, user: User, slug: str, methods: list[str], ip: str | None, user_agent: str | None
) -> MfaChallenge:
    epoch = credential_epoch_get(str(user.id))
    # As session_open: read after the epoch, so a change committed meanwhile is seen here or moves the epoch.
    if not selectors.credentials_unchanged(user):
        _login_failed(user=user, slug=slug, reason="credentials_changed")
        raise Unauthorized(INVALID_CREDENTIALS)
    token = mfa_token_issue(user_id=str(user.id), epoch=epoch, methods=methods, ip=ip, user_agent=user_agent)
    security_event_record(kind=Kind.SECOND_FACTOR, user_id=user.id, reason="asked", detail={"methods": methods})
    return MfaChallenge(mfa_token=token, methods=tuple(methods))


def mfa_authenticate(
    *, mfa_token: str, code: str | None, recovery_code: str | None, ip: str | None, user_agent: str | None
) -> TokenPair:
    """The login's second step with a TOTP code or a recovery code (exactly one of them)."""
    if code is not None:
        method, check = METHOD_TOTP, partial(totp_accept, code=code)
    else:
        method, check = METHOD_RECOVERY_CODE, partial(recovery_code_use, code=recovery_code or "")
    return second_step_complete(
        mfa_token=mfa_token, method=method, amr=AMR_OTP, check=check, ip=ip, user_agent=user_agent
    )


def second_step_complete(
    *,
    mfa_token: str,
    method: str,
    amr: str,
    check: Callable[[User], bool],
    ip: str | None,
    user_agent: str | None,
) -> TokenPair:
    """Finish a login whose password was right with the second factor `check` proves (TOTP, recovery code, passkey):
    a new session whose tokens carry the password's `amr` plus `amr`.

    The token is single use and dies after MFA_TOKEN_MAX_FAILURES failed checks; each failed check also counts in
    the account's login failure budget (reserved before the check, as a password is), so alternating between the
    two steps buys no extra guesses.
    """
    state = mfa_token_consume(mfa_token)
    if state is None:
        _mfa_failed(user_id=None, reason="invalid_token", method=method)
        raise Unauthorized(INVALID_MFA)
    if state.user_agent != (user_agent or "")[:200]:
        # Another client than the one that gave the password: the token stays dead.
        _mfa_failed(user_id=state.user_id, reason="other_client", method=method)
        raise Unauthorized(INVALID_MFA)
    if method not in state.methods:
        mfa_token_restore(mfa_token, state)
        raise BadRequest(f"This account cannot use {method} here; methods: {', '.join(state.methods)}")
    attempt = login_attempt_reserve(user_id=state.user_id, slug="", ip=ip)
    if attempt.retry_after is not None:
        mfa_token_restore(mfa_token, state)
        _mfa_failed(user_id=state.user_id, reason="throttled", method=method)
        raise TooManyRequests(TOO_MANY_LOGINS, headers={"Retry-After": str(attempt.retry_after)})
    user = selectors.user_get(state.user_id)
    if user is None or not user.is_active or not user.is_verified:
        _mfa_failed(user_id=state.user_id, reason="inactive", method=method)
        raise Unauthorized(INVALID_MFA)
    if not check(user):
        _mfa_wrong_code(user=user, token=mfa_token, state=state, method=method)
    # Both reservations back: this check's and the password step's (the source's failures are forgiven).
    login_attempt_refund(attempt)
    login_attempt_refund(attempt)
    methods = (*state.amr, amr)
    pair = session_open(user=user, ip=ip, user_agent=user_agent, amr=methods, epoch=state.epoch)
    if pair is None:  # the password, roles or active flag changed since the password was checked
        _mfa_failed(user_id=state.user_id, reason="credentials_changed", method=method)
        raise Unauthorized(INVALID_MFA)
    security_event_record(kind=Kind.LOGIN, user_id=user.id, detail={"sid": pair.session_id, "amr": list(methods)})
    log.info("login succeeded", extra={"sid": pair.session_id})
    return pair


def _mfa_wrong_code(*, user: User, token: str, state: MfaTokenState, method: str) -> NoReturn:
    left = mfa_token_failure(token, state)
    _mfa_failed(user_id=user.id, reason="bad_code", method=method, left=left)
    if state.failures == 0:
        notify_failed_second_factor(user)
    raise Unauthorized(INVALID_MFA)


def _mfa_failed(*, user_id: object, reason: str, method: str, left: int | None = None) -> None:
    detail: dict[str, object] = {"method": method}
    if left is not None:
        detail["attemptsLeft"] = left
    security_event_record(
        kind=Kind.SECOND_FACTOR,
        outcome=FAILURE,
        user_id=str(user_id) if user_id else None,
        reason=reason,
        detail=detail,
    )


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


def admin_authenticate(*, email: str, password: str, ip: str | None, code: str | None = None) -> User | None:
    """The admin console's login: the API login's per-account failure budget and security log, staff only.

    A staff account with a second factor also needs `code`, a TOTP or recovery code (SPEC §2b: a password alone no
    longer logs it in); one with passkeys only cannot use the console, whose form has no WebAuthn step. Returns None
    for every refusal (the admin shows one generic message); the log says which it was.
    """
    user = selectors.user_get_by_email(email)
    attempt = login_attempt_reserve(user_id=str(user.id) if user else None, slug=email, ip=ip)
    if attempt.retry_after is not None:
        _login_failed(user=user, slug=email, reason="throttled", via="admin")
        return None
    if user is None:
        dummy_verify(password)
        is_correct = False
    else:
        is_correct = check_password(password, user.password, setter=partial(_password_rehash, user))
    if user is None:
        reason = "unknown_account"
    elif not is_correct:
        reason = "bad_password"
    elif not user.is_active:
        reason = "inactive"
    elif not user.is_staff:
        reason = "not_staff"
    else:
        reason = _admin_second_factor_refusal(user, code)
    if user is None or reason:
        _login_failed(user=user, slug=email, reason=reason, via="admin")
        return None
    login_attempt_refund(attempt)
    security_event_record(kind=Kind.LOGIN, user_id=user.id, detail={"via": "admin"})
    log.info("admin login succeeded", extra={"target_user_id": str(user.id)})
    return user


def _admin_second_factor_refusal(user: User, code: str | None) -> str:
    """Why a staff account's second factor refuses the console login ("" when it has none or the code is right)."""
    methods = selectors.mfa_methods(user.id)
    if not methods:
        return ""
    if METHOD_TOTP not in methods:
        return "passkey_only"  # the console has no WebAuthn step
    if not code:
        return "second_factor_missing"
    if second_factor_accept(user, code) is None:
        notify_failed_second_factor(user)
        return "second_factor"
    return ""


def _password_rehash(user: User, raw_password: str) -> None:
    # Upgrades a legacy or weaker hash of the same password: not an identity change, so no version or event. Only
    # over the hash that was checked: a reset committed meanwhile is never overwritten with the old password.
    encoded = make_password(raw_password)
    if User.objects.filter(pk=user.pk, password=user.password).update(password=encoded):
        user.password = encoded
