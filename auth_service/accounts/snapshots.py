"""The user as others see it: the public JSON (replies) and the event snapshot (outbox payloads)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from auth_service.accounts.models import User
from auth_service.accounts.policies import sorted_roles


def iso(value: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a Z, as the original's clients (JavaScript Date) produce and parse."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def user_public(user: User) -> dict[str, Any]:
    return {
        "id": str(user.id),
        "name": user.name,
        "username": user.username,
        "email": user.email,
        "roles": sorted_roles(user.roles),
        "verifiedAccount": user.is_verified,
        "active": user.is_active,
        "createdAt": iso(user.created_at),
        "updatedAt": iso(user.updated_at),
    }


def user_snapshot(user: User) -> dict[str, Any]:
    """Event payload: the public user plus its version. Never a password, hash, code or token."""
    return {**user_public(user), "version": user.version}
