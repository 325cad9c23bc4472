"""Second factors (SPEC §2b): TOTP enrolment and removal, recovery codes, a sys_admin's reset, and the checks of a
code that the login's second step (services/login.py) and the management routes share.

Secrets and codes never reach a log line, an event or a mail. Every enrolment, removal, failure and recovery-code
use is a security event and mails the user (after commit).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.contrib.auth.hashers import check_password
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from auth_service.accounts import selectors
from auth_service.accounts.keyring import reseal, seal, unseal
from auth_service.accounts.mail import mail_send_after_commit, security_notice_mail
from auth_service.accounts.models import Passkey, RecoveryCode, TotpDevice, User
from auth_service.accounts.otp import (
    new_recovery_codes,
    new_totp_secret,
    normalize_recovery_code,
    recovery_code_digest,
    recovery_code_digests,
    totp_match_step,
    totp_qr_svg,
    totp_uri,
)
from auth_service.accounts.services._common import FAILURE, Kind, agent_load, end_sessions_after_commit, lock_user
from auth_service.accounts.throttle import login_attempt_refund, login_attempt_reserve
from auth_service.audit.services import failure_recorded, security_event_record
from common.contracts.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    ServiceError,
    TooManyRequests,
    Unauthorized,
)
from common.contracts.roles import SYS_ADMIN

log = logging.getLogger(__name__)

INVALID_CODE = "Invalid code"
INVALID_PASSWORD_OR_CODE = "Invalid password or code"  # noqa: S105 - a message
TOO_MANY_ATTEMPTS = "Too many failed attempts, try again later"


@dataclass(frozen=True)
class TotpSetup:
    secret: str
    otpauth_uri: str
    qr_svg: str


def _notify(user: User, *, subject: str, what: str) -> None:
    mail_send_after_commit(security_notice_mail(to=user.email, name=user.name, subject=subject, what=what))


# What the user is told of each change to their second factors: the mail's subject and its one sentence.
_CHANGE_NOTICES: dict[str, tuple[str, str]] = {
    Kind.TOTP_ENABLED: ("Two-step login enabled", "TOTP (an authenticator app) now protects your login."),
    Kind.TOTP_DISABLED: (
        "Two-step login disabled",
        "TOTP was removed from your account, with its recovery codes: a password alone now logs in.",
    ),
    Kind.MFA_RESET: (
        "Your second factors were reset",
        "An administrator removed the second factors of your account and ended all your sessions.",
    ),
}


def _change_record(kind: str, *, user: User, actor_id: str | uuid.UUID) -> None:
    """The security event of a change to the user's second factors, and the mail that tells the user of it."""
    security_event_record(kind=kind, user_id=user.id, actor_id=actor_id)
    subject, what = _CHANGE_NOTICES[kind]
    _notify(user, subject=subject, what=what)


def _active_user(user_id: str) -> User:
    user = agent_load(user_id)
    if not user.is_active:
        raise Unauthorized("Your account is inactive")
    return user


# -- checks shared with the login --------------------------------------------------------------------------------


def totp_accept(user: User, code: str) -> bool:
    """A code of the user's confirmed TOTP, for a step newer than the last accepted one; it becomes the last."""
    device = selectors.totp_device_get(user.id, confirmed=True)
    if device is None:
        return False
    secret = unseal(device.secret, what=f"the TOTP secret of user {user.id}")
    step = totp_match_step(secret, code, now=time.time(), after_step=device.last_used_step)
    if step is None:
        return False
    # Compare-and-set: of two requests racing with one code, only one moves the step.
    newer = Q(last_used_step__isnull=True) | Q(last_used_step__lt=step)
    return TotpDevice.objects.filter(Q(pk=device.pk) & newer).update(last_used_step=step) == 1


