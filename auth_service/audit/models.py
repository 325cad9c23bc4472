"""The security event log: who logged in, out, refreshed, was cut off or changed, from where, and how it went."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db import models
from django.utils import timezone

from common.fields import CodeChoicesField


class SecurityEvent(models.Model):
    """One security-relevant event. Append-only; never holds a password, code or token."""

    class Kind(models.TextChoices):
        LOGIN = "login", "login"
        LOGOUT = "logout", "logout"
        REFRESH = "refresh", "token refresh"
        REFRESH_REUSE = "refresh_reuse", "refresh token reuse"
        REFRESH_GRACE = "refresh_grace", "refresh token grace replay"
        SESSION_ENDED = "session_ended", "session ended"
        ACCESS_DENIED = "access_denied", "access denied"
        USER_DEACTIVATED = "user_deactivated", "user deactivated"
        USER_REACTIVATED = "user_reactivated", "user reactivated"
        USER_DELETED = "user_deleted", "user deleted"
        PASSWORD_RESET_REQUESTED = "password_reset_requested", "password reset requested"
        PASSWORD_RESET = "password_reset", "password reset"
        PASSWORD_CHANGED = "password_changed", "password changed"
        ROLES_CHANGED = "roles_changed", "roles changed"
        KEY_ROTATED = "key_rotated", "signing key rotated"
        KEY_REVOKED = "key_revoked", "signing key revoked"
        CLIENT_CREATED = "client_created", "service account created"
        CLIENT_SECRET_ROTATED = "client_secret_rotated", "service account secret rotated"
        CLIENT_DISABLED = "client_disabled", "service account disabled"
        CLIENT_ENABLED = "client_enabled", "service account enabled"
        CLIENT_TOKEN = "client_token", "service account token"
        PASSKEY_ADDED = "passkey_added", "passkey added"
        PASSKEY_RENAMED = "passkey_renamed", "passkey renamed"
        PASSKEY_REMOVED = "passkey_removed", "passkey removed"
        PASSKEY_REGISTRATION = "passkey_registration", "passkey registration"
        TOTP_ENABLED = "totp_enabled", "TOTP enabled"
        TOTP_DISABLED = "totp_disabled", "TOTP disabled"
        RECOVERY_CODES_ISSUED = "recovery_codes_issued", "recovery codes issued"
        RECOVERY_CODE_USED = "recovery_code_used", "recovery code used"
        SECOND_FACTOR = "second_factor", "second factor at login"
        MFA_RESET = "mfa_reset", "second factors reset"

    class Outcome(models.TextChoices):
        SUCCESS = "success", "success"
        FAILURE = "failure", "failure"

    id: models.BigAutoField[int, int] = models.BigAutoField(primary_key=True)
    created_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(default=timezone.now)
    kind: models.CharField[str, str] = CodeChoicesField(max_length=32, choices=Kind.choices)
    outcome: models.CharField[str, str] = CodeChoicesField(max_length=8, choices=Outcome.choices)
    # Not foreign keys: the log must outlive a deleted account and never hold up its deletion.
    user_id: models.UUIDField[uuid.UUID | None, uuid.UUID | None] = models.UUIDField(
        null=True, blank=True, help_text="The account concerned."
    )
    actor_id: models.UUIDField[uuid.UUID | None, uuid.UUID | None] = models.UUIDField(
        null=True,
        blank=True,
        help_text="Who acted: the account itself, or an admin or sys_admin acting on it; empty for scheduled tasks.",
    )
    identifier_digest: models.CharField[str, str] = models.CharField(
        max_length=64,
        blank=True,
        default="",
        help_text="Keyed hash of the e-mail or username given for an unknown account: repeated attempts on one "
        "identifier can be correlated without storing it.",
    )
    ip: models.GenericIPAddressField[str | None, str | None] = models.GenericIPAddressField(null=True, blank=True)
    user_agent: models.CharField[str, str] = models.CharField(max_length=200, blank=True, default="")
    request_id: models.CharField[str, str] = models.CharField(max_length=128, blank=True, default="")
    reason: models.CharField[str, str] = models.CharField(max_length=40, blank=True, default="")
    detail: models.JSONField[Any, Any] = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The admin lists newest first and the purge deletes by age.
            models.Index(fields=["created_at"], name="audit_event_created_idx"),
            models.Index(fields=["user_id", "created_at"], name="audit_event_user_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.outcome} at {self.created_at:%Y-%m-%d %H:%M:%S}"
