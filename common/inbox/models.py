"""Processed messages (idempotency keys) and dead letters (messages that could not be applied)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import models


class InboxMessage(models.Model):
    """Written in the same transaction as a message's effect: its presence means "already applied"."""

    message_id: models.CharField[str, str] = models.CharField(max_length=100, primary_key=True)
    subject: models.CharField[str, str] = models.CharField(max_length=200)
    processed_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-processed_at"]

    def __str__(self) -> str:
        return f"{self.subject} {self.message_id}"


class DeadLetter(models.Model):
    """A message parked instead of retried forever: bad data at once, a failing one after its last delivery."""

    message_id: models.CharField[str, str] = models.CharField(max_length=100, db_index=True)
    subject: models.CharField[str, str] = models.CharField(max_length=200)
    payload: models.TextField[str, str] = models.TextField()
    headers: models.JSONField[Any, Any] = models.JSONField(default=dict)
    error: models.TextField[str, str] = models.TextField()
    deliveries: models.PositiveIntegerField[int, int] = models.PositiveIntegerField(default=0)
    created_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now_add=True)
    retried_at: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(null=True, blank=True)
    # Which consumer parked it: a retry goes through that consumer's handler.
    consumer: models.CharField[str, str] = models.CharField(max_length=100, blank=True, default="")
    stream_sequence: models.PositiveBigIntegerField[int | None, int | None] = models.PositiveBigIntegerField(
        null=True, blank=True
    )
    retries: models.PositiveIntegerField[int, int] = models.PositiveIntegerField(default=0)
    resolved_at: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["-created_at"], name="deadletter_open_idx", condition=models.Q(resolved_at__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subject} {self.message_id}"

    @property
    def is_resolved(self) -> bool:
        return self.resolved_at is not None
