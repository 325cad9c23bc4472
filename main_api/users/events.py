"""The identity events main_api understands, parsed and validated before anything is written (pure)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from common.contracts import events
from common.inbox.services import InvalidMessage

MAX_NAME = 150
MAX_USERNAME = 150
MAX_EMAIL = 254
MAX_ROLE = 30
MAX_VERSION = 2**63 - 1


class InvalidEvent(InvalidMessage):
    """An identity event that can never be applied: parked, never retried."""


@dataclass(frozen=True)
class UserSnapshot:
    id: uuid.UUID
    version: int
    name: str
    username: str
    email: str
    roles: list[str]
    is_verified: bool
    is_active: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class UserDeletion:
    id: uuid.UUID
    version: int


def parse_user_event(event_type: str, payload: dict[str, Any]) -> UserSnapshot | UserDeletion:
    """Every event but `deleted` carries the full public snapshot, so applying the newest one is always right."""
    if event_type not in events.ALL_USER_EVENTS:
        raise InvalidEvent(f"unknown event type {event_type!r}")
    if not isinstance(payload, dict):
        raise InvalidEvent("payload is not an object")
    errors: list[str] = []
    user_id = _uuid(payload.get("id"), "id", errors)
    version = _version(payload.get("version"), errors)
    if event_type == events.USER_DELETED:
        _raise_if(errors, event_type)
        assert user_id is not None and version is not None
        return UserDeletion(id=user_id, version=version)
    name = _text(payload.get("name"), "name", MAX_NAME, errors)
    username = _text(payload.get("username"), "username", MAX_USERNAME, errors)
    email = _text(payload.get("email"), "email", MAX_EMAIL, errors)
    roles = _roles(payload.get("roles"), errors)
    is_verified = _bool(payload.get("verifiedAccount"), "verifiedAccount", errors)
    is_active = _bool(payload.get("active"), "active", errors)
    created_at = _timestamp(payload.get("createdAt"), "createdAt", errors)
    updated_at = _timestamp(payload.get("updatedAt"), "updatedAt", errors)
    _raise_if(errors, event_type)
    assert user_id is not None and version is not None and created_at is not None and updated_at is not None
    return UserSnapshot(
        id=user_id,
        version=version,
        name=name,
        username=username,
        email=email,
        roles=roles,
        is_verified=is_verified,
        is_active=is_active,
        created_at=created_at,
        updated_at=updated_at,
    )


def _raise_if(errors: list[str], event_type: str) -> None:
    if errors:
        raise InvalidEvent(f"{event_type}: " + "; ".join(errors))


def _uuid(value: Any, field: str, errors: list[str]) -> uuid.UUID | None:
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    errors.append(f"{field} must be a UUID")
    return None


def _version(value: Any, errors: list[str]) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_VERSION:
        errors.append("version must be a positive integer")
        return None
    return value


def _text(value: Any, field: str, max_length: int, errors: list[str]) -> str:
    if not isinstance(value, str):
        errors.append(f"{field} must be a string")
        return ""
    if len(value) > max_length:
        errors.append(f"{field} is longer than {max_length}")
    if "\x00" in value:  # PostgreSQL cannot store NUL in text
        errors.append(f"{field} contains NUL")
    return value


def _roles(value: Any, errors: list[str]) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(r, str) and 0 < len(r) <= MAX_ROLE for r in value):
        errors.append(f"roles must be a list of role names (1-{MAX_ROLE} characters)")
        return []
    if any("\x00" in r for r in value):
        errors.append("roles contain NUL")
    return list(dict.fromkeys(value))


def _bool(value: Any, field: str, errors: list[str]) -> bool:
    if not isinstance(value, bool):
        errors.append(f"{field} must be a boolean")
        return False
    return value


def _timestamp(value: Any, field: str, errors: list[str]) -> datetime | None:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            # A timestamp without an offset is read as UTC, the only zone the services write.
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    errors.append(f"{field} must be an ISO 8601 timestamp")
    return None
