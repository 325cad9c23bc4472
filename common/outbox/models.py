"""The outbox row: one event to publish, in commit order, exactly once (JetStream dedup on event_id)."""

from __future__ import annotations

import uuid

from django.db import models


class OutboxEvent(models.Model):
    # `id` orders publication; `event_id` is the Nats-Msg-Id and the consumers' inbox key, a UUID so that a
    # recreated table can never hit JetStream's duplicate window with a reused number.
    id = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    aggregate_id = models.UUIDField(db_index=True)
    event_type = models.CharField(max_length=100)
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["id"], name="outbox_pending_idx", condition=models.Q(published_at__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.aggregate_id} #{self.id}"

    @property
    def is_published(self) -> bool:
        return self.published_at is not None
