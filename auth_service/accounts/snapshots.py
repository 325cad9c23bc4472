"""The user as others see it (common/contracts/users.py): the public user (replies) and the event snapshot."""

from __future__ import annotations

from datetime import UTC, datetime

from auth_service.accounts.models import User
from auth_service.accounts.policies import sorted_roles
from common.contracts.events import UserSnapshot
from common.contracts.users import UserPublic


def iso(value: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a Z, as the original's clients (JavaScript Date) produce and parse."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fields(user: User) -> dict[str, object]:
    return {
        "id": user.id,
        "name": user.name,
        "username": user.username,
        "email": user.email,
        "roles": sorted_roles(user.roles),
        "verified_account": user.is_verified,
        "active": user.is_active,
        "created_at": iso(user.created_at),
        "updated_at": iso(user.updated_at),
    }


def user_public(user: User) -> UserPublic:
    return UserPublic(**_fields(user))  # type: ignore[arg-type]


def user_snapshot(user: User, *, version: int | None = None) -> UserSnapshot:
    """Event payload: the public user plus its version. Never a password, hash, code or token."""
    return UserSnapshot(**_fields(user), version=user.version if version is None else version)  # type: ignore[arg-type]
