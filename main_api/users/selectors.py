"""Reads of the users read model: plain rows (no model instances), oldest first, deleted users never shown."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import connection

from main_api.users.models import User

PUBLIC_FIELDS = ("id", "name", "username", "email", "roles", "is_verified", "is_active", "created_at", "updated_at")


# One round trip for a page and its total. The count is an uncorrelated subquery (evaluated once), so the page
# itself still walks the (created_at, id) index and stops after `limit` rows; a window count would sort every
# matching row first. Only an offset past the end (no row to carry the total) costs a second query. Raw SQL
# because this is the hot read path: the ORM's query compilation cost as much as the query itself.
_LIST_SQL = """
SELECT id, name, username, email, roles, is_verified, is_active, created_at, updated_at,
       (SELECT count(*) FROM users_user WHERE is_deleted = false {filters}) AS total
FROM users_user
WHERE is_deleted = false {filters}
ORDER BY created_at, id
LIMIT %s OFFSET %s
"""
_COUNT_SQL = "SELECT count(*) FROM users_user WHERE is_deleted = false {filters}"


def user_list(
    *, limit: int, offset: int, active: bool | None = None, verified: bool | None = None
) -> tuple[int, list[dict[str, Any]]]:
    """One page of users, oldest first (created_at, then id for a stable order), and how many match in total."""
    clauses: list[str] = []
    params: list[Any] = []
    if active is not None:
        clauses.append("AND is_active = %s")
        params.append(active)
    if verified is not None:
        clauses.append("AND is_verified = %s")
        params.append(verified)
    filters = " ".join(clauses)
    with connection.cursor() as cursor:
        cursor.execute(_LIST_SQL.format(filters=filters), [*params, *params, limit, offset])
        fetched = cursor.fetchall()
        if not fetched:
            cursor.execute(_COUNT_SQL.format(filters=filters), params)
            count_row = cursor.fetchone()
            return (int(count_row[0]) if count_row else 0), []
    total = int(fetched[0][-1])
    return total, [dict(zip(PUBLIC_FIELDS, row[:-1], strict=True)) for row in fetched]


def user_get(*, user_id: uuid.UUID) -> dict[str, Any] | None:
    return User.objects.filter(id=user_id, is_deleted=False).values(*PUBLIC_FIELDS).first()
