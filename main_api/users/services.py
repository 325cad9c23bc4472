"""Writes to the users read model: identity events applied once each, newest state wins, deletions stay deleted."""

from __future__ import annotations

import enum
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from common.contracts.events import UserDeleted, UserSnapshot
from common.inbox.services import inbox_record
from main_api.users.events import parse_user_event, timestamp
from main_api.users.models import User


class ApplyOutcome(enum.StrEnum):
    APPLIED = "applied"
    DELETED = "deleted"
    STALE = "stale"
    DUPLICATE = "duplicate"


def user_apply_event(*, event_type: str, payload: dict[str, Any], message_id: str) -> ApplyOutcome:
    """Apply one identity event exactly once (inbox row in the same transaction) unless a newer state is held.

    Raises InvalidEvent, before anything is written, for an event that can never be applied.
    """
    event = parse_user_event(event_type, payload)
    # No savepoint of its own: a caller that batches events (the consumer) gives each one a savepoint, and what
    # can fail in here is the database, which dooms the caller's transaction anyway. At top level it is a
    # transaction like any other.
    with transaction.atomic(savepoint=False):
        if not inbox_record(message_id=message_id, subject=event_type):
            return ApplyOutcome.DUPLICATE
        if not _write_if_newer(event):
            return ApplyOutcome.STALE
    return ApplyOutcome.DELETED if isinstance(event, UserDeleted) else ApplyOutcome.APPLIED


def _write_if_newer(event: UserSnapshot | UserDeleted) -> bool:
    """Insert the user, or overwrite a row holding an OLDER version; False when a newer or equal one is held.

    One statement, so the version comparison and the write happen under the row lock: two consumer instances
    applying two events of one user (even of a user neither has seen yet) cannot interleave, and events may
    arrive in any order. A deletion writes a tombstone that keeps only the id, the version and the first-seen
    time, so an older event that arrives later compares against its version and changes nothing.
    """
    now = timezone.now()
    if isinstance(event, UserDeleted):
        values: dict[str, Any] = {
            "id": event.id,
            "name": "",
            "username": "",
            "email": "",
            "roles": [],
            "is_verified": False,
            "is_active": False,
            "created_at": now,
            "updated_at": now,
            "version": event.version,
            "is_deleted": True,
            "synced_at": now,
        }
        sql = _TOMBSTONE_SQL
    else:
        values = {
            "id": event.id,
            "name": event.name,
            "username": event.username,
            "email": event.email,
            "roles": list(dict.fromkeys(event.roles)),
            "is_verified": event.verified_account,
            "is_active": event.active,
            "created_at": timestamp(event.created_at),
            "updated_at": timestamp(event.updated_at),
            "version": event.version,
            "is_deleted": False,
            "synced_at": now,
        }
        sql = _SNAPSHOT_SQL
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        return cursor.fetchone() is not None


_COLUMNS = (
    "id",
    "name",
    "username",
    "email",
    "roles",
    "is_verified",
    "is_active",
    "created_at",
    "updated_at",
    "version",
    "is_deleted",
    "synced_at",
)


def _upsert_sql(*, keep: tuple[str, ...]) -> str:
    """INSERT ... ON CONFLICT DO UPDATE ... WHERE held version < event version; `keep` columns are not overwritten."""
    table = connection.ops.quote_name(User._meta.db_table)
    columns = ", ".join(_COLUMNS)
    placeholders = ", ".join(f"%({c})s" for c in _COLUMNS)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS if c != "id" and c not in keep)
    return (
        f"INSERT INTO {table} AS held ({columns}) VALUES ({placeholders}) "  # noqa: S608 - model's own names only
        f"ON CONFLICT (id) DO UPDATE SET {updates} WHERE held.version < EXCLUDED.version RETURNING 1"
    )


_SNAPSHOT_SQL = _upsert_sql(keep=())
_TOMBSTONE_SQL = _upsert_sql(keep=("created_at",))
