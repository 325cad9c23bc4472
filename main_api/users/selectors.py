"""Reads of the users read model: plain rows (no model instances), oldest first, deleted users never shown."""

from __future__ import annotations

import uuid
from typing import Any

from main_api.users.models import User

PUBLIC_FIELDS = ("id", "name", "username", "email", "roles", "is_verified", "is_active", "created_at", "updated_at")


def user_list(
    *, limit: int, offset: int, active: bool | None = None, verified: bool | None = None
) -> tuple[int, list[dict[str, Any]]]:
    """One page of users, oldest first (created_at, then id for a stable order), and how many match in total."""
    users = User.objects.filter(is_deleted=False)
    if active is not None:
        users = users.filter(is_active=active)
    if verified is not None:
        users = users.filter(is_verified=verified)
    total = users.count()
    if offset >= total:
        return total, []
    rows = list(users.order_by("created_at", "id").values(*PUBLIC_FIELDS)[offset : offset + limit])
    return total, rows


def user_get(*, user_id: uuid.UUID) -> dict[str, Any] | None:
    return User.objects.filter(id=user_id, is_deleted=False).values(*PUBLIC_FIELDS).first()
