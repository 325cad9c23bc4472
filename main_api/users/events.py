"""The identity events main_api understands (common/contracts/events.py), decoded and validated before anything
is written (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from common.contracts.errors import ValidationFailed
from common.contracts.events import UserDeleted, UserSnapshot, payload_type
from common.contracts.rpc import decode
from common.inbox.services import InvalidMessage


class InvalidEvent(InvalidMessage):
    """An identity event that can never be applied: parked, never retried."""


def parse_user_event(event_type: str, payload: Any) -> UserSnapshot | UserDeleted:
    """Every event but `deleted` carries the full public snapshot, so applying the newest one is always right."""
    try:
        type_ = payload_type(event_type)
    except KeyError:
        raise InvalidEvent(f"unknown event type {event_type!r}") from None
    try:
        return decode(payload, type_)
    except ValidationFailed as exc:
        raise InvalidEvent(f"{event_type}: " + "; ".join(exc.message)) from None


def timestamp(value: str) -> datetime:
    """A contract timestamp as an aware datetime (one without an offset is UTC, the only zone the services write)."""
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