def recovery_code_use(user: User, code: str) -> bool:
    """Spend one of the user's recovery codes (deleted, so it works once); the user is told how many are left."""
    digests = list(recovery_code_digests(user_id=str(user.id), code=code))
    if not digests:
        return False
    with transaction.atomic():
        # One row at most: a code is stored under the current SECRET_KEY only.
        deleted, _ = RecoveryCode.objects.filter(user=user, code_hash__in=digests).delete()
        if not deleted:
            return False
        left = selectors.recovery_codes_left(user.id)
        security_event_record(kind=Kind.RECOVERY_CODE_USED, user_id=user.id, detail={"left": left})
        _notify(
            user,
            subject="A recovery code was used",
            what=f"A recovery code of your account was used; {left} left. Each code works once.",
        )
    return True


def second_factor_accept(user: User, code: str) -> str | None:
    """A TOTP code or a recovery code of the user: which one it was ("totp", "recovery_code"), None if neither."""
    if normalize_recovery_code(code) is not None:
        return "recovery_code" if recovery_code_use(user, code) else None
    return "totp" if totp_accept(user, code) else None


def _reauthenticate(*, user: User, password: str, code: str, ip: str | None, kind: str) -> None:
    """Password and a second-factor code, counted in the login failure budget (a stolen access token cannot guess
    them any faster than a login could). Every refusal is a security event of `kind`."""
    attempt = login_attempt_reserve(user_id=str(user.id), slug="", ip=ip)
    refused: ServiceError | None = None
    if attempt.retry_after is not None:
        refused = TooManyRequests(TOO_MANY_ATTEMPTS, headers={"Retry-After": str(attempt.retry_after)})
    elif selectors.totp_device_get(user.id, confirmed=True) is None:
        login_attempt_refund(attempt)
        refused = Conflict("TOTP is not enabled")
    elif not check_password(password, user.password) or second_factor_accept(user, code) is None:
        _notify(
            user,
            subject="Failed attempt to change your second factor",
            what="Someone logged in to your account tried to change its second factor with a wrong password or code.",
        )
        refused = BadRequest(INVALID_PASSWORD_OR_CODE)
    if refused is not None:
        security_event_record(kind=kind, outcome=FAILURE, user_id=user.id, actor_id=user.id, reason=refused.code)
        raise refused
    login_attempt_refund(attempt)


@contextmanager
def _reauthenticated(*, user_id: str, password: str, code: str, ip: str | None, kind: str) -> Iterator[User]:
    """The active user, once `_reauthenticate` let it through, in a transaction that holds the user's lock."""
    user = _active_user(user_id)
    _reauthenticate(user=user, password=password, code=code, ip=ip, kind=kind)
    with transaction.atomic():
        lock_user(user.id)
        yield user


# -- enrolment -----------------------------------------------------------------------------------------------------


def totp_setup(*, user_id: str) -> TotpSetup:
    """A new TOTP secret for the user, inactive until confirmed; it replaces an unconfirmed one."""
    user = _active_user(user_id)
    secret = new_totp_secret()
    with transaction.atomic():
        lock_user(user.id)
        if selectors.totp_device_get(user.id, confirmed=True) is not None:
            raise Conflict("TOTP is already enabled: disable it first")
        TotpDevice.objects.update_or_create(
            user=user,
            defaults={"secret": seal(secret), "is_confirmed": False, "last_used_step": None, "confirmed_at": None},
        )
    uri = totp_uri(secret, account=user.email)
    log.info("totp setup started", extra={"target_user_id": str(user.id)})
    return TotpSetup(secret=secret, otpauth_uri=uri, qr_svg=totp_qr_svg(uri))


def totp_confirm(*, user_id: str, code: str) -> list[str]:
    """A correct code activates the pending TOTP; the answer is a first set of recovery codes (shown once)."""
    with failure_recorded(Kind.TOTP_ENABLED, user_id=user_id, actor_id=user_id), transaction.atomic():
        user = _active_user(user_id)
        lock_user(user.id)
        device = selectors.totp_device_get(user.id)
        if device is None or device.is_confirmed:
            raise BadRequest("No TOTP setup to confirm: start one with setup")
        secret = unseal(device.secret, what=f"the TOTP secret of user {user.id}")
        step = totp_match_step(secret, code, now=time.time(), after_step=None)
        if step is None:
            raise BadRequest(INVALID_CODE, fields={"code": [INVALID_CODE]})
        device.is_confirmed, device.last_used_step, device.confirmed_at = True, step, timezone.now()
        device.save(update_fields=["is_confirmed", "last_used_step", "confirmed_at"])
        codes = _recovery_codes_replace(user)
        _change_record(Kind.TOTP_ENABLED, user=user, actor_id=user.id)
    log.info("totp enabled", extra={"target_user_id": str(user.id)})
    return codes


