"""The outbox row: one event to publish, in commit order, exactly once (JetStream dedup on event_id)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db import models


class OutboxEvent(models.Model):
    # `id` orders publication; `event_id` is the Nats-Msg-Id and the consumers' inbox key, a UUID so that a
    # recreated table can never hit JetStream's duplicate window with a reused number.
    id: models.BigAutoField[int, int] = models.BigAutoField(primary_key=True)
    event_id: models.UUIDField[uuid.UUID, uuid.UUID] = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    aggregate_id: models.UUIDField[uuid.UUID, uuid.UUID] = models.UUIDField(db_index=True)
    event_type: models.CharField[str, str] = models.CharField(max_length=100)
    payload: models.JSONField[Any, Any] = models.JSONField()
    created_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now_add=True)
    published_at: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(null=True, blank=True)
    attempts: models.PositiveIntegerField[int, int] = models.PositiveIntegerField(default=0)
    last_error: models.TextField[str, str] = models.TextField(blank=True, default="")
    next_attempt_at: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(
        null=True, blank=True
    )
    # A relay's lease on the row while it publishes outside any transaction: another relay skips the row until
    # the lease runs out (a crashed relay's rows come back after it), and only the holder may record a failure.
    claimed_until: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(null=True, blank=True)
    claim_token: models.UUIDField[uuid.UUID | None, uuid.UUID | None] = models.UUIDField(
        null=True, blank=True, editable=False
    )

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["id"], name="outbox_pending_idx", condition=models.Q(published_at__isnull=True)),
            # Per-aggregate ordering checks "is an earlier event of this aggregate still unpublished?".
            models.Index(
                fields=["aggregate_id", "id"],
                name="outbox_pending_agg_idx",
                condition=models.Q(published_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.aggregate_id} #{self.id}"

    @property
    def is_published(self) -> bool:
        return self.published_at is not None
