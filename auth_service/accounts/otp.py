"""One-time codes of the second factors: TOTP (RFC 6238, via pyotp) and recovery codes, without a database.

TOTP: SHA-1, 6 digits, 30 s steps, one step of clock drift either way. A code is matched to the step it belongs
to; the caller accepts it only for a step newer than the last one accepted, so a code works once.

Recovery codes: 10 characters of RFC 4648 base32 (50 random bits), shown as `XXXXX-XXXXX`; stored as a keyed
hash bound to the user (SECRET_KEY, so a dump of the table cannot be checked offline). Typing is forgiving: case,
blanks and dashes do not matter.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable

import pyotp
import segno
from django.conf import settings
from django.utils.crypto import salted_hmac

TOTP_DIGITS = 6
TOTP_INTERVAL_SECONDS = 30
TOTP_DRIFT_STEPS = 1
RECOVERY_CODE_COUNT = 10
RECOVERY_CODE_LENGTH = 10
_TOTP_CODE = re.compile(r"\d{6}")
_RECOVERY_CODE = re.compile(r"[A-Z2-7]{10}")
_RECOVERY_SALT = "authmesh.accounts.recovery-code"


def new_totp_secret() -> str:
    """160 random bits in base32 (RFC 4226's recommended key length for HMAC-SHA-1)."""
    return pyotp.random_base32(length=32)


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, digest=hashlib.sha1, interval=TOTP_INTERVAL_SECONDS)


def totp_step(now: float) -> int:
    return int(now) // TOTP_INTERVAL_SECONDS


def totp_code(secret: str, *, step: int) -> str:
    return _totp(secret).generate_otp(step)


def totp_uri(secret: str, *, account: str) -> str:
    """The `otpauth://totp/...` URI an authenticator app reads (issuer: TOTP_ISSUER)."""
    return _totp(secret).provisioning_uri(name=account, issuer_name=str(settings.TOTP_ISSUER))


def totp_qr_svg(uri: str) -> str:
    """The URI as a QR code: an inline `<svg>` element (no XML declaration), for an `innerHTML` or an `<img>`."""
    return str(segno.make(uri, error="m").svg_inline(scale=4))


def totp_match_step(secret: str, code: str, *, now: float, after_step: int | None) -> int | None:
    """The step within the drift window whose code is `code` and that is newer than `after_step`; None otherwise.

    Every candidate step is compared (in constant time), so the answer takes as long whichever step matched.
    """
    code = code.strip()
    if not _TOTP_CODE.fullmatch(code):
        return None
    current = totp_step(now)
    matched: int | None = None
    for step in range(current - TOTP_DRIFT_STEPS, current + TOTP_DRIFT_STEPS + 1):
        same = hmac.compare_digest(totp_code(secret, step=step).encode(), code.encode())
        if same and (after_step is None or step > after_step) and matched is None:
            matched = step
    return matched


def new_recovery_codes(count: int = RECOVERY_CODE_COUNT) -> list[str]:
    codes: set[str] = set()
    while len(codes) < count:
        raw = base64.b32encode(secrets.token_bytes(8)).decode()[:RECOVERY_CODE_LENGTH]
        codes.add(f"{raw[:5]}-{raw[5:]}")
    return sorted(codes)


def normalize_recovery_code(code: str) -> str | None:
    """The code as stored (ten base32 characters), or None when what was typed cannot be one."""
    cleaned = re.sub(r"[\s-]", "", code).upper()
    return cleaned if _RECOVERY_CODE.fullmatch(cleaned) else None


def recovery_code_digest(*, user_id: str, code: str, secret: str | None = None) -> str:
    return salted_hmac(_RECOVERY_SALT, f"{user_id}:{code}", secret=secret, algorithm="sha256").hexdigest()


def recovery_code_digests(*, user_id: str, code: str) -> Iterable[str]:
    """The digests the code may be stored under: one per SECRET_KEY still accepted (a rotation keeps the codes)."""
    normalized = normalize_recovery_code(code)
    if normalized is None:
        return []
    keys = [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    return [recovery_code_digest(user_id=user_id, code=normalized, secret=key) for key in keys]
