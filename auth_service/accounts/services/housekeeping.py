"""Clean-up of expired and spent records."""

from __future__ import annotations

from django.utils import timezone

from auth_service.accounts.models import RecoveryToken, VerificationCode
from auth_service.accounts.services.signing_keys import retired_keys_delete
from auth_service.audit.services import security_events_purge


def expired_records_purge() -> dict[str, int]:
    """Delete spent or expired codes and tokens, keys retired beyond their publication window, old security events."""
    now = timezone.now()
    codes, _ = VerificationCode.objects.filter(expires_at__lt=now).delete()
    used_codes, _ = VerificationCode.objects.filter(used_at__isnull=False).delete()
    tokens, _ = RecoveryToken.objects.filter(expires_at__lt=now).delete()
    used_tokens, _ = RecoveryToken.objects.filter(used_at__isnull=False).delete()
    keys = retired_keys_delete(now)
    return {
        "verification_codes": codes + used_codes,
        "recovery_tokens": tokens + used_tokens,
        "signing_keys": keys,
        "security_events": security_events_purge(now=now),
    }
