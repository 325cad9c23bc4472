"""Logins: the API login (a new session) and the admin console login."""

from __future__ import annotations

import logging
from functools import partial

from django.contrib.auth.hashers import check_password, make_password

from auth_service.accounts import selectors
from auth_service.accounts.hashers import dummy_verify
from auth_service.accounts.models import User
from auth_service.accounts.services._common import FAILURE, Kind
from auth_service.accounts.services.sessions import TokenPair, session_open
from auth_service.accounts.throttle import login_attempt_refund, login_attempt_reserve
from auth_service.audit.services import security_event_record
from common.contracts.errors import BadRequest, TooManyRequests, Unauthorized

log = logging.getLogger(__name__)

INVALID_CREDENTIALS = "Invalid credentials"
NOT_VERIFIED = "Account not verified: enter the code sent to your e-mail address"

TOO_MANY_LOGINS = "Too many failed login attempts, try again later"


def user_authenticate(*, slug: str, password: str, ip: str | None, user_agent: str | None) -> TokenPair:
    """Log in by e-mail or username: one generic 401 for every failure, a failure budget per account and source
    reserved before the password is checked, a new session."""
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
    login_attempt_refund(attempt)
    if not user.is_verified:
        _login_failed(user=user, slug=slug, reason="unverified")
        raise BadRequest(NOT_VERIFIED)
    pair = session_open(user=user, ip=ip, user_agent=user_agent)
    if pair is None:  # the password, roles or active flag changed while this login was checking them
        _login_failed(user=user, slug=slug, reason="credentials_changed")
        raise Unauthorized(INVALID_CREDENTIALS)
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


def admin_authenticate(*, email: str, password: str, ip: str | None) -> User | None:
    """The admin console's login: the API login's per-account failure budget and security log, staff only.

    Returns None for every refusal (the admin shows one generic message); the log says which it was.
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
        reason = ""
    if user is None or reason:
        _login_failed(user=user, slug=email, reason=reason, via="admin")
        return None
    login_attempt_refund(attempt)
    security_event_record(kind=Kind.LOGIN, user_id=user.id, detail={"via": "admin"})
    log.info("admin login succeeded", extra={"target_user_id": str(user.id)})
    return user


def _password_rehash(user: User, raw_password: str) -> None:
    # Upgrades a legacy or weaker hash of the same password: not an identity change, so no version or event. Only
    # over the hash that was checked: a reset committed meanwhile is never overwritten with the old password.
    encoded = make_password(raw_password)
    if User.objects.filter(pk=user.pk, password=user.password).update(password=encoded):
        user.password = encoded
