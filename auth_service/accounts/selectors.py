"""Reads of identity data."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models.functions import Lower

from auth_service.accounts.mfa_tokens import METHOD_PASSKEY, METHOD_RECOVERY_CODE, METHOD_TOTP
from auth_service.accounts.models import Passkey, RecoveryCode, SigningKey, TotpDevice, User
from auth_service.accounts.policies import normalize_email
from auth_service.accounts.sessions import SessionInfo, session_store_list


def user_get(user_id: str | uuid.UUID) -> User | None:
    try:
        key = user_id if isinstance(user_id, uuid.UUID) else uuid.UUID(str(user_id))
    except ValueError:
        return None
    return User.objects.filter(pk=key).first()


@dataclass(frozen=True)
class TokenSubject:
    """What a refresh needs of its user, read fresh on every refresh: whether it may go on, and its roles."""

    id: uuid.UUID
    is_active: bool
    roles: list[str]


def _token_subject_sql() -> str:
    table = connection.ops.quote_name(User._meta.db_table)
    return f"SELECT id, is_active, roles FROM {table} WHERE id = %s"  # noqa: S608 - the model's table name only


_TOKEN_SUBJECT_SQL = _token_subject_sql()


def token_subject_get(user_id: str | uuid.UUID) -> TokenSubject | None:
    """One indexed read by primary key without the ORM's per-call query compilation (every refresh runs it)."""
    try:
        key = user_id if isinstance(user_id, uuid.UUID) else uuid.UUID(str(user_id))
    except ValueError:
        return None
    with connection.cursor() as cursor:
        cursor.execute(_TOKEN_SUBJECT_SQL, (key,))
        row = cursor.fetchone()
    if row is None:
        return None
    return TokenSubject(id=row[0], is_active=bool(row[1]), roles=list(row[2] or []))


def credentials_unchanged(user: User) -> bool:
    """Whether the row still has the password, active flag and roles `user` was read with (a login confirms what
    it checked is still current after reading the credential epoch, so a change committed meanwhile is seen)."""
    return User.objects.filter(pk=user.pk, password=user.password, is_active=True, roles=user.roles).exists()


def user_get_by_email(email: str) -> User | None:
    return User.objects.filter(email=normalize_email(email)).first()


def user_get_by_slug(slug: str) -> User | None:
    """The original's login rule: a slug with an "@" is an e-mail, anything else a username (case-insensitive)."""
    if "@" in slug:
        return user_get_by_email(slug)
    return User.objects.annotate(username_ci=Lower("username")).filter(username_ci=slug.strip().lower()).first()


def username_taken(username: str, *, exclude_id: uuid.UUID | None = None) -> bool:
    qs = User.objects.annotate(username_ci=Lower("username")).filter(username_ci=username.lower())
    if exclude_id is not None:
        qs = qs.exclude(pk=exclude_id)
    return qs.exists()


def email_taken(email: str, *, exclude_id: uuid.UUID | None = None) -> bool:
    qs = User.objects.filter(email=normalize_email(email))
    if exclude_id is not None:
        qs = qs.exclude(pk=exclude_id)
    return qs.exists()


def signing_key_active() -> SigningKey | None:
    return SigningKey.objects.filter(state=SigningKey.State.ACTIVE).first()


def jwks_keys() -> list[dict[str, Any]]:
    """Published keys: the next one (before it signs), the active one and the retired ones (until they expire)."""
    keys = SigningKey.objects.order_by("created_at", "id").values_list("public_jwk", flat=True)
    return [dict(key) for key in keys]


def session_list(*, user_id: str) -> list[SessionInfo]:
    """The user's live sessions (devices), oldest first."""
    return session_store_list(user_id)


def passkey_credentials(user_id: str | uuid.UUID) -> list[Passkey]:
    """The user's passkeys with their keys (for the WebAuthn ceremonies), oldest first."""
    return list(Passkey.objects.filter(user_id=user_id))


def passkey_get_by_credential_id(credential_id: bytes) -> Passkey | None:
    return Passkey.objects.select_related("user").filter(credential_id=credential_id).first()


# -- second factors ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PasskeyInfo:
    """What the user sees of one passkey (never its public key or credential id)."""

    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None


def passkey_info(passkey: Passkey) -> PasskeyInfo:
    return PasskeyInfo(
        id=str(passkey.id), name=passkey.name, created_at=passkey.created_at, last_used_at=passkey.last_used_at
    )


def passkey_list(user_id: str | uuid.UUID) -> list[PasskeyInfo]:
    """The user's passkeys as the user sees them, oldest first."""
    return [passkey_info(passkey) for passkey in passkey_credentials(user_id)]


def totp_device_get(user_id: str | uuid.UUID, *, confirmed: bool | None = None) -> TotpDevice | None:
    qs = TotpDevice.objects.filter(user_id=user_id)
    if confirmed is not None:
        qs = qs.filter(is_confirmed=confirmed)
    return qs.first()


def recovery_codes_left(user_id: str | uuid.UUID) -> int:
    return RecoveryCode.objects.filter(user_id=user_id).count()


def _second_factors_sql() -> str:
    totp, codes, passkeys = (connection.ops.quote_name(m._meta.db_table) for m in (TotpDevice, RecoveryCode, Passkey))
    return (
        f"SELECT EXISTS (SELECT 1 FROM {totp} WHERE user_id = %(id)s AND is_confirmed), "  # noqa: S608 - table names
        f"EXISTS (SELECT 1 FROM {codes} WHERE user_id = %(id)s), EXISTS (SELECT 1 FROM {passkeys} WHERE user_id = %(id)s)"
    )


# Written out rather than built by the ORM: compiling three EXISTS subqueries cost more CPU than running them, on
# every password login.
_SECOND_FACTORS_SQL = _second_factors_sql()


def mfa_methods(user_id: str | uuid.UUID) -> list[str]:
    """How the user can finish a login after the password: empty for a user without a second factor. One query (it
    runs on every password login)."""
    with connection.cursor() as cursor:
        cursor.execute(_SECOND_FACTORS_SQL, {"id": user_id if isinstance(user_id, uuid.UUID) else uuid.UUID(user_id)})
        totp, recovery, passkey = cursor.fetchone()
    methods: list[str] = []
    if totp:
        methods.append(METHOD_TOTP)
        if recovery:
            methods.append(METHOD_RECOVERY_CODE)
    if passkey:
        methods.append(METHOD_PASSKEY)
    return methods


@dataclass(frozen=True)
class MfaStatus:
    totp: bool
    recovery_codes_left: int
    passkeys: list[PasskeyInfo]


def mfa_status_get(user_id: str | uuid.UUID) -> MfaStatus:
    return MfaStatus(
        totp=totp_device_get(user_id, confirmed=True) is not None,
        recovery_codes_left=recovery_codes_left(user_id),
        passkeys=passkey_list(user_id),
    )
