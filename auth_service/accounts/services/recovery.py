"""Password recovery: a mailed single-use token, then a new password."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.utils import timezone

from auth_service.accounts import selectors
from auth_service.accounts.crypto import new_token, token_digest
from auth_service.accounts.mail import mail_send_after_commit, recovery_mail
from auth_service.accounts.models import RecoveryToken
from auth_service.accounts.services._common import (
    FAILURE,
    Kind,
    end_sessions_after_commit,
    lock_user,
    password_policy_errors,
    raise_if_errors,
    record_change,
)
from auth_service.audit.services import failure_recorded, security_event_record
from common.contracts import events
from common.contracts.errors import BadRequest

log = logging.getLogger(__name__)

INVALID_RECOVERY = "Invalid or expired recovery token"


def recovery_request(*, slug: str) -> None:
    """Mail a single-use reset token to an active account; the same answer in about the same time otherwise."""
    started = time.monotonic()
    try:
        user = selectors.user_get_by_slug(slug)
        issued = False
        if user is not None and user.is_active:
            with transaction.atomic():
                locked = lock_user(user.id)
                if locked is not None and locked.is_active:
                    # Only the newest mailed token is valid.
                    RecoveryToken.objects.filter(user=locked, used_at__isnull=True).delete()
                    token = new_token()
                    RecoveryToken.objects.create(
                        user=locked,
                        token_hash=token_digest(token),
                        expires_at=timezone.now() + timedelta(seconds=int(settings.RECOVERY_TOKEN_TTL_SECONDS)),
                    )
                    mail_send_after_commit(recovery_mail(to=locked.email, name=locked.name, token=token))
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
        raise_if_errors({"password": errors} if (errors := password_policy_errors(password, record.user)) else {})
        encoded = make_password(password)
        with transaction.atomic():
            user = lock_user(record.user_id)
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
            record_change(user, fields=["password"], event_types=[events.USER_PASSWORD_CHANGED])
            end_sessions_after_commit(user.id)
            security_event_record(kind=Kind.PASSWORD_RESET, user_id=user.id)
    log.info("password reset", extra={"target_user_id": str(user.id)})
