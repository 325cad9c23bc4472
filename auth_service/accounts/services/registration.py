"""Self sign-up and e-mail verification."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import IntegrityError, transaction
from django.utils import timezone

from auth_service.accounts import selectors
from auth_service.accounts.crypto import digests_equal, verification_code_digest
from auth_service.accounts.hashers import dummy_hash
from auth_service.accounts.mail import SIGNUP_ATTEMPTED, mail_enqueue, mail_send_after_commit, verification_mail
from auth_service.accounts.models import User, VerificationCode
from auth_service.accounts.policies import normalize_email, profile_errors
from auth_service.accounts.services._common import (
    lock_user,
    password_policy_errors,
    raise_if_errors,
    record_change,
    user_row_create,
    verification_code_issue,
)
from auth_service.accounts.throttle import verification_attempt_reserve, verification_attempts_forget
from common.contracts import events
from common.contracts.errors import BadRequest, Conflict, TooManyRequests
from common.contracts.roles import USER

log = logging.getLogger(__name__)

TOO_MANY_CODES = "Too many verification attempts, try again later"
INVALID_CODE = "Invalid or expired verification code"


def user_register(*, name: str, username: str, email: str, password: str) -> None:
    """Self sign-up as an unverified `user`; a known e-mail answers the same (no enumeration) and warns its owner."""
    email = normalize_email(email)
    errors = profile_errors(name=name, username=username, email=email)
    if password_errors := password_policy_errors(password, User(name=name, username=username, email=email)):
        errors["password"] = password_errors
    raise_if_errors(errors)

    existing = selectors.user_get_by_email(email)
    if existing is not None:
        # Same work and same answer as a real sign-up; only the owner of the address learns of the attempt.
        dummy_hash(password)
        mail_enqueue(SIGNUP_ATTEMPTED.mail(to=existing.email, name=existing.name))
        log.info("sign-up with a registered e-mail", extra={"target_user_id": str(existing.id)})
        return
    if selectors.username_taken(username):
        raise Conflict("Username already taken", fields={"username": ["Username already taken"]})
    encoded = make_password(password)
    try:
        with transaction.atomic():
            user = user_row_create(
                name=name,
                username=username,
                email=email,
                encoded_password=encoded,
                roles=[USER],
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
    # A budget per account that a resend does not reset (each code also burns after its own attempts).
    if retry_after := verification_attempt_reserve(user_id=str(user.id) if user else None, email=email):
        raise TooManyRequests(TOO_MANY_CODES, headers={"Retry-After": str(retry_after)})
    if user is None:
        raise BadRequest(INVALID_CODE)
    verified = False
    with transaction.atomic():
        # The user row is locked first everywhere, so concurrent guesses are serialised and counted.
        locked = lock_user(user.id)
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
                    record_change(locked, fields=["is_verified"], event_types=[events.USER_VERIFIED])
                verified = True
            else:
                record.attempts += 1
                if record.attempts >= int(settings.VERIFICATION_CODE_MAX_ATTEMPTS):
                    record.used_at = now  # burnt: a new code must be requested
                record.save(update_fields=["attempts", "used_at"])
    if not verified:
        raise BadRequest(INVALID_CODE)
    verification_attempts_forget(user_id=str(user.id))
    log.info("account verified", extra={"target_user_id": str(user.id)})


def verification_resend(*, email: str) -> bool:
    """Mail a new code to an unverified active account. The API says nothing about whether it exists; the admin
    console reports the returned flag (whether a code went out)."""
    user = selectors.user_get_by_email(email)
    if user is None or user.is_verified or not user.is_active:
        return False
    with transaction.atomic():
        locked = lock_user(user.id)
        if locked is None or locked.is_verified or not locked.is_active:
            return False
        code = verification_code_issue(locked)
        mail_send_after_commit(verification_mail(to=locked.email, name=locked.name, code=code))
    return True