def _recovery_codes_replace(user: User) -> list[str]:
    """A new set of codes; the old set dies. Runs inside the caller's transaction."""
    RecoveryCode.objects.filter(user=user).delete()
    codes = new_recovery_codes()
    RecoveryCode.objects.bulk_create(
        RecoveryCode(user=user, code_hash=recovery_code_digest(user_id=str(user.id), code=code.replace("-", "")))
        for code in codes
    )
    security_event_record(kind=Kind.RECOVERY_CODES_ISSUED, user_id=user.id, detail={"count": len(codes)})
    return codes


# -- removal and renewal (password + code) ------------------------------------------------------------------------


def totp_disable(*, user_id: str, password: str, code: str, ip: str | None) -> None:
    """Remove the user's TOTP and its recovery codes, after the password and a TOTP or recovery code."""
    with _reauthenticated(user_id=user_id, password=password, code=code, ip=ip, kind=Kind.TOTP_DISABLED) as user:
        _second_factors_delete(user)
        _change_record(Kind.TOTP_DISABLED, user=user, actor_id=user.id)
    log.info("totp disabled", extra={"target_user_id": str(user.id)})


def recovery_codes_regenerate(*, user_id: str, password: str, code: str, ip: str | None) -> list[str]:
    """A new set of recovery codes (the old one dies), after the password and a TOTP or recovery code."""
    with _reauthenticated(
        user_id=user_id, password=password, code=code, ip=ip, kind=Kind.RECOVERY_CODES_ISSUED
    ) as user:
        codes = _recovery_codes_replace(user)
        _notify(
            user,
            subject="New recovery codes",
            what="A new set of recovery codes was made for your account; the earlier codes no longer work.",
        )
    return codes


def _second_factors_delete(user: User) -> None:
    TotpDevice.objects.filter(user=user).delete()
    RecoveryCode.objects.filter(user=user).delete()
    Passkey.objects.filter(user=user).delete()


def mfa_reset(*, agent_id: str, user_id: str) -> None:
    """A sys_admin removes every second factor of another user (a lost phone) and ends all the user's sessions."""
    with failure_recorded(Kind.MFA_RESET, user_id=user_id, actor_id=agent_id), transaction.atomic():
        agent = agent_load(agent_id)
        if not agent.is_active or SYS_ADMIN not in agent.roles:
            raise Forbidden("Only a sys_admin can reset second factors")
        if str(agent.id) == str(user_id):
            raise BadRequest("You cannot reset your own second factors: disable them yourself")
        target = lock_user(user_id)
        if target is None:
            raise NotFound("User not found")
        _second_factors_delete(target)
        end_sessions_after_commit(target.id)
        _change_record(Kind.MFA_RESET, user=target, actor_id=agent.id)
    log.info("second factors reset", extra={"target_user_id": str(target.id)})


def notify_failed_second_factor(user: User) -> None:
    """Told once per login attempt: whoever typed the wrong code knew the password."""
    _notify(
        user,
        subject="Failed login with your password",
        what="Your password was entered correctly, then a wrong second-factor code. If it was not you, your "
        "password is known to someone else.",
    )


def totp_secrets_reencrypt() -> int:
    """Re-encrypt every stored TOTP secret under the first key-encryption key (its rotation); how many."""
    with transaction.atomic():
        devices = list(TotpDevice.objects.select_for_update().only("id", "user_id", "secret"))
        for device in devices:
            device.secret = reseal(device.secret, what=f"the TOTP secret of user {device.user_id}")
            device.save(update_fields=["secret"])
    return len(devices)
