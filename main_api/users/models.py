"""The users read model: a replica of the auth service's public user state, written only by identity events."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.contrib.postgres.fields import ArrayField
from django.db import models


class User(models.Model):
    # The auth service's id: one UUID names the user in every service.
    id: models.UUIDField[uuid.UUID, uuid.UUID] = models.UUIDField(primary_key=True, editable=False)
    name: models.CharField[str, str] = models.CharField(max_length=150, blank=True, default="")
    username: models.CharField[str, str] = models.CharField(max_length=150, blank=True, default="")
    # Not unique here: the auth service enforces uniqueness, and events of two users swapping an address may
    # arrive in either order.
    email: models.CharField[str, str] = models.CharField(max_length=254, blank=True, default="")
    roles: ArrayField[list[str], list[str]] = ArrayField(models.CharField(max_length=30), default=list, blank=True)
    is_verified: models.BooleanField[bool, bool] = models.BooleanField(default=False)
    is_active: models.BooleanField[bool, bool] = models.BooleanField(default=True)
    created_at: models.DateTimeField[datetime, datetime] = models.DateTimeField()
    updated_at: models.DateTimeField[datetime, datetime] = models.DateTimeField()
    # The per-user version of the last applied event: an event applies only if its version is higher.
    version: models.PositiveBigIntegerField[int, int] = models.PositiveBigIntegerField(default=0)
    # A deleted user stays as a tombstone holding the deletion's version, so a late, older event cannot bring it
    # back; its personal data is cleared.
    is_deleted: models.BooleanField[bool, bool] = models.BooleanField(default=False)
    synced_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(
                fields=["created_at", "id"], name="users_live_order_idx", condition=models.Q(is_deleted=False)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.username or self.id}"
