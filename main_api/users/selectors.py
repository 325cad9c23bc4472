"""Reads of the users read model, answered in the public JSON shape built by PostgreSQL, deleted users never shown.

This is the hot read path (every `GET /api/user` is one of these), so each read is one round trip of one
prepared statement whose single row already holds the reply's JSON: no model instances, no per-row Python (the
uuid, timestamp and array loaders cost more than the query itself), no query compilation. The rows are rendered
as the public user (common/contracts/users.py); timestamps are UTC with milliseconds and `Z`, as JavaScript's
Date.toISOString() renders them (the original's clients), truncated like it.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from common.contracts.users import USER_FIELD_NAMES

_ISO = """'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'"""
# The public user (common/contracts/users.py), field by field: its column expression in the read model.
_COLUMN_OF = {
    "id": "u.id",
    "name": "u.name",
    "username": "u.username",
    "email": "u.email",
    "roles": "u.roles",
    "verifiedAccount": "u.is_verified",
    "active": "u.is_active",
    "createdAt": f"to_char(u.created_at AT TIME ZONE 'UTC', {_ISO})",
    "updatedAt": f"to_char(u.updated_at AT TIME ZONE 'UTC', {_ISO})",
}
if tuple(_COLUMN_OF) != USER_FIELD_NAMES:
    raise ImproperlyConfigured("main_api's user columns differ from the public user's fields")
_PUBLIC_USER = "json_build_object({})".format(", ".join(f"'{name}', {expr}" for name, expr in _COLUMN_OF.items()))

# A page and its exact total in one row. The count is an uncorrelated subquery (evaluated once); the page walks
# the (created_at, id) index of live users and stops after `limit` rows. An aggregate always yields one row, so
# an offset past the end still carries the total (and `[]`).
_LIST_SQL = f"""
SELECT (SELECT count(*) FROM users_user WHERE is_deleted = false {{filters}}),
       coalesce(json_agg({_PUBLIC_USER} ORDER BY u.created_at, u.id), '[]')::text
FROM (SELECT id, name, username, email, roles, is_verified, is_active, created_at, updated_at FROM users_user
      WHERE is_deleted = false {{filters}} ORDER BY created_at, id LIMIT %s OFFSET %s) AS u
"""  # noqa: S608 - constant fragments only; values are parameters
# A threshold no statement reaches by repetition: psycopg prepares only the executions that pass prepare=True.
_PREPARE_ONLY_WHEN_ASKED = 2**31 - 1
_GET_SQL = f"SELECT {_PUBLIC_USER}::text FROM users_user AS u WHERE u.id = %s AND u.is_deleted = false"  # noqa: S608 - constant fragments only


def user_list(*, limit: int, offset: int, active: bool | None = None, verified: bool | None = None) -> tuple[int, str]:
    """One page of users as a JSON array, oldest first (created_at, then id: a stable order), and the exact
    number of users matching the filters."""
    clauses: list[str] = []
    params: list[Any] = []
    if active is not None:
        clauses.append("AND is_active = %s")
        params.append(active)
    if verified is not None:
        clauses.append("AND is_verified = %s")
        params.append(verified)
    filters = " ".join(clauses)
    row = _fetchone(_LIST_SQL.format(filters=filters), [*params, *params, limit, offset])
    assert row is not None  # an aggregate without GROUP BY always returns its row
    return int(row[0]), str(row[1])


def user_get(*, user_id: uuid.UUID) -> str | None:
    """One live user as a JSON object, or None."""
    row = _fetchone(_GET_SQL, [user_id])
    return None if row is None else str(row[0])


def _fetchone(sql: str, params: list[Any]) -> tuple[Any, ...] | None:
    """Run a read as a prepared statement on this thread's Django connection, with Django's error classes.

    A server-side-binding psycopg cursor (Django's own uses client-side binding, which cannot be prepared):
    after the first execution PostgreSQL skips parsing and planning, and psycopg skips composing the query.
    """
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:
        # Django turns psycopg's preparing off for the whole connection (for transaction-mode poolers), and then
        # psycopg ignores prepare=True: every read was parsed and planned again. Only a server-side-binding
        # cursor can be prepared, and these reads are the only ones; Django's own cursors bind client-side and
        # are never prepared, whatever the threshold. So: prepared when asked, never by count.
        raw.prepare_threshold = _PREPARE_ONLY_WHEN_ASKED
    with connection.wrap_database_errors, psycopg.Cursor(raw) as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchone()
